// Weighted index sampling: pick index i with probability w[i] / sum(w).
// Equal weights take the O(1) path; otherwise a cumulative table and a
// binary search (O(log n)). Shared by random, least-request, peak-EWMA,
// ring hash's fallback and the locality tiers.

export interface WeightedSampler {
  readonly size: number;
  readonly total: number;
  /** `u` uniform in [0, 1). */
  sample(u: number): number;
}

export function createWeightedSampler(weights: readonly number[]): WeightedSampler {
  const n = weights.length;
  if (n === 0) throw new RangeError('weighted sampler: no weights');
  let total = 0;
  let uniform = true;
  const cumulative = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const w = weights[i]!;
    if (!(w > 0) || !Number.isFinite(w)) throw new RangeError(`weighted sampler: weight[${i}] must be a positive finite number, got ${w}`);
    if (w !== weights[0]) uniform = false;
    total += w;
    cumulative[i] = total;
  }
  const last = n - 1;
  if (uniform) {
    return { size: n, total, sample: (u) => Math.min(last, Math.floor(u * n)) };
  }
  return {
    size: n,
    total,
    sample(u) {
      const target = u * total;
      let lo = 0;
      let hi = last;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (cumulative[mid]! > target) hi = mid;
        else lo = mid + 1;
      }
      return lo;
    },
  };
}

/** Two distinct indices for power-of-two-choices, each drawn by weight.
 * Returns [a, a] only when n === 1. */
export function sampleTwo(s: WeightedSampler, random: () => number): [number, number] {
  const a = s.sample(random());
  if (s.size === 1) return [a, a];
  // A redraw by weight keeps the second choice weight-proportional; after a
  // few collisions (one dominant weight) fall back to a uniform other index.
  for (let tries = 0; tries < 3; tries++) {
    const b = s.sample(random());
    if (b !== a) return [a, b];
  }
  const b = Math.min(s.size - 2, Math.floor(random() * (s.size - 1)));
  return [a, b >= a ? b + 1 : b];
}
