import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Locality } from '../config/types.ts';
import { buildLocalityPicker, spillShares } from './locality.ts';
import type { EndpointSet, LocalityOptions } from './locality.ts';
import { random } from './random.ts';
import { ringHash } from './ring-hash.ts';
import { roundRobin } from './round-robin.ts';
import { buildOpts, countPicks, endpoint, seededRandom } from './testing.ts';
import type { Endpoint, LbPolicyImpl } from './types.ts';

const SELF: Locality = { region: 'r1', zone: 'a', subZone: '' };
const ZONE_B: Locality = { region: 'r1', zone: 'b', subZone: '' };
const REMOTE: Locality = { region: 'r2', zone: 'x', subZone: '' };

let next = 1;
function make(n: number, locality: Locality, priority = 0, localityWeight = 1): Endpoint[] {
  return Array.from({ length: n }, () => endpoint(next++, { locality, priority, localityWeight }));
}

function share(set: EndpointSet, which: readonly Endpoint[], opts: Partial<LocalityOptions> = {}, policy: LbPolicyImpl = random, n = 10_000): number {
  const picker = buildLocalityPicker(set, policy, { ...buildOpts(), localityAware: false, self: SELF, ...opts });
  const counts = countPicks(picker, set.all, n, seededRandom(41));
  return which.reduce((a, e) => a + counts.get(e.key)!, 0) / n;
}

test('spillover shares: Envoy overprovisioning factor 1.4', () => {
  assert.deepEqual(spillShares([{ total: 10, eligible: 10 }, { total: 5, eligible: 5 }], 1.4), [[0, 1]]);
  assert.deepEqual(spillShares([{ total: 10, eligible: 8 }, { total: 5, eligible: 5 }], 1.4), [[0, 1]]);
  const half = spillShares([{ total: 10, eligible: 5 }, { total: 5, eligible: 5 }], 1.4);
  assert.equal(half[0]![1], 0.7);
  assert.ok(Math.abs(half[1]![1] - 0.3) < 1e-12);
  const poor = spillShares([{ total: 10, eligible: 1 }, { total: 10, eligible: 2 }], 1.4);
  assert.ok(Math.abs(poor[0]![1] - 1 / 3) < 1e-12 && Math.abs(poor[1]![1] - 2 / 3) < 1e-12);
  assert.deepEqual(spillShares([{ total: 3, eligible: 0 }], 1.4), []);
});

test('locality-aware: own zone first, then own region, then the rest', () => {
  const a = make(2, SELF);
  const b = make(2, ZONE_B);
  const r = make(2, REMOTE);
  const all = [...r, ...b, ...a];
  assert.equal(share({ all, eligible: all }, a, { localityAware: true }), 1);
  assert.equal(share({ all, eligible: [...r, ...b] }, b, { localityAware: true }), 1, 'zone down: own region');
  assert.equal(share({ all, eligible: r }, r, { localityAware: true }), 1, 'region down: anywhere');
  // without locality awareness the endpoints share evenly
  const even = share({ all, eligible: all }, a, { localityAware: false });
  assert.ok(Math.abs(even - 1 / 3) < 0.02, `${even}`);
});

test('a partly unhealthy own zone spills proportionally', () => {
  const a = make(10, SELF);
  const b = make(10, ZONE_B);
  const all = [...a, ...b];
  const eligible = [...a.slice(0, 5), ...b];
  const s = share({ all, eligible }, a, { localityAware: true });
  assert.ok(Math.abs(s - 0.7) < 0.02, `own zone share ${s}`);
  assert.equal(share({ all, eligible: [...a.slice(0, 8), ...b] }, a, { localityAware: true }), 1, '80% healthy keeps everything');
});

test('priority tiers: lowest healthy tier, spillover when partly unhealthy', () => {
  const p0 = make(10, SELF, 0);
  const p1 = make(10, REMOTE, 1);
  const all = [...p1, ...p0];
  assert.equal(share({ all, eligible: all }, p0), 1);
  assert.equal(share({ all, eligible: p1 }, p1), 1, 'tier 0 down: tier 1 takes everything');
  const s = share({ all, eligible: [...p0.slice(0, 5), ...p1] }, p0);
  assert.ok(Math.abs(s - 0.7) < 0.02, `tier 0 share ${s}`);
  const poor = share({ all, eligible: [...p0.slice(0, 1), ...p1.slice(0, 2)] }, p0);
  assert.ok(Math.abs(poor - 1 / 3) < 0.02, `normalized tier 0 share ${poor}`);
  const none = buildLocalityPicker({ all, eligible: [] }, random, { ...buildOpts(), localityAware: false, self: SELF });
  assert.equal(none.pick({ random: Math.random }).kind, 'none');
});

test('locality weights split a tier when they differ; equal weights leave one set', () => {
  const l1 = make(1, SELF, 0, 1);
  const l3 = make(3, ZONE_B, 0, 3);
  const s = share({ all: [...l1, ...l3], eligible: [...l1, ...l3] }, l1);
  assert.ok(Math.abs(s - 0.25) < 0.02, `weight 1 vs 3: ${s}`);
  const m1 = make(1, SELF, 0, 5);
  const m3 = make(3, ZONE_B, 0, 5);
  const even = share({ all: [...m1, ...m3], eligible: [...m1, ...m3] }, m1);
  assert.ok(Math.abs(even - 0.25) < 0.02, `equal locality weights, 1 of 4 endpoints: ${even}`);
  const w1 = make(1, SELF, 0, 1);
  const w3 = make(1, ZONE_B, 0, 3);
  // round robin inside each locality still sees the split
  const rr = share({ all: [...w1, ...w3], eligible: [...w1, ...w3] }, w3, {}, roundRobin);
  assert.ok(Math.abs(rr - 0.75) < 0.02, `${rr}`);
});

test('a hash key sticks to one endpoint through the tiers', () => {
  const p0 = make(4, SELF, 0);
  const p1 = make(4, REMOTE, 1);
  const all = [...p0, ...p1];
  const picker = buildLocalityPicker({ all, eligible: [...p0.slice(0, 2), ...p1] }, ringHash, { ...buildOpts(), localityAware: false, self: SELF });
  const noRandom = (): number => { throw new Error('random used'); };
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const a = picker.pick({ hashKey: `k${i}`, random: noRandom });
    const b = picker.pick({ hashKey: `k${i}`, random: noRandom });
    assert.ok(a.kind === 'pick' && b.kind === 'pick' && a.endpoint === b.endpoint);
    if (a.kind === 'pick') seen.add(a.endpoint.key);
  }
  assert.ok(seen.size >= 5, 'keys still spread over both tiers');
});
