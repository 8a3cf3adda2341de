// Weighted random: each pick independent, endpoint i with probability
// weight_i / total. No shared state, so nothing to synchronize.
import type { Endpoint, LbPolicyImpl, PickResult, Picker } from './types.ts';
import { createWeightedSampler } from './weighted-sampler.ts';

export const random: LbPolicyImpl = {
  name: 'random',
  build(endpoints: readonly Endpoint[]): Picker {
    const results: PickResult[] = endpoints.map((endpoint) => ({ kind: 'pick', endpoint }));
    const sampler = createWeightedSampler(endpoints.map((e) => e.weight));
    return { pick: (ctx) => results[sampler.sample(ctx.random())]! };
  },
};
