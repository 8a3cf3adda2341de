// Round robin, as grpc-js: endpoints in turn, ignoring weights (use
// weighted_round_robin for those). Each picker starts at a random offset so
// a fleet of proxies rebuilt by the same config push does not send its
// first requests to the same endpoint in lockstep.
import type { Endpoint, LbPolicyImpl, PickResult, Picker } from './types.ts';

export const roundRobin: LbPolicyImpl = {
  name: 'round_robin',
  build(endpoints: readonly Endpoint[], opts): Picker {
    const results: PickResult[] = endpoints.map((endpoint) => ({ kind: 'pick', endpoint }));
    const n = results.length;
    let next = Math.min(n - 1, Math.floor(opts.random() * n));
    return {
      pick() {
        const r = results[next]!;
        next = next + 1 === n ? 0 : next + 1;
        return r;
      },
    };
  },
};
