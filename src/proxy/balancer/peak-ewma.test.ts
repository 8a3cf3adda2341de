import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ewmaAt, observeLatency, recordEnd, recordStart, REJECTED_MS } from './load.ts';
import { NO_DATA_PENALTY, peakEwma, peakEwmaCost } from './peak-ewma.ts';
import { buildOpts, countPicks, endpoints, seededRandom } from './testing.ts';

test('the estimate jumps to a peak and decays over ~10 s', () => {
  const [e] = endpoints(1);
  const load = e!.load;
  observeLatency(load, 10, 0);
  assert.equal(load.ewmaMs, 10);
  observeLatency(load, 100, 1000);
  assert.equal(load.ewmaMs, 100, 'a higher sample replaces the estimate at once');
  assert.ok(Math.abs(ewmaAt(load, 11_000) - 100 * Math.exp(-1)) < 1e-9);
  observeLatency(load, 10, 11_000);
  const expected = 100 * Math.exp(-1) + 10 * (1 - Math.exp(-1));
  assert.ok(Math.abs(load.ewmaMs - expected) < 1e-9, `${load.ewmaMs} vs ${expected}`);
});

test('failures never lower the estimate; counters move once per call', () => {
  const [e] = endpoints(1);
  const load = e!.load;
  observeLatency(load, 50, 0);
  recordStart(load);
  recordEnd(load, { latencyMs: 1, ok: false }, 0);
  assert.equal(load.ewmaMs, 50);
  assert.equal(load.active, 0);
  assert.equal(load.failures, 1);
  recordEnd(load, { latencyMs: 1, ok: true }, 0);
  assert.equal(load.active, 0, 'never negative');
});

test('peak EWMA steers away from a slow endpoint', () => {
  let now = 0;
  const eps = endpoints(4);
  for (const [i, e] of eps.entries()) observeLatency(e.load, i === 0 ? 200 : 10, now);
  const picker = peakEwma.build(eps, buildOpts({ now: () => now }));
  const counts = countPicks(picker, eps, 10_000, seededRandom(21));
  assert.equal(counts.get(eps[0]!.key), 0);
  // the slow endpoint decays while the others keep reporting 10 ms: it gets probed again
  now = 60_000;
  for (const e of eps.slice(1)) observeLatency(e.load, 10, now);
  const later = countPicks(picker, eps, 10_000, seededRandom(22));
  assert.ok(later.get(eps[0]!.key)! > 2000, `slow endpoint after decay: ${later.get(eps[0]!.key)}`);
});

test('peak EWMA weighs in outstanding requests', () => {
  const eps = endpoints(3);
  for (const e of eps) observeLatency(e.load, 10, 0);
  eps[0]!.load.active = 20; // cost 210 vs 10
  const counts = countPicks(peakEwma.build(eps, buildOpts()), eps, 5000, seededRandom(23));
  assert.equal(counts.get(eps[0]!.key), 0);
  assert.ok(Math.abs(counts.get(eps[1]!.key)! - 2500) < 250);
});

test('an endpoint without data is probed once, then penalized until it answers', () => {
  const eps = endpoints(3);
  for (const e of eps.slice(1)) observeLatency(e.load, 10, 0);
  const fresh = eps[0]!;
  assert.equal(peakEwmaCost(fresh, 0), 0);
  fresh.load.active = 1;
  assert.equal(peakEwmaCost(fresh, 0), NO_DATA_PENALTY + 1);
  const counts = countPicks(peakEwma.build(eps, buildOpts()), eps, 2000, seededRandom(24));
  assert.equal(counts.get(fresh.key), 0);
  recordEnd(fresh.load, { latencyMs: 2, ok: true }, 0);
  const after = countPicks(peakEwma.build(eps, buildOpts()), eps, 3000, seededRandom(25));
  assert.ok(after.get(fresh.key)! > 1500, `fast endpoint now preferred: ${after.get(fresh.key)}`);
});

test('peak EWMA honours weights: equal latency, the heavier endpoint takes more', () => {
  const eps = endpoints(3).map((e, i) => ({ ...e, weight: i === 0 ? 3 : 1 }));
  for (const e of eps) observeLatency(e.load, 10, 0);
  const counts = countPicks(peakEwma.build(eps, buildOpts()), eps, 10_000, seededRandom(26));
  assert.ok(counts.get(eps[0]!.key)! > 6000, `heavy endpoint ${counts.get(eps[0]!.key)}`);
});

test('a local rejection (rate limited, overflow) is load, not a fast answer: traffic goes to the endpoint that turned one away least recently', () => {
  let now = 0;
  const eps = endpoints(2);
  for (const e of eps) observeLatency(e.load, 5, now);
  const picker = peakEwma.build(eps, buildOpts({ now: () => now }));
  // eps[0] answers its 429s in 1 ms: it must not look faster than eps[1].
  recordEnd(eps[0]!.load, { latencyMs: 1, ok: false, rejected: true }, now);
  assert.equal(eps[0]!.load.ewmaMs, 5, 'no latency sample');
  assert.equal(peakEwmaCost(eps[0]!, now), 5 + REJECTED_MS);
  assert.equal(countPicks(picker, eps, 1000, seededRandom(27)).get(eps[1]!.key), 1000);
  // Later eps[1] turns one away too: now eps[0], rejected longer ago, costs less.
  now = 200;
  recordEnd(eps[1]!.load, { latencyMs: 1, ok: false, rejected: true }, now);
  assert.equal(countPicks(picker, eps, 1000, seededRandom(28)).get(eps[0]!.key), 1000);
  // The penalty fades within seconds: latency decides again.
  now = 10_000;
  assert.ok(peakEwmaCost(eps[0]!, now) - ewmaAt(eps[0]!.load, now) < 0.1);
});

test('an endpoint with no latency data that only turns requests away is not picked for being "idle"', () => {
  const eps = endpoints(2);
  observeLatency(eps[1]!.load, 5, 0);
  recordEnd(eps[0]!.load, { latencyMs: 1, ok: false, rejected: true }, 0);
  assert.equal(eps[0]!.load.hasData, false);
  const counts = countPicks(peakEwma.build(eps, buildOpts({ now: () => 10 })), eps, 1000, seededRandom(29));
  assert.equal(counts.get(eps[1]!.key), 1000);
});
