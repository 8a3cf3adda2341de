import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endpoint, buildOpts, countPicks, seededRandom } from './testing.ts';
import { weightedRoundRobin } from './weighted-round-robin.ts';

test('weighted round robin honours weights within one pick per cycle', () => {
  const eps = [endpoint(1, { weight: 5 }), endpoint(2, { weight: 3 }), endpoint(3, { weight: 1 }), endpoint(4, { weight: 1 })];
  const picker = weightedRoundRobin.build(eps, buildOpts());
  const counts = countPicks(picker, eps, 10_000, seededRandom(1));
  assert.deepEqual([...counts.values()].map((c) => Math.round(c / 100) * 100), [5000, 3000, 1000, 1000]);
  for (const [i, e] of eps.entries()) assert.ok(Math.abs(counts.get(e.key)! - e.weight * 1000) <= 1, `endpoint ${i}: ${counts.get(e.key)}`);
});

test('weighted round robin interleaves smoothly', () => {
  const eps = [endpoint(1, { weight: 5 }), endpoint(2, { weight: 1 })];
  const picker = weightedRoundRobin.build(eps, buildOpts({ random: seededRandom(3) }));
  const seq = Array.from({ length: 60 }, () => {
    const r = picker.pick({ random: Math.random });
    return r.kind === 'pick' && r.endpoint === eps[1] ? 'B' : 'A';
  }).join('');
  // every window of 6 consecutive picks has exactly one B after warm-up
  for (let i = 6; i + 6 <= seq.length; i++) assert.equal(seq.slice(i, i + 6).split('B').length - 1, 1, seq);
});

test('equal weights behave as round robin', () => {
  const eps = [endpoint(1), endpoint(2), endpoint(3)];
  const picker = weightedRoundRobin.build(eps, buildOpts());
  const seq = Array.from({ length: 9 }, () => {
    const r = picker.pick({ random: Math.random });
    return r.kind === 'pick' ? r.endpoint.key : '';
  });
  assert.deepEqual(seq.slice(3, 6), seq.slice(0, 3));
  assert.equal(new Set(seq.slice(0, 3)).size, 3);
});
