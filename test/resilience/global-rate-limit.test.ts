// A global limit shared by three real proxies: the coordinator gives each a
// third; together they admit the global rate within 10%. (The 300 req/s case
// is simulated deterministically in rate-limit-coordinator.test.ts; here the
// rate is lower so a loaded 2-core machine can still offer more than it.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { backend, call, cluster, proxyWith } from './kit.ts';
import { RateLimitCoordinator } from '../../src/control-plane/rate-limit-coordinator.ts';
import { ShareRateLimiter } from '../../src/proxy/layers/global-rate-limit.ts';

const RATE = 60;
const BURST = 60;

test('3 real proxies sharing a global limit hold the aggregate within 10%', async (t) => {
  const up = await backend(t, (req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  const coordinator = new RateLimitCoordinator();
  coordinator.setLimit('svc', { ratePerSec: RATE, burst: BURST });
  const ports: number[] = [];
  for (let i = 0; i < 3; i++) {
    const limiter = new ShareRateLimiter();
    const off = coordinator.connect('svc', `proxy-${i}`, (a) => (a ? limiter.applyShare(a, performance.now()) : limiter.clear()));
    t.after(off);
    const { port } = await proxyWith(t, { clusters: [cluster('app', [up.port])], routes: [{ match: { prefix: '/' }, route: { cluster: 'app' } }] }, { resilience: { globalRateLimit: () => limiter } });
    ports.push(port);
  }
  assert.equal(coordinator.shareOf('svc')?.ratePerSec, RATE / 3);
  const agents = ports.map(() => new http.Agent({ keepAlive: true, maxSockets: 8 }));
  t.after(() => agents.forEach((a) => a.destroy()));
  let ok = 0;
  let limited = 0;
  const start = performance.now();
  const durationMs = 3000;
  // Closed-loop load on all three proxies, 8 callers each, well above the limit.
  await Promise.all(ports.flatMap((port, i) => Array.from({ length: 8 }, async () => {
    while (performance.now() - start < durationMs) {
      const r = await call(port, { path: '/' }, agents[i]);
      if (r.status === 200) ok++;
      else if (r.status === 429) limited++;
      else assert.fail(`unexpected status ${r.status}`);
    }
  })));
  const elapsed = (performance.now() - start) / 1000;
  const expected = RATE * elapsed + BURST;
  assert.ok(limited > ok, `the offered load was above the limit (${ok} ok, ${limited} limited)`);
  assert.ok(Math.abs(ok - expected) <= expected * 0.1, `admitted ${ok} in ${elapsed.toFixed(2)} s, expected ~${Math.round(expected)}`);
});
