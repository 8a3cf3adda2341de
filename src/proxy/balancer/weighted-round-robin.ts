// Weighted round robin by earliest deadline first (Envoy's EDF scheduler):
// every endpoint has a virtual deadline that advances by 1 / weight each
// time it is picked; the earliest deadline goes next. Over any window each
// endpoint gets weight / total of the picks (within one pick), and picks are
// interleaved smoothly (weights 5:1 give A A B A A A ..., not A*5 then B).
// Initial deadlines are jittered (u / weight) so proxies do not synchronize.
// O(log n) per pick through a binary heap; ties go to the lower index.
import type { Endpoint, LbPolicyImpl, PickResult, Picker } from './types.ts';

export const weightedRoundRobin: LbPolicyImpl = {
  name: 'weighted_round_robin',
  build(endpoints: readonly Endpoint[], opts): Picker {
    const n = endpoints.length;
    const results: PickResult[] = endpoints.map((endpoint) => ({ kind: 'pick', endpoint }));
    const step = new Float64Array(n);
    const deadline = new Float64Array(n);
    const heap = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      step[i] = 1 / endpoints[i]!.weight;
      deadline[i] = opts.random() * step[i]!;
      heap[i] = i;
    }
    const before = (a: number, b: number): boolean =>
      deadline[a]! < deadline[b]! || (deadline[a] === deadline[b] && a < b);
    const siftDown = (pos: number): void => {
      const item = heap[pos]!;
      for (;;) {
        const l = 2 * pos + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && before(heap[r]!, heap[l]!) ? r : l;
        if (!before(heap[c]!, item)) break;
        heap[pos] = heap[c]!;
        pos = c;
      }
      heap[pos] = item;
    };
    for (let i = (n >>> 1) - 1; i >= 0; i--) siftDown(i);
    return {
      pick() {
        const top = heap[0]!;
        deadline[top] = deadline[top]! + step[top]!;
        siftDown(0);
        return results[top]!;
      },
    };
  },
};
