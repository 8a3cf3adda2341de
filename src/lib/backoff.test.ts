import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffCeiling, backoffDelay, RECONNECT_BACKOFF } from './backoff.ts';

test('reconnect backoff: 250 ms doubling, a 3 s ceiling while the outage is young, then growing to 30 s; full jitter', () => {
  const ceilings = Array.from({ length: 28 }, (_, i) => backoffCeiling(i, RECONNECT_BACKOFF));
  assert.deepEqual(ceilings.slice(0, 5), [250, 500, 1000, 2000, 3000]);
  assert.ok(ceilings.slice(4, 20).every((c) => c === 3000), 'capped at 3 s for the first 20 attempts');
  assert.deepEqual(ceilings.slice(20, 24), [6000, 12000, 24000, 30000]);
  assert.equal(backoffCeiling(10_000, RECONNECT_BACKOFF), 30_000);
  // The first 20 attempts together wait at most ~52 s, on average half that.
  assert.ok(ceilings.slice(0, 20).reduce((a, b) => a + b) < 53_000);
  // Full jitter: anywhere in [0, ceiling).
  assert.equal(backoffDelay(3, RECONNECT_BACKOFF, () => 0), 0);
  assert.equal(backoffDelay(3, RECONNECT_BACKOFF, () => 0.5), 1000);
  // A smaller maxMs (tests) bounds every attempt.
  assert.equal(backoffCeiling(5, { ...RECONNECT_BACKOFF, initialMs: 10, maxMs: 40 }), 40);
});
