// Global rate limits without a shared counter store: the control plane knows
// which proxies of a service are connected (their xDS streams) and splits
// each service's global rate among them; every proxy enforces its share
// locally (proxy/layers/global-rate-limit.ts). Shares are rebalanced
// whenever a proxy connects or disconnects or the limit changes, and pushed
// to every proxy of that service.
//
// This class is the in-process core; the xDS wiring (docs/resilience.md,
// "Global rate limit") sends the share to each proxy as part of its config.
import type { ShareAssignment } from '../proxy/layers/global-rate-limit.ts';

export interface GlobalLimit {
  readonly ratePerSec: number;
  /** Burst for the whole service (default: one second of rate). */
  readonly burst?: number;
}

type Listener = (a: ShareAssignment | null) => void;

export class RateLimitCoordinator {
  private readonly limits = new Map<string, GlobalLimit>();
  private readonly proxies = new Map<string, Map<string, Listener>>();

  /** Set (or replace) a service's global limit and push new shares. */
  setLimit(service: string, limit: GlobalLimit): void {
    if (!(limit.ratePerSec >= 0) || !Number.isFinite(limit.ratePerSec)) throw new RangeError(`ratePerSec must be a finite number >= 0 (got ${limit.ratePerSec})`);
    this.limits.set(service, limit);
    this.rebalance(service);
  }

  removeLimit(service: string): void {
    this.limits.delete(service);
    this.rebalance(service);
  }

  /** A proxy of `service` connected; `onShare` gets its share now and on
   * every change (null: no limit). Returns the disconnect function. */
  connect(service: string, proxyId: string, onShare: Listener): () => void {
    let m = this.proxies.get(service);
    if (!m) this.proxies.set(service, (m = new Map()));
    m.set(proxyId, onShare);
    this.rebalance(service);
    return () => {
      const cur = this.proxies.get(service);
      if (!cur || cur.get(proxyId) !== onShare) return;
      cur.delete(proxyId);
      if (cur.size === 0) this.proxies.delete(service);
      this.rebalance(service);
    };
  }

  /** The share one proxy of `service` would get now. */
  shareOf(service: string): ShareAssignment | null {
    const limit = this.limits.get(service);
    const n = this.proxies.get(service)?.size ?? 0;
    if (!limit || n === 0) return null;
    const burst = limit.burst ?? limit.ratePerSec;
    return { ratePerSec: limit.ratePerSec / n, burst: Math.max(1, burst / n), proxies: n };
  }

  private rebalance(service: string): void {
    const m = this.proxies.get(service);
    if (!m) return;
    const share = this.shareOf(service);
    for (const l of m.values()) l(share);
  }
}
