// Passive outlier detection (Envoy's consecutive 5xx / consecutive gateway
// failure detectors), driven by the cluster manager's `observe` hook and
// acting through `Cluster.setEndpointEjected`.
//
// - consecutive 5xx: a response >= 500, or a failure without a response
//   (connect failure, reset, timeout: Envoy counts these as 5xx when local
//   and external errors are not split). `consecutiveGatewayFailure` counts
//   502/503/504 and those failures; Envoy enforces it at 0% by default.
// - an ejection lasts baseEjectionTime x (times ejected), capped by
//   maxEjectionTime; the multiplier decays by one for every `interval` the
//   endpoint then stays in.
// - never more than maxEjectionPercent of the cluster: as Envoy (before
//   always_eject_one_host), the check is "ejected now / hosts < max%", so
//   one host of a small cluster can always be ejected (3 hosts at 10%: one).
// - half-open return: after its time the endpoint is back, on probation; its
//   first failure ejects it again at once (with the longer time), its first
//   success ends the probation.
// State is kept per (cluster, endpoint) across config versions; the
// active cluster manager is re-told about ejections after each swap.
import type { OutlierDetectionSpec } from './config/envoy-resilience.ts';
import type { RequestOutcome } from './cluster.ts';

export interface EjectionTarget {
  /** Endpoints in the cluster now (0 when unknown). */
  size(cluster: string): number;
  setEjected(cluster: string, key: string, ejected: boolean): void;
}

export interface OutlierDeps {
  readonly now: () => number;
  readonly setTimer: (fn: () => void, ms: number) => () => void;
  /** The detector's config for a cluster; undefined = not enabled. */
  readonly spec: (cluster: string) => OutlierDetectionSpec | undefined;
  readonly onEject?: (cluster: string, key: string, durationMs: number) => void;
  readonly onReturn?: (cluster: string, key: string) => void;
}

interface HostState {
  consecutive5xx: number;
  consecutiveGateway: number;
  /** Ejection multiplier (times ejected, decayed). */
  times: number;
  ejected: boolean;
  ejectedUntil: number;
  returnedAt: number;
  probation: boolean;
  cancel: (() => void) | null;
}

const GATEWAY_ERRORS = new Set(['UPSTREAM_CONNECT_FAILED', 'UPSTREAM_CONNECT_TIMEOUT', 'UPSTREAM_RESET', 'UPSTREAM_PROTOCOL_ERROR', 'PER_TRY_TIMEOUT', 'REQUEST_TIMEOUT']);
/** Failures that say nothing about the endpoint (the caller went away, overload on our side). */
const NEUTRAL_ERRORS = new Set(['DOWNSTREAM_CLOSED', 'OVERFLOW', 'DRAINING']);

export type Classified = 'success' | 'gateway' | '5xx' | 'neutral';

export function classify(o: RequestOutcome): Classified {
  if (o.status >= 500) return o.status === 502 || o.status === 503 || o.status === 504 ? 'gateway' : '5xx';
  if (o.status > 0 && o.error === undefined) return 'success';
  if (o.error !== undefined) {
    if (NEUTRAL_ERRORS.has(o.error)) return 'neutral';
    if (GATEWAY_ERRORS.has(o.error)) return o.status > 0 && o.status < 500 ? 'neutral' : 'gateway';
    return 'neutral';
  }
  return o.ok ? 'success' : 'neutral';
}

export class OutlierDetector {
  private readonly deps: OutlierDeps;
  private readonly hosts = new Map<string, Map<string, HostState>>();
  private target: EjectionTarget | null = null;

  constructor(deps: OutlierDeps) {
    this.deps = deps;
  }

  /** The active clusters (after a config swap): ejections are re-applied. */
  attach(target: EjectionTarget): void {
    this.target = target;
    for (const [cluster, m] of this.hosts) {
      if (!this.deps.spec(cluster)) {
        for (const [key, h] of m) if (h.ejected) this.unEject(cluster, key, h, false);
        this.hosts.delete(cluster);
        continue;
      }
      for (const [key, h] of m) if (h.ejected) target.setEjected(cluster, key, true);
    }
  }

