// HTTP/2 rapid reset (CVE-2023-44487) across connections. nghttp2 already
// sends GOAWAY to one connection that resets too fast, but an attacker that
// reconnects starts every connection with a fresh allowance. This guard keeps
// one token bucket per client address, shared by all of that address's
// HTTP/2 connections on the proxy: every stream the client cancels before its
// response is complete (RST_STREAM, or a connection closed under open
// streams) takes a token. An empty bucket trips the address: its connections
// get GOAWAY(ENHANCE_YOUR_CALM) and new ones are refused until the cool-down
// ends. The table is an LRU bounded in entries, so spoofed or many addresses
// cannot grow it without bound.

export interface ResetGuardOptions {
  /** Cancelled streams an address may make at once (bucket size). Default 200. */
  burst?: number;
  /** Refill: cancelled streams per second an address may keep up. Default 50. */
  perSecond?: number;
  /** How long a tripped address is refused (ms). Default 10,000. */
  cooldownMs?: number;
  /** Most addresses remembered (least recently seen are forgotten). Default 10,000. */
  maxAddresses?: number;
  /** Called once per trip (metric, log line). */
  onTrip?: (address: string, cooldownMs: number) => void;
  now?: () => number;
}

interface Entry {
  tokens: number;
  at: number;
  /** Refused until this time (ms); 0 when not tripped. */
  until: number;
}

export const RESET_GUARD_DEFAULTS = { burst: 200, perSecond: 50, cooldownMs: 10_000, maxAddresses: 10_000 } as const;

export class ResetGuard {
  private readonly burst: number;
  private readonly perMs: number;
  private readonly cooldownMs: number;
  private readonly maxAddresses: number;
  private readonly onTrip: ResetGuardOptions['onTrip'];
  private readonly now: () => number;
  private readonly table = new Map<string, Entry>();

  constructor(o: ResetGuardOptions = {}) {
    this.burst = o.burst ?? RESET_GUARD_DEFAULTS.burst;
    this.perMs = (o.perSecond ?? RESET_GUARD_DEFAULTS.perSecond) / 1000;
    this.cooldownMs = o.cooldownMs ?? RESET_GUARD_DEFAULTS.cooldownMs;
    this.maxAddresses = o.maxAddresses ?? RESET_GUARD_DEFAULTS.maxAddresses;
    this.onTrip = o.onTrip;
    this.now = o.now ?? Date.now;
  }

  /** Addresses remembered now (bounded by maxAddresses). */
  get size(): number {
    return this.table.size;
  }

  /** May a connection from `address` be served now? */
  admits(address: string): boolean {
    const e = this.table.get(address);
    return e === undefined || e.until <= this.now();
  }

  /** A stream from `address` was cancelled before its response completed.
   * Returns false when the address is (now) over its bound: the caller
   * sends GOAWAY(ENHANCE_YOUR_CALM). */
  cancelled(address: string): boolean {
    const now = this.now();
    let e = this.table.get(address);
    if (e === undefined) {
      e = { tokens: this.burst, at: now, until: 0 };
      if (this.table.size >= this.maxAddresses) {
        const oldest = this.table.keys().next().value;
        if (oldest !== undefined) this.table.delete(oldest);
      }
    } else {
      this.table.delete(address); // re-insert: most recently seen last
    }
    this.table.set(address, e);
    if (e.until > now) return false;
    e.tokens = Math.min(this.burst, e.tokens + (now - e.at) * this.perMs);
    e.at = now;
    e.tokens -= 1;
    if (e.tokens >= 0) return true;
    e.until = now + this.cooldownMs;
    e.tokens = this.burst;
    this.onTrip?.(address, this.cooldownMs);
    return false;
  }
}
