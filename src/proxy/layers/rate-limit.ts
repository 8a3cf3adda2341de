// Rate limiting before a request goes upstream: Envoy's local rate limit
// (token buckets from LocalRateLimit in the route's typedPerFilterConfig),
// per route and per caller. A global limit reaches the proxy the same way:
// the control plane writes this proxy's share into its inbound route's
// LocalRateLimit (docs/policies.md, "Global rate limits").
//
// The caller is `ctx.downstream.peerIdentity` (the verified mTLS SPIFFE ID)
// when the connection has one, else the peer address (IPv4-mapped IPv6 as
// IPv4). Nothing the caller writes in the request names it: a header would
// let every request claim a fresh bucket. A rejection is RATE_LIMITED: 429 (or the configured
// status; gRPC RESOURCE_EXHAUSTED) with `retry-after` in whole seconds until
// a token is due (at least 1).
//
// Buckets live in a RateLimitStore that outlives config versions (a config
// push does not refill them); a bucket whose spec changed starts afresh.
// Per-caller buckets are bounded (10 000 per route by default); when full,
// the oldest caller's bucket is dropped (it would be refilled soon anyway).
import type { CallerLimitSpec, LocalRateLimitSpec, TokenBucketSpec } from '../config/envoy-resilience.ts';
import { ProxyError } from '../errors.ts';
import type { Dispatch, Layer, ProxyRequest } from '../http/exchange.ts';
import { TokenBucket, type TakeResult } from './token-bucket.ts';

export const DEFAULT_MAX_CALLERS = 10_000;

export function callerIdentity(req: ProxyRequest): string {
  const id = req.ctx.downstream.peerIdentity;
  if (id) return id;
  const a = req.ctx.downstream.remoteAddress;
  return `addr:${a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a}`;
}

/** Token buckets by key, kept across config versions. */
export class RateLimitStore {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly maxCallers: number;
  private readonly callerCount = new Map<string, number>();

  constructor(opts: { maxCallers?: number } = {}) {
    this.maxCallers = opts.maxCallers ?? DEFAULT_MAX_CALLERS;
  }

  take(key: string, spec: TokenBucketSpec, now: number, group?: string): TakeResult {
    let b = this.buckets.get(key);
    if (b && !b.sameSpec(spec)) {
      this.buckets.delete(key);
      b = undefined;
    }
    if (!b) {
      if (group !== undefined) this.makeRoom(group, now);
      b = new TokenBucket(spec, now);
      this.buckets.set(key, b);
    } else {
      // Most recently used last (Map order): eviction takes the oldest.
      this.buckets.delete(key);
      this.buckets.set(key, b);
    }
    return b.take(now);
  }

  private makeRoom(group: string, now: number): void {
    const n = this.callerCount.get(group) ?? 0;
    if (n < this.maxCallers) {
      this.callerCount.set(group, n + 1);
      return;
    }
    const prefix = `${group}\u0000`;
    for (const [k, b] of this.buckets) {
      if (!k.startsWith(prefix)) continue;
      void b.full(now);
      this.buckets.delete(k);
      return;
    }
  }

  get size(): number {
    return this.buckets.size;
  }
}

export interface RateLimitDeps {
  readonly now: () => number;
  readonly random: () => number;
  readonly store: RateLimitStore;
  readonly onLimited?: (statPrefix: string) => void;
}

function matchCaller(callers: readonly CallerLimitSpec[], caller: string): CallerLimitSpec | undefined {
  let wildcard: CallerLimitSpec | undefined;
  for (const c of callers) {
    if (c.caller === caller) return c;
    if (c.caller === '*') wildcard ??= c;
  }
  return wildcard;
}

function reject(status: number, retryAfterMs: number, detail: string): ProxyError {
  const secs = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new ProxyError('RATE_LIMITED', detail, { status, headers: ['retry-after', String(secs)] });
}

/** `limitOf` returns the route's limit and a stable key for its buckets. */
export function rateLimitLayer(limitOf: (req: ProxyRequest) => { spec: LocalRateLimitSpec; key: string } | undefined, deps: RateLimitDeps): Layer {
  return function rateLimit(next: Dispatch): Dispatch {
    return function rateLimitDispatch(req, handler) {
      const l = limitOf(req);
      if (!l) {
        next(req, handler);
        return;
      }
      const now = deps.now();
      if (l.spec.enabled >= 1 || deps.random() < l.spec.enabled) {
        const { spec, key } = l;
        let denied: TakeResult | undefined;
        if (spec.callers.length > 0) {
          const caller = callerIdentity(req);
          const c = matchCaller(spec.callers, caller);
          if (c) {
            const ck = c.caller === '*' ? `${key}/*\u0000${caller}` : `${key}/=${caller}`;
            const r = deps.store.take(ck, c.tokenBucket, now, c.caller === '*' ? `${key}/*` : undefined);
            if (!r.ok) denied = r;
          }
        }
        if (!denied && spec.tokenBucket) {
          const r = deps.store.take(key, spec.tokenBucket, now);
          if (!r.ok) denied = r;
        }
        if (denied && !denied.ok && (spec.enforced >= 1 || deps.random() < spec.enforced)) {
          deps.onLimited?.(spec.statPrefix);
          req.ctx.responseFlags.push('RL');
          handler.onError(reject(spec.status, denied.retryAfterMs, 'local rate limit'));
          return;
        }
      }
      next(req, handler);
    };
  };
}
