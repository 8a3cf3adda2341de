// Ring hash (Envoy RING_HASH, Karger et al.): every endpoint owns points on a
// 53-bit ring in proportion to its weight; a request's hash key goes to the
// first point at or after hash(key), wrapping. Only the keys that fall on a
// removed endpoint's arcs (plus the small shift from rescaling, below) move
// when the set changes. Requests without a hash key get a weighted random
// pick.
//
// Ring size, as Envoy: with normalized weights n_i = w_i / sum(w),
//   scale = min(ceil(min(n_i) * minRingSize) / min(n_i), maxRingSize)
// and endpoint i gets about scale * n_i points ("key_0", "key_1", ...), the
// running total rounded so the ring has ~scale points. The lightest endpoint
// therefore has at least ceil(min(n) * minRingSize) points unless the
// maximum caps the ring.
import { hash53 } from './hash.ts';
import type { Endpoint, LbPolicyImpl, PickResult, Picker } from './types.ts';
import { createWeightedSampler } from './weighted-sampler.ts';

export const DEFAULT_MIN_RING_SIZE = 1024;
export const DEFAULT_MAX_RING_SIZE = 8 * 1024 * 1024;

export interface Ring {
  /** Sorted ring positions. */
  readonly hashes: Float64Array;
  /** Endpoint index for each position. */
  readonly owners: Uint32Array;
}

export function buildRing(endpoints: readonly Endpoint[], minRingSize: number, maxRingSize: number): Ring {
  const min = Math.max(1, Math.floor(minRingSize));
  const max = Math.max(min, Math.floor(maxRingSize));
  let total = 0;
  for (const e of endpoints) total += e.weight;
  let minNorm = Infinity;
  for (const e of endpoints) minNorm = Math.min(minNorm, e.weight / total);
  const scale = Math.min(Math.ceil(minNorm * min) / minNorm, max);
  const size = Math.max(endpoints.length, Math.ceil(scale - 1e-9));
  const pointHash: number[] = [];
  const pointOwner: number[] = [];
  let current = 0;
  let target = 0;
  for (let i = 0; i < endpoints.length; i++) {
    const e = endpoints[i]!;
    target += (scale * e.weight) / total;
    // Every endpoint gets at least one point, whatever the cap did.
    let n = 0;
    while ((current < target - 1e-9 || n === 0) && pointHash.length < size + endpoints.length) {
      pointHash.push(hash53(`${e.key}_${n}`));
      pointOwner.push(i);
      current++;
      n++;
    }
  }
  const order = Array.from(pointHash.keys()).sort((a, b) => pointHash[a]! - pointHash[b]! || pointOwner[a]! - pointOwner[b]!);
  const hashes = new Float64Array(order.length);
  const owners = new Uint32Array(order.length);
  for (let j = 0; j < order.length; j++) {
    hashes[j] = pointHash[order[j]!]!;
    owners[j] = pointOwner[order[j]!]!;
  }
  return { hashes, owners };
}

/** Index of the endpoint owning `h` on the ring. */
export function ringLookup(ring: Ring, h: number): number {
  const hashes = ring.hashes;
  let lo = 0;
  let hi = hashes.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (hashes[mid]! < h) lo = mid + 1;
    else hi = mid;
  }
  return ring.owners[lo === hashes.length ? 0 : lo]!;
}

export const ringHash: LbPolicyImpl = {
  name: 'ring_hash',
  splitByLocality: false,
  build(endpoints: readonly Endpoint[], opts): Picker {
    const results: PickResult[] = endpoints.map((endpoint) => ({ kind: 'pick', endpoint }));
    const ring = buildRing(
      endpoints,
      opts.ringHash?.minRingSize ?? DEFAULT_MIN_RING_SIZE,
      opts.ringHash?.maxRingSize ?? DEFAULT_MAX_RING_SIZE,
    );
    const sampler = createWeightedSampler(endpoints.map((e) => e.weight));
    return {
      pick(ctx) {
        if (ctx.hashKey === undefined) return results[sampler.sample(ctx.random())]!;
        return results[ringLookup(ring, hash53(ctx.hashKey))]!;
      },
    };
  },
};
