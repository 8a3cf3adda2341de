// Test helpers for the balancers: endpoints, a seeded random source, pick
// counting and a chi-square check. Not used by production code.
import type { Locality } from '../config/types.ts';
import { createEndpointLoad } from './load.ts';
import type { BuildOptions, Endpoint, Picker } from './types.ts';

export const ZONE_A: Locality = { region: 'r1', zone: 'a', subZone: '' };

/** mulberry32: a small, well-mixed deterministic PRNG in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface EndpointInit {
  weight?: number;
  locality?: Locality;
  priority?: number;
  localityWeight?: number;
}

export function endpoint(i: number | string, init: EndpointInit = {}): Endpoint {
  const address = typeof i === 'number' ? `10.0.0.${i}` : i;
  return {
    key: `${address}:8080`,
    address,
    port: 8080,
    weight: init.weight ?? 1,
    locality: init.locality ?? ZONE_A,
    priority: init.priority ?? 0,
    localityWeight: init.localityWeight ?? 1,
    labels: {},
    load: createEndpointLoad(0),
  };
}

export function endpoints(n: number, init: EndpointInit = {}): Endpoint[] {
  return Array.from({ length: n }, (_, i) => endpoint(i + 1, init));
}

export function buildOpts(over: Partial<BuildOptions> = {}): BuildOptions {
  return { now: () => 0, random: seededRandom(99), ...over };
}

/** Pick `n` times; count picks by endpoint key (every key present, 0 if never). */
export function countPicks(picker: Picker, eps: readonly Endpoint[], n: number, random: () => number, hashKey?: (i: number) => string): Map<string, number> {
  const counts = new Map<string, number>(eps.map((e) => [e.key, 0]));
  for (let i = 0; i < n; i++) {
    const r = picker.pick(hashKey ? { random, hashKey: hashKey(i) } : { random });
    if (r.kind !== 'pick') throw new Error('picker returned none');
    counts.set(r.endpoint.key, (counts.get(r.endpoint.key) ?? 0) + 1);
  }
  return counts;
}

/** Chi-square statistic of observed counts against expected proportions. */
export function chiSquare(observed: readonly number[], expectedShares: readonly number[]): number {
  const n = observed.reduce((a, b) => a + b, 0);
  let chi = 0;
  observed.forEach((o, i) => {
    const e = n * expectedShares[i]!;
    chi += ((o - e) * (o - e)) / e;
  });
  return chi;
}

/** Critical values at p = 0.001 by degrees of freedom (1..9). */
export const CHI2_CRITICAL_0_001 = [NaN, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88];
