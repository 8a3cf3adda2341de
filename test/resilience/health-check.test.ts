// Active health checks through a real proxy: an endpoint whose /healthz
// fails is taken out of the balancer and comes back when it passes again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backend, call, cluster, proxyWith } from './kit.ts';

test('an endpoint failing its HTTP health check gets no traffic until it passes again', async (t) => {
  let bHealthy = false;
  const a = await backend(t, (req, res) => res.end('a'));
  const b = await backend(t, (req, res) => {
    if (req.url === '/healthz') res.writeHead(bHealthy ? 200 : 503).end();
    else res.end('b');
  });
  const { port, proxy } = await proxyWith(t, {
    clusters: [cluster('app', [a.port, b.port], { healthChecks: [{ timeout: '0.2s', interval: '0.02s', unhealthyThreshold: 2, healthyThreshold: 2, httpHealthCheck: { path: '/healthz' } }] })],
    routes: [{ match: { prefix: '/' }, route: { cluster: 'app' } }],
  });
  const health = () => proxy.clusters()[0]!.endpoints.map((e) => e.health);
  const until = async (cond: () => boolean) => {
    const end = performance.now() + 3000;
    while (!cond()) {
      if (performance.now() > end) assert.fail(`not reached: ${health().join(',')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  // "a" answers 200 on every path (its /healthz too).
  await until(() => health()[0] === 'healthy' && health()[1] === 'unhealthy');
  const bodies = [];
  for (let i = 0; i < 10; i++) bodies.push((await call(port, { path: '/x' })).body);
  assert.deepEqual(new Set(bodies), new Set(['a']), 'only the healthy endpoint serves');
  bHealthy = true;
  await until(() => health()[1] === 'healthy');
  const after = new Set<string>();
  for (let i = 0; i < 10; i++) after.add((await call(port, { path: '/x' })).body);
  assert.deepEqual(after, new Set(['a', 'b']));
  assert.ok(proxy.resilience.stats.healthTransitions.labels('app', 'unhealthy').get() >= 1);
});
