// Peak EWMA (Finagle / Linkerd, Trellis's default): cost of an endpoint =
// latency estimate (load.ts: peaks at once, decays over ~10 s) x (active
// requests + 1), divided by its weight; power of two choices over costs.
// An endpoint with no estimate costs 0 while idle (so it gets probed) and
// PENALTY + active once a request is outstanding (so a new or silent
// endpoint gets one probe, not a burst, until its first response). An
// endpoint whose proxy turned requests away lately (rate limited, overflow)
// costs load.ts's rejectionPenalty on top.
import { ewmaAt, rejectionPenalty } from './load.ts';
import type { Endpoint, LbPolicyImpl, PickResult, Picker } from './types.ts';
import { createWeightedSampler, sampleTwo } from './weighted-sampler.ts';

/** Finagle's "no data but busy" cost; far above any real latency x load. */
export const NO_DATA_PENALTY = 1e12;

export function peakEwmaCost(e: Endpoint, now: number): number {
  const est = e.load.hasData ? ewmaAt(e.load, now) : 0;
  const active = e.load.active;
  const cost = est === 0 && active > 0 ? NO_DATA_PENALTY + active : est * (active + 1);
  return cost / e.weight + rejectionPenalty(e.load, now);
}

export const peakEwma: LbPolicyImpl = {
  name: 'peak_ewma',
  build(endpoints: readonly Endpoint[], opts): Picker {
    const results: PickResult[] = endpoints.map((endpoint) => ({ kind: 'pick', endpoint }));
    const sampler = createWeightedSampler(endpoints.map((e) => e.weight));
    const now = opts.now;
    return {
      pick(ctx) {
        const [a, b] = sampleTwo(sampler, ctx.random);
        if (a === b) return results[a]!;
        const t = now();
        return results[peakEwmaCost(endpoints[b]!, t) < peakEwmaCost(endpoints[a]!, t) ? b : a]!;
      },
    };
  },
};
