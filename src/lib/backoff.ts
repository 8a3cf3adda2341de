// Reconnect delays for clients of the control plane (the xDS stream, the CA):
// exponential backoff with full jitter ("Exponential Backoff and Jitter",
// AWS Architecture Blog): the delay is uniform in [0, ceiling), the ceiling
// doubling from `initialMs`. The ceiling stays at `earlyMaxMs` (a few
// seconds) for the first `earlyAttempts` attempts, since a control plane
// that restarts is back within seconds and config applied meanwhile must
// not wait for a long timer; only a peer that stays away longer lets the
// ceiling grow (doubling) to `maxMs`, so a fleet of proxies does not hammer
// a control plane that is down for good. Full jitter spreads that fleet's
// attempts over the whole window instead of in waves.
export interface Backoff {
  readonly initialMs: number;
  readonly earlyMaxMs: number;
  readonly earlyAttempts: number;
  readonly maxMs: number;
}

/** Control-plane clients: 250 ms, ceiling 3 s for ~20 attempts (about 30 s
 * of outage on average), then growing to 30 s. */
export const RECONNECT_BACKOFF: Backoff = { initialMs: 250, earlyMaxMs: 3_000, earlyAttempts: 20, maxMs: 30_000 };

/** The ceiling of attempt `attempt` (0 = the first retry). */
export function backoffCeiling(attempt: number, b: Backoff): number {
  const cap = attempt < b.earlyAttempts ? b.earlyMaxMs : b.earlyMaxMs * 2 ** Math.min(attempt - b.earlyAttempts + 1, 30);
  return Math.min(b.maxMs, cap, b.initialMs * 2 ** Math.min(attempt, 30));
}

/** The delay before retry `attempt`: uniform in [0, ceiling). */
export function backoffDelay(attempt: number, b: Backoff, random: () => number = Math.random): number {
  return random() * backoffCeiling(attempt, b);
}
