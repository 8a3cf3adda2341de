// Endpoint load counters and the peak-EWMA latency estimate (Finagle /
// Linkerd): a sample above the current estimate replaces it at once (the
// "peak"); a lower one is blended in with weight 1 - exp(-dt / tau), so the
// estimate falls back over ~tau. Without samples the estimate decays toward
// zero, which makes an idle endpoint worth probing again. Reads are pure
// (the decay is computed, not stored) so pickers never mutate.
import type { EndpointLoad, Outcome } from './types.ts';

/** Decay time constant: an old peak loses ~63% of its weight in 10 s. */
export const EWMA_DECAY_MS = 10_000;

export function createEndpointLoad(now: number): EndpointLoad {
  return { active: 0, ewmaMs: 0, ewmaStamp: now, hasData: false, successes: 0, failures: 0, rejectedAt: -Infinity };
}

/** The estimate at `now`, decayed since its last update. */
export function ewmaAt(load: EndpointLoad, now: number, decayMs = EWMA_DECAY_MS): number {
  const dt = now - load.ewmaStamp;
  return dt > 0 ? load.ewmaMs * Math.exp(-dt / decayMs) : load.ewmaMs;
}

export function observeLatency(load: EndpointLoad, sampleMs: number, now: number, decayMs = EWMA_DECAY_MS): void {
  const sample = Number.isFinite(sampleMs) && sampleMs > 0 ? sampleMs : 0;
  if (!load.hasData) {
    load.ewmaMs = sample;
    load.hasData = true;
  } else {
    const dt = Math.max(0, now - load.ewmaStamp);
    const w = Math.exp(-dt / decayMs);
    const current = load.ewmaMs * w;
    load.ewmaMs = sample > current ? sample : current + sample * (1 - w);
  }
  load.ewmaStamp = now;
}

export function recordStart(load: EndpointLoad): void {
  load.active++;
}

/** A request turned away by the endpoint's own proxy (rate limit, overflow)
 * is no latency sample: its fast 429 must not make the endpoint look fast.
 * It makes the endpoint cost extra instead, REJECTED_MS (the shortest
 * retry-after a Trellis proxy sends) decaying with REJECTED_DECAY_MS, so
 * traffic goes to endpoints that serve, and once every endpoint has turned
 * requests away, to the one that did so least recently: every endpoint's
 * share of a global rate limit gets used. */
export const REJECTED_MS = 1000;
export const REJECTED_DECAY_MS = 1000;

/** The extra cost of an endpoint that turned a request away lately (ms). */
export function rejectionPenalty(load: EndpointLoad, now: number): number {
  const dt = now - load.rejectedAt;
  return dt === Infinity ? 0 : REJECTED_MS * Math.exp(-Math.max(0, dt) / REJECTED_DECAY_MS);
}

/** One request ended. Failures never lower the estimate: a fast failure
 * must not make an endpoint look fast (ejecting it is outlier detection's
 * job, not the balancer's); rejections leave it alone (rejectionPenalty). */
export function recordEnd(load: EndpointLoad, outcome: Outcome, now: number): void {
  if (load.active > 0) load.active--;
  if (outcome.rejected) {
    load.failures++;
    load.rejectedAt = now;
  } else if (outcome.ok) {
    load.successes++;
    observeLatency(load, outcome.latencyMs, now);
  } else {
    load.failures++;
    observeLatency(load, Math.max(outcome.latencyMs, ewmaAt(load, now)), now);
  }
}
