// A token bucket as Envoy's local rate limit defines it: it starts full
// (`maxTokens`), gains `tokensPerFill` every `fillInterval` (whole fills, on
// the interval grid, never above `maxTokens`), and a request takes one
// token. Time is read from the caller (`now` in ms), so tests drive it.
import type { TokenBucketSpec } from '../config/envoy-resilience.ts';

export type TakeResult = { ok: true } | { ok: false; retryAfterMs: number };

export class TokenBucket {
  private readonly spec: TokenBucketSpec;
  private tokens: number;
  /** Start of the current fill interval. */
  private stamp: number;

  constructor(spec: TokenBucketSpec, now: number) {
    this.spec = spec;
    this.tokens = spec.maxTokens;
    this.stamp = now;
  }

  private refill(now: number): void {
    const { fillIntervalMs, tokensPerFill, maxTokens } = this.spec;
    if (now < this.stamp) {
      this.stamp = now; // clock went back: restart the grid
      return;
    }
    const fills = Math.floor((now - this.stamp) / fillIntervalMs);
    if (fills <= 0) return;
    this.tokens = Math.min(maxTokens, this.tokens + fills * tokensPerFill);
    this.stamp += fills * fillIntervalMs;
  }

  /** Take one token, or say how long until one is there. */
  take(now: number): TakeResult {
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.max(1, this.stamp + this.spec.fillIntervalMs - now) };
  }

  /** True when the bucket is full (an idle caller's bucket can be dropped). */
  full(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.spec.maxTokens;
  }

  available(now: number): number {
    this.refill(now);
    return this.tokens;
  }

  sameSpec(spec: TokenBucketSpec): boolean {
    const s = this.spec;
    return s.maxTokens === spec.maxTokens && s.tokensPerFill === spec.tokensPerFill && s.fillIntervalMs === spec.fillIntervalMs;
  }
}

/** A bucket refilled continuously at `ratePerSec` with room for `burst`
 * tokens (the global limiter's local share; the rate changes at run time). */
export class RateBucket {
  private rate: number;
  private burst: number;
  private tokens: number;
  private stamp: number;

  constructor(ratePerSec: number, burst: number, now: number) {
    this.rate = Math.max(0, ratePerSec);
    this.burst = Math.max(1, burst);
    this.tokens = this.burst;
    this.stamp = now;
  }

  private refill(now: number): void {
    if (now > this.stamp) this.tokens = Math.min(this.burst, this.tokens + ((now - this.stamp) / 1000) * this.rate);
    this.stamp = now;
  }

  setRate(ratePerSec: number, burst: number, now: number): void {
    this.refill(now);
    this.rate = Math.max(0, ratePerSec);
    this.burst = Math.max(1, burst);
    this.tokens = Math.min(this.tokens, this.burst);
  }

  take(now: number): TakeResult {
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true };
    }
    if (this.rate <= 0) return { ok: false, retryAfterMs: 1000 };
    return { ok: false, retryAfterMs: Math.max(1, Math.ceil(((1 - this.tokens) / this.rate) * 1000)) };
  }
}
