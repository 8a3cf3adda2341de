// Least request by power of two choices (Envoy LEAST_REQUEST, Mitzenmacher):
// draw two distinct endpoints by weight and take the one with the lower
// active / weight. Ties go to the first draw, so with no load the picks
// follow the weights exactly; the most loaded endpoint (per unit of weight)
// is never chosen while another exists.
import type { Endpoint, LbPolicyImpl, PickResult, Picker } from './types.ts';
import { createWeightedSampler, sampleTwo } from './weighted-sampler.ts';

export const leastRequest: LbPolicyImpl = {
  name: 'least_request',
  build(endpoints: readonly Endpoint[]): Picker {
    const results: PickResult[] = endpoints.map((endpoint) => ({ kind: 'pick', endpoint }));
    const sampler = createWeightedSampler(endpoints.map((e) => e.weight));
    const cost = (i: number): number => {
      const e = endpoints[i]!;
      return e.load.active / e.weight;
    };
    return {
      pick(ctx) {
        const [a, b] = sampleTwo(sampler, ctx.random);
        return results[cost(b) < cost(a) ? b : a]!;
      },
    };
  },
};
