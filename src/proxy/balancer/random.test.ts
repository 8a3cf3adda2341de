import assert from 'node:assert/strict';
import { test } from 'node:test';
import { random } from './random.ts';
import { buildOpts, CHI2_CRITICAL_0_001, chiSquare, countPicks, endpoint, seededRandom } from './testing.ts';
import { createWeightedSampler, sampleTwo } from './weighted-sampler.ts';

test('random picks follow the weights (chi-square, p = 0.001)', () => {
  const eps = [endpoint(1, { weight: 1 }), endpoint(2, { weight: 2 }), endpoint(3, { weight: 3 }), endpoint(4, { weight: 4 })];
  const counts = countPicks(random.build(eps, buildOpts()), eps, 20_000, seededRandom(5));
  const chi = chiSquare([...counts.values()], [0.1, 0.2, 0.3, 0.4]);
  assert.ok(chi < CHI2_CRITICAL_0_001[3]!, `chi2 = ${chi}`);
});

test('random with a wrong expectation fails the same check', () => {
  const eps = [endpoint(1, { weight: 1 }), endpoint(2, { weight: 2 })];
  const counts = countPicks(random.build(eps, buildOpts()), eps, 20_000, seededRandom(5));
  assert.ok(chiSquare([...counts.values()], [0.5, 0.5]) > CHI2_CRITICAL_0_001[1]!);
});

test('weighted sampler rejects bad weights and sampleTwo returns distinct indices', () => {
  assert.throws(() => createWeightedSampler([]), /no weights/);
  assert.throws(() => createWeightedSampler([1, 0]), /weight\[1\]/);
  const s = createWeightedSampler([1000, 1, 1]);
  const rnd = seededRandom(2);
  for (let i = 0; i < 1000; i++) {
    const [a, b] = sampleTwo(s, rnd);
    assert.notEqual(a, b);
  }
  assert.deepEqual(sampleTwo(createWeightedSampler([3]), rnd), [0, 0]);
});
