// An upstream killed under load: retries absorb the in-flight failures,
// outlier detection ejects the dead endpoint, and the success rate stays at
// or above 99.9% with one of three endpoints dead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { FAST_BACKOFF, backend, call, cluster, load, proxyWith } from './kit.ts';

test('one of three endpoints killed under load: ejected, success rate >= 99.9%', async (t) => {
  const ups = await Promise.all([0, 1, 2].map(() => backend(t, (req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  })));
  const { port, proxy } = await proxyWith(t, {
    clusters: [cluster('app', ups.map((u) => u.port), {
      outlierDetection: { consecutive5xx: 5, baseEjectionTime: '30s', interval: '1s' },
      // Envoy's default max_retries (3 in flight) would shed retries when 20
      // requests fail at once; the mesh relies on the retry budget (as Istio does).
      circuitBreakers: { thresholds: [{ maxRetries: 1000 }] },
    })],
    routes: [{ match: { prefix: '/' }, route: { cluster: 'app', timeout: '5s', retryPolicy: { retryOn: '5xx,reset,connect-failure', numRetries: 2, retryBackOff: FAST_BACKOFF } } }],
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
  t.after(() => agent.destroy());
  const total = 3000;
  const replies = await load(total, 20, async (i) => {
    if (i === 300) void ups[1]!.kill();
    return call(port, { path: `/r${i}` }, agent);
  });
  const ok = replies.filter((r) => r.status === 200).length;
  assert.ok(ok / total >= 0.999, `success rate ${ok}/${total}: ${JSON.stringify(replies.filter((r) => r.status !== 200).map((r) => [r.status, r.headers["x-trellis-proxy-error"], r.error, r.body]))}`);
  const snap = proxy.clusters().find((c) => c.name === 'app')!;
  const dead = snap.endpoints.find((e) => e.port === ups[1]!.port)!;
  assert.equal(dead.ejected, true, 'the dead endpoint is ejected');
  assert.equal(snap.endpoints.filter((e) => e.ejected).length, 1, 'only the dead one');
  assert.ok(proxy.resilience.stats.ejections.labels('app').get() >= 1);
  assert.ok(ups[0]!.hits() > 1000 && ups[2]!.hits() > 1000, 'the live endpoints carried the load');
});
