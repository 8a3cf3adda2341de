import assert from 'node:assert/strict';
import { test } from 'node:test';
import { roundRobin } from './round-robin.ts';
import { buildOpts, countPicks, endpoints, seededRandom } from './testing.ts';

test('round robin visits every endpoint in turn, ignoring weights', () => {
  const eps = endpoints(4).map((e, i) => ({ ...e, weight: i + 1 }));
  const picker = roundRobin.build(eps, buildOpts());
  const rnd = seededRandom(1);
  const first = picker.pick({ random: rnd });
  assert.equal(first.kind, 'pick');
  const start = eps.findIndex((e) => first.kind === 'pick' && e === first.endpoint);
  for (let i = 1; i < 12; i++) {
    const r = picker.pick({ random: rnd });
    assert.equal(r.kind === 'pick' && r.endpoint, eps[(start + i) % 4]);
  }
  const counts = countPicks(picker, eps, 4000, rnd);
  for (const c of counts.values()) assert.equal(c, 1000);
});

test('round robin starts at a random offset', () => {
  const eps = endpoints(8);
  const starts = new Set<string>();
  const rnd = seededRandom(7);
  for (let i = 0; i < 50; i++) {
    const r = roundRobin.build(eps, buildOpts({ random: rnd })).pick({ random: rnd });
    if (r.kind === 'pick') starts.add(r.endpoint.key);
  }
  assert.ok(starts.size >= 6, `only ${starts.size} distinct start endpoints`);
});
