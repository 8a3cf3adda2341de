// Linkerd's (Finagle's) retry budget: over a sliding window (10 s), retries
// may not exceed `ratio` x requests plus a reserve of `minRetriesPerSecond`
// x window seconds, so a full outage turns into at most ~20% extra load
// instead of numRetries-fold. Every original request deposits; every retry
// withdraws one. The window is kept in one-second buckets.

export interface RetryBudgetOptions {
  /** Retries allowed per request over the window (default 0.2). */
  readonly ratio?: number;
  /** Retries always allowed per second of window (default 10). */
  readonly minRetriesPerSecond?: number;
  /** Window length (default 10 000 ms). */
  readonly windowMs?: number;
}

export const DEFAULT_RETRY_BUDGET = { ratio: 0.2, minRetriesPerSecond: 10, windowMs: 10_000 } as const;

const BUCKETS = 10;

export class RetryBudget {
  readonly ratio: number;
  readonly minRetriesPerSecond: number;
  readonly windowMs: number;
  private readonly bucketMs: number;
  private readonly requests = new Float64Array(BUCKETS);
  private readonly retries = new Float64Array(BUCKETS);
  /** Index (in bucket units since the epoch of `now`) of the newest bucket. */
  private head = -1;

  constructor(opts: RetryBudgetOptions = {}) {
    this.ratio = opts.ratio ?? DEFAULT_RETRY_BUDGET.ratio;
    this.minRetriesPerSecond = opts.minRetriesPerSecond ?? DEFAULT_RETRY_BUDGET.minRetriesPerSecond;
    this.windowMs = opts.windowMs ?? DEFAULT_RETRY_BUDGET.windowMs;
    this.bucketMs = this.windowMs / BUCKETS;
  }

  private advance(now: number): number {
    const idx = Math.floor(now / this.bucketMs);
    if (this.head === -1) this.head = idx;
    if (idx > this.head) {
      const steps = Math.min(BUCKETS, idx - this.head);
      for (let i = 1; i <= steps; i++) {
        const slot = (this.head + i) % BUCKETS;
        this.requests[slot] = 0;
        this.retries[slot] = 0;
      }
      this.head = idx;
    }
    return this.head % BUCKETS;
  }

  /** An original request (not a retry). */
  deposit(now: number): void {
    this.requests[this.advance(now)]! += 1;
  }

  /** Take the budget for one retry; false when exhausted. */
  tryWithdraw(now: number): boolean {
    const slot = this.advance(now);
    let req = 0;
    let ret = 0;
    for (let i = 0; i < BUCKETS; i++) {
      req += this.requests[i]!;
      ret += this.retries[i]!;
    }
    const allowed = this.ratio * req + this.minRetriesPerSecond * (this.windowMs / 1000);
    if (ret + 1 > allowed) return false;
    this.retries[slot]! += 1;
    return true;
  }

  /** Requests and retries currently in the window. */
  window(now: number): { requests: number; retries: number } {
    this.advance(now);
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < BUCKETS; i++) {
      requests += this.requests[i]!;
      retries += this.retries[i]!;
    }
    return { requests, retries };
  }
}
