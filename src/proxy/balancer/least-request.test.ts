import assert from 'node:assert/strict';
import { test } from 'node:test';
import { leastRequest } from './least-request.ts';
import { buildOpts, CHI2_CRITICAL_0_001, chiSquare, countPicks, endpoint, endpoints, seededRandom } from './testing.ts';

test('least request with no load follows the weights', () => {
  const eps = [endpoint(1, { weight: 1 }), endpoint(2, { weight: 1 }), endpoint(3, { weight: 2 })];
  const counts = countPicks(leastRequest.build(eps, buildOpts()), eps, 20_000, seededRandom(11));
  assert.ok(chiSquare([...counts.values()], [0.25, 0.25, 0.5]) < CHI2_CRITICAL_0_001[2]!);
});

test('least request steers away from a busy endpoint', () => {
  const eps = endpoints(4);
  eps[0]!.load.active = 10;
  eps[1]!.load.active = 3;
  const counts = countPicks(leastRequest.build(eps, buildOpts()), eps, 10_000, seededRandom(12));
  assert.equal(counts.get(eps[0]!.key), 0, 'the busiest endpoint is never the lesser of two');
  assert.ok(counts.get(eps[1]!.key)! < 2000, `busy endpoint got ${counts.get(eps[1]!.key)}`);
  assert.ok(counts.get(eps[2]!.key)! > 4000 && counts.get(eps[3]!.key)! > 4000);
});

test('least request compares load per unit of weight', () => {
  // heavy endpoint with 3 in flight at weight 4 costs 1; light with 1 in flight at weight 1 costs 2
  const eps = [endpoint(1, { weight: 4 }), endpoint(2, { weight: 1 })];
  eps[0]!.load.active = 3;
  eps[1]!.load.active = 1;
  const counts = countPicks(leastRequest.build(eps, buildOpts()), eps, 1000, seededRandom(13));
  assert.equal(counts.get(eps[0]!.key), 1000);
});

test('live load changes are seen without rebuilding the picker', () => {
  const eps = endpoints(2);
  const picker = leastRequest.build(eps, buildOpts());
  eps[0]!.load.active = 5;
  assert.equal(countPicks(picker, eps, 100, seededRandom(1)).get(eps[1]!.key), 100);
  eps[0]!.load.active = 0;
  eps[1]!.load.active = 5;
  assert.equal(countPicks(picker, eps, 100, seededRandom(1)).get(eps[0]!.key), 100);
});
