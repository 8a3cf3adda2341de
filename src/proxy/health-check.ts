// Active health checking (Envoy's HTTP and TCP checkers): every endpoint of
// a cluster with `healthChecks` is probed every `interval`, each probe
// bounded by `timeout`. `unhealthyThreshold` consecutive failures mark it
// unhealthy, `healthyThreshold` consecutive successes healthy again; the
// verdict goes to the cluster through `setEndpointHealth`.
//
// - HTTP: GET `path` over a fresh HTTP/1.1 connection (Host: `host`, default
//   the cluster name), success when the status is in `expectedStatuses`
//   (default 200). TCP: a successful connect.
// - An endpoint starts as "unknown" (it serves: no outage while the first
//   probes run; Envoy instead waits for the first check).
// - The registry's word wins over ours: an endpoint EDS calls unhealthy or
//   draining stays out whatever the probes say; probes can only take an
//   EDS-healthy endpoint out.
// - Checkers are kept across config versions for endpoints that stay;
//   `sync()` starts and stops them. Probes run on unref'd timers.
import http from 'node:http';
import net from 'node:net';
import type { HealthCheckSpec } from './config/envoy-resilience.ts';
import type { HealthStatus, ProxyConfig } from './config/types.ts';
import { endpointKey } from './cluster.ts';

export type ProbeResult = { ok: true } | { ok: false; reason: string };
export type Probe = (spec: HealthCheckSpec, address: string, port: number, cluster: string) => Promise<ProbeResult>;

export interface HealthTarget {
  setHealth(cluster: string, key: string, health: HealthStatus): void;
}

export interface HealthCheckDeps {
  readonly specs: (cluster: string) => readonly HealthCheckSpec[];
  readonly probe?: Probe;
  readonly onChange?: (cluster: string, key: string, healthy: boolean) => void;
}

interface Checker {
  readonly cluster: string;
  readonly key: string;
  readonly address: string;
  readonly port: number;
  spec: HealthCheckSpec;
  /** The registry's health (EDS). */
  registry: HealthStatus;
  /** Our verdict; null until a threshold was reached. */
  verdict: boolean | null;
  successes: number;
  failures: number;
  timer: NodeJS.Timeout | null;
  stopped: boolean;
}

/** Combined health: the registry's unhealthy/draining win; otherwise ours. */
export function combinedHealth(registry: HealthStatus, verdict: boolean | null): HealthStatus {
  if (registry === 'unhealthy' || registry === 'draining') return registry;
  if (verdict === null) return registry;
  return verdict ? 'healthy' : 'unhealthy';
}

export class HealthChecker {
  private readonly deps: HealthCheckDeps;
  private readonly probe: Probe;
  private readonly checkers = new Map<string, Checker>();
  private target: HealthTarget | null = null;

  constructor(deps: HealthCheckDeps) {
    this.deps = deps;
    this.probe = deps.probe ?? defaultProbe;
  }

  /** Start/stop checkers for this config's endpoints; re-apply verdicts to `target`. */
  sync(config: ProxyConfig, target: HealthTarget): void {
    this.target = target;
    const seen = new Set<string>();
    for (const [cluster] of config.clusters) {
      const spec = this.deps.specs(cluster)[0];
      if (!spec) continue;
      for (const le of config.endpoints.get(cluster) ?? []) {
        for (const ep of le.endpoints) {
          const key = endpointKey(ep.address, ep.port);
          const id = `${cluster}\u0000${key}`;
          if (seen.has(id)) continue;
          seen.add(id);
          let c = this.checkers.get(id);
          if (!c) {
            c = { cluster, key, address: ep.address, port: ep.port, spec, registry: ep.health, verdict: null, successes: 0, failures: 0, timer: null, stopped: false };
            this.checkers.set(id, c);
            this.schedule(c, 0);
          } else {
            c.spec = spec;
            c.registry = ep.health;
          }
          if (c.verdict !== null) target.setHealth(cluster, key, combinedHealth(c.registry, c.verdict));
        }
      }
    }
    for (const [id, c] of this.checkers) {
      if (seen.has(id)) continue;
      this.stopChecker(c);
      this.checkers.delete(id);
    }
  }

  verdict(cluster: string, key: string): boolean | null {
    return this.checkers.get(`${cluster}\u0000${key}`)?.verdict ?? null;
  }

  stop(): void {
    for (const c of this.checkers.values()) this.stopChecker(c);
    this.checkers.clear();
  }

  private stopChecker(c: Checker): void {
    c.stopped = true;
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
  }

  private schedule(c: Checker, ms: number): void {
    if (c.stopped) return;
    c.timer = setTimeout(() => {
      c.timer = null;
      void this.runProbe(c);
    }, ms);
    c.timer.unref();
  }

  private async runProbe(c: Checker): Promise<void> {
    if (c.stopped) return;
    let r: ProbeResult;
    try {
      r = await this.probe(c.spec, c.address, c.port, c.cluster);
    } catch (err) {
      r = { ok: false, reason: String(err) };
    }
    if (c.stopped) return;
    this.record(c, r.ok);
    this.schedule(c, c.spec.intervalMs);
  }

  private record(c: Checker, ok: boolean): void {
    const before = c.verdict;
    if (ok) {
      c.successes++;
      c.failures = 0;
      // Unknown -> healthy on the first success; unhealthy needs the threshold.
      if (c.verdict !== true && (c.verdict === null || c.successes >= c.spec.healthyThreshold)) c.verdict = true;
    } else {
      c.failures++;
      c.successes = 0;
      if (c.verdict !== false && c.failures >= c.spec.unhealthyThreshold) c.verdict = false;
    }
    if (c.verdict !== before && c.verdict !== null) {
      this.target?.setHealth(c.cluster, c.key, combinedHealth(c.registry, c.verdict));
      this.deps.onChange?.(c.cluster, c.key, c.verdict);
    }
  }
}

export const defaultProbe: Probe = (spec, address, port, cluster) => (spec.kind === 'tcp' ? tcpProbe(spec, address, port) : httpProbe(spec, address, port, cluster));

function tcpProbe(spec: HealthCheckSpec, address: string, port: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const s = net.connect({ host: address, port });
    const timer = setTimeout(() => finish({ ok: false, reason: 'timeout' }), spec.timeoutMs);
    function finish(r: ProbeResult): void {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    }
    s.once('connect', () => finish({ ok: true }));
    s.once('error', (err) => finish({ ok: false, reason: err.message }));
  });
}

function httpProbe(spec: HealthCheckSpec, address: string, port: number, cluster: string): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const req = http.request({ host: address, port, path: spec.path, method: 'GET', agent: false, headers: { host: spec.host ?? cluster, 'user-agent': 'trellis-health-check' } }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      const ok = spec.expectedStatuses.some(([a, b]) => status >= a && status < b);
      finish(ok ? { ok: true } : { ok: false, reason: `status ${status}` });
    });
    const timer = setTimeout(() => finish({ ok: false, reason: 'timeout' }), spec.timeoutMs);
    req.on('error', (err) => finish({ ok: false, reason: err.message }));
    req.end();
  });
}