  ejectedCount(cluster: string): number {
    let n = 0;
    for (const h of this.hosts.get(cluster)?.values() ?? []) if (h.ejected) n++;
    return n;
  }

  isEjected(cluster: string, key: string): boolean {
    return this.hosts.get(cluster)?.get(key)?.ejected ?? false;
  }

  observe(cluster: string, key: string, outcome: RequestOutcome): void {
    const spec = this.deps.spec(cluster);
    if (!spec) return;
    const kind = classify(outcome);
    if (kind === 'neutral') return;
    let m = this.hosts.get(cluster);
    if (!m) this.hosts.set(cluster, (m = new Map()));
    let h = m.get(key);
    if (!h) {
      if (kind === 'success') return; // nothing to remember
      m.set(key, (h = { consecutive5xx: 0, consecutiveGateway: 0, times: 0, ejected: false, ejectedUntil: 0, returnedAt: 0, probation: false, cancel: null }));
    }
    if (h.ejected) return; // in-flight stragglers of an ejected host
    if (kind === 'success') {
      h.consecutive5xx = 0;
      h.consecutiveGateway = 0;
      h.probation = false;
      return;
    }
    h.consecutive5xx++;
    if (kind === 'gateway') h.consecutiveGateway++;
    else h.consecutiveGateway = 0;
    const now = this.deps.now();
    if (h.probation) {
      this.tryEject(cluster, key, h, spec, now);
      return;
    }
    if (h.consecutive5xx >= spec.consecutive5xx && enforce(spec.enforcingConsecutive5xx)) this.tryEject(cluster, key, h, spec, now);
    else if (h.consecutiveGateway >= spec.consecutiveGatewayFailure && enforce(spec.enforcingConsecutiveGatewayFailure)) this.tryEject(cluster, key, h, spec, now);
  }

  private tryEject(cluster: string, key: string, h: HostState, spec: OutlierDetectionSpec, now: number): void {
    const total = this.target?.size(cluster) ?? 0;
    if (total <= 0) return;
    if ((100 * this.ejectedCount(cluster)) / total >= spec.maxEjectionPercent) return;
    // Decay: one step per interval spent back in the cluster.
    if (h.times > 0 && h.returnedAt > 0 && spec.intervalMs > 0) h.times = Math.max(0, h.times - Math.floor((now - h.returnedAt) / spec.intervalMs));
    h.times++;
    const duration = Math.min(spec.baseEjectionTimeMs * h.times, Math.max(spec.maxEjectionTimeMs, spec.baseEjectionTimeMs));
    h.ejected = true;
    h.ejectedUntil = now + duration;
    h.consecutive5xx = 0;
    h.consecutiveGateway = 0;
    h.probation = false;
    h.cancel = this.deps.setTimer(() => {
      h.cancel = null;
      this.unEject(cluster, key, h, true);
    }, duration);
    this.target?.setEjected(cluster, key, true);
    this.deps.onEject?.(cluster, key, duration);
  }

  private unEject(cluster: string, key: string, h: HostState, probation: boolean): void {
    h.cancel?.();
    h.cancel = null;
    if (!h.ejected) return;
    h.ejected = false;
    h.probation = probation;
    h.returnedAt = this.deps.now();
    this.target?.setEjected(cluster, key, false);
    this.deps.onReturn?.(cluster, key);
  }

  /** Cancel every timer (proxy shutdown). */
  stop(): void {
    for (const m of this.hosts.values()) for (const h of m.values()) {
      h.cancel?.();
      h.cancel = null;
    }
  }
}

function enforce(percent: number): boolean {
  return percent >= 100 || (percent > 0 && Math.random() * 100 < percent);
}
