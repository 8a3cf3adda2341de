import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hash53, hashUnit, murmur3String } from './hash.ts';

test('murmur3 x86_32 matches the reference vectors', () => {
  assert.equal(murmur3String('', 0), 0);
  assert.equal(murmur3String('', 1), 0x514e28b7);
  assert.equal(murmur3String('hello', 0), 0x248bfa47);
  assert.equal(murmur3String('The quick brown fox jumps over the lazy dog', 0), 0x2e4ff723);
  // tails of 1, 2 and 3 bytes, and UTF-8 input
  assert.equal(murmur3String('a', 0), 0x3c2569b2);
  assert.equal(murmur3String('ab', 0), 0x9bbfd75f);
  assert.equal(murmur3String('abc', 0), 0xb3dd93fa);
  assert.equal(murmur3String('ü', 0), murmur3String('\u00fc', 0));
  assert.notEqual(murmur3String('ü', 0), murmur3String('u', 0));
});

test('hash53 is deterministic, in range, and spreads over [0, 1)', () => {
  assert.equal(hash53('10.0.0.1:80_0'), hash53('10.0.0.1:80_0'));
  const buckets = new Array(10).fill(0);
  for (let i = 0; i < 10_000; i++) {
    const h = hash53(`key-${i}`);
    assert.ok(Number.isSafeInteger(h) && h >= 0);
    buckets[Math.floor(hashUnit(`key-${i}`) * 10)]++;
  }
  for (const b of buckets) assert.ok(b > 900 && b < 1100, `bucket ${b}`);
});
