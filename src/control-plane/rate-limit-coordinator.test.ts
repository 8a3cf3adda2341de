import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimitCoordinator } from './rate-limit-coordinator.ts';
import { ShareRateLimiter } from '../proxy/layers/global-rate-limit.ts';

test('coordinator: shares are rate / connected proxies, rebalanced on connect, disconnect and limit changes', () => {
  const c = new RateLimitCoordinator();
  const got: Record<string, number | null> = {};
  const off1 = c.connect('svc', 'p1', (a) => (got.p1 = a?.ratePerSec ?? null));
  assert.equal(got.p1, null, 'no limit yet');
  c.setLimit('svc', { ratePerSec: 300 });
  assert.equal(got.p1, 300);
  c.connect('svc', 'p2', (a) => (got.p2 = a?.ratePerSec ?? null));
  c.connect('svc', 'p3', (a) => (got.p3 = a?.ratePerSec ?? null));
  c.connect('other', 'q1', (a) => (got.q1 = a?.ratePerSec ?? null));
  assert.deepEqual(got, { p1: 100, p2: 100, p3: 100, q1: null });
  off1();
  assert.equal(got.p2, 150);
  assert.equal(got.p3, 150);
  c.removeLimit('svc');
  assert.equal(got.p2, null);
  assert.throws(() => c.setLimit('svc', { ratePerSec: Number.NaN }), /ratePerSec/);
});

test('3 proxies sharing 300 req/s hold the aggregate within 10% (simulated 10 s, uneven offered load)', () => {
  const c = new RateLimitCoordinator();
  let now = 0;
  const limiters = [0, 1, 2].map((i) => {
    const l = new ShareRateLimiter();
    c.connect('svc', `p${i}`, (a) => (a ? l.applyShare(a, now) : l.clear()));
    return l;
  });
  c.setLimit('svc', { ratePerSec: 300, burst: 30 });
  // Offered: 150, 200 and 400 req/s (all above the 100 req/s share).
  const rates = [150, 200, 400];
  let admitted = 0;
  let offered = 0;
  for (let ms = 0; ms < 10_000; ms++) {
    now = ms;
    rates.forEach((r, i) => {
      // r requests per second spread over the milliseconds.
      const n = Math.floor(((ms + 1) * r) / 1000) - Math.floor((ms * r) / 1000);
      for (let k = 0; k < n; k++) {
        offered++;
        if (limiters[i]!.tryAcquire(now).ok) admitted++;
      }
    });
  }
  assert.equal(offered, 7500);
  const expected = 300 * 10;
  assert.ok(Math.abs(admitted - expected) <= expected * 0.1, `admitted ${admitted} vs ${expected}`);
  const r = limiters[0]!.tryAcquire(now);
  assert.equal(r.ok, false);
  if (!r.ok) assert.ok(r.retryAfterMs > 0 && r.retryAfterMs <= 10);
});
