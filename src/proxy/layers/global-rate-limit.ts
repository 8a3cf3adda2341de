// The proxy side of a global rate limit shared by all of a service's proxies,
// coordinated through the control plane instead of a Redis round trip per
// request: the control plane (control-plane/rate-limit-coordinator.ts) gives
// each connected proxy a share of the global rate (rate / proxies of the
// service, rebalanced as proxies connect and leave), and each proxy enforces
// its share locally with a continuously refilled bucket. No per-request
// coordination; the aggregate holds as long as load is spread evenly over the
// proxies (a proxy that gets more than its share of callers rejects earlier
// than a central limiter would: the price of no per-request round trip).
//
// Before its first assignment a limiter admits everything (fail open, as
// Envoy's global rate limit with failure_mode_deny false): a proxy that
// cannot reach the control plane keeps serving.
import type { TakeResult } from './token-bucket.ts';
import { RateBucket } from './token-bucket.ts';
import type { GlobalRateLimiter } from './rate-limit.ts';

export interface ShareAssignment {
  /** This proxy's share, requests per second. */
  readonly ratePerSec: number;
  /** This proxy's share of the burst. */
  readonly burst: number;
  /** Proxies the global rate is split over (informational). */
  readonly proxies: number;
}

export class ShareRateLimiter implements GlobalRateLimiter {
  private bucket: RateBucket | null = null;
  private assignment: ShareAssignment | null = null;

  /** A new share from the control plane (replaces the previous one). */
  applyShare(a: ShareAssignment, now: number): void {
    this.assignment = a;
    if (this.bucket) this.bucket.setRate(a.ratePerSec, a.burst, now);
    else this.bucket = new RateBucket(a.ratePerSec, a.burst, now);
  }

  /** The limit was removed: admit everything again. */
  clear(): void {
    this.assignment = null;
    this.bucket = null;
  }

  get share(): ShareAssignment | null {
    return this.assignment;
  }

  tryAcquire(now: number): TakeResult {
    if (!this.bucket) return { ok: true };
    return this.bucket.take(now);
  }
}
