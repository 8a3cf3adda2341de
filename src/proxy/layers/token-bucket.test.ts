import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateBucket, TokenBucket } from './token-bucket.ts';
import { RetryBudget } from './retry-budget.ts';

test('token bucket: starts full, refills whole fills on the interval grid, says when the next token is due', () => {
  const b = new TokenBucket({ maxTokens: 3, tokensPerFill: 2, fillIntervalMs: 1000 }, 0);
  for (let i = 0; i < 3; i++) assert.equal(b.take(0).ok, true);
  assert.deepEqual(b.take(250), { ok: false, retryAfterMs: 750 });
  assert.equal(b.take(999).ok, false);
  assert.equal(b.take(1000).ok, true);
  assert.equal(b.take(1000).ok, true);
  assert.equal(b.take(1000).ok, false);
  assert.equal(b.available(10_000), 3, 'never above maxTokens');
});

test('rate bucket: continuous refill at the assigned rate, rate changes apply from now', () => {
  const b = new RateBucket(10, 1, 0);
  assert.equal(b.take(0).ok, true);
  const r = b.take(0);
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.retryAfterMs, 100);
  assert.equal(b.take(100).ok, true);
  b.setRate(1000, 1, 100);
  assert.equal(b.take(101).ok, true);
});

test('retry budget: retries <= ratio x requests + reserve over the window, which slides', () => {
  const budget = new RetryBudget({ ratio: 0.2, minRetriesPerSecond: 1, windowMs: 10_000 });
  for (let i = 0; i < 100; i++) budget.deposit(0);
  let allowed = 0;
  while (budget.tryWithdraw(0) && allowed < 1000) allowed++;
  assert.equal(allowed, 30, '0.2 x 100 + 1/s x 10 s');
  // After the window has passed, the old requests and retries are forgotten.
  assert.deepEqual(budget.window(10_500), { requests: 0, retries: 0 });
  let again = 0;
  while (budget.tryWithdraw(10_500) && again < 1000) again++;
  assert.equal(again, 10, 'only the reserve is left with no traffic');
});
