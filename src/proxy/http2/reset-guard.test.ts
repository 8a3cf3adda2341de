import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResetGuard } from './reset-guard.ts';

test('an address over its burst trips once, is refused for the cool-down, then admitted with a full bucket', () => {
  let now = 1_000;
  const trips: string[] = [];
  const g = new ResetGuard({ burst: 5, perSecond: 10, cooldownMs: 2_000, now: () => now, onTrip: (a) => trips.push(a) });
  for (let i = 0; i < 5; i++) assert.equal(g.cancelled('10.0.0.1'), true);
  assert.equal(g.cancelled('10.0.0.1'), false);
  assert.deepEqual(trips, ['10.0.0.1']);
  assert.equal(g.admits('10.0.0.1'), false);
  assert.equal(g.cancelled('10.0.0.1'), false, 'still refused');
  assert.equal(trips.length, 1, 'one trip per cool-down');
  assert.equal(g.admits('10.0.0.2'), true, 'other addresses are not affected');
  now += 2_000;
  assert.equal(g.admits('10.0.0.1'), true);
  for (let i = 0; i < 5; i++) assert.equal(g.cancelled('10.0.0.1'), true);
});

test('the bucket refills at perSecond: a steady rate under it never trips', () => {
  let now = 0;
  const g = new ResetGuard({ burst: 5, perSecond: 10, now: () => now });
  for (let i = 0; i < 1_000; i++) {
    now += 110; // ~9 per second
    assert.equal(g.cancelled('10.0.0.1'), true);
  }
});

test('the table is an LRU bounded by maxAddresses', () => {
  const g = new ResetGuard({ burst: 1, maxAddresses: 100, cooldownMs: 60_000 });
  g.cancelled('victim');
  g.cancelled('victim'); // tripped
  assert.equal(g.admits('victim'), false);
  for (let i = 0; i < 99; i++) g.cancelled(`a${i}`);
  assert.equal(g.size, 100);
  g.cancelled('victim'); // touched: most recent again
  for (let i = 0; i < 50; i++) g.cancelled(`b${i}`);
  assert.equal(g.size, 100);
  assert.equal(g.admits('victim'), false, 'a recently seen address is kept');
  for (let i = 0; i < 10_000; i++) g.cancelled(`c${i}`);
  assert.equal(g.size, 100);
});
