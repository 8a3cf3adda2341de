// Fault injection from HTTPFault in typedPerFilterConfig: aborts at the
// configured rate (within binomial bounds) and fixed delays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { backend, call, cluster, load, proxyWith } from './kit.ts';

const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';

test('aborts appear at the configured rate; delays hold requests', async (t) => {
  const up = await backend(t, (req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  const { port, proxy } = await proxyWith(t, {
    clusters: [cluster('app', [up.port])],
    routes: [
      { match: { prefix: '/delay' }, route: { cluster: 'app' }, typedPerFilterConfig: { 'envoy.filters.http.fault': { '@type': FAULT, delay: { fixedDelay: '0.3s', percentage: { numerator: 100 } } } } },
      { match: { prefix: '/' }, route: { cluster: 'app' } },
    ],
  });
  // Abort configured on the virtual host: applies to every route of it.
  const { port: port2 } = await proxyWith(t, {
    clusters: [cluster('app', [up.port])],
    routes: [{ match: { prefix: '/' }, route: { cluster: 'app' } }],
    vhost: { typedPerFilterConfig: { 'envoy.filters.http.fault': { '@type': FAULT, abort: { httpStatus: 418, percentage: { numerator: 30, denominator: 'HUNDRED' } } } } },
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
  t.after(() => agent.destroy());
  const n = 600;
  const replies = await load(n, 10, (i) => call(port2, { path: `/a${i}` }, agent));
  const aborted = replies.filter((r) => r.status === 418);
  assert.ok(aborted.every((r) => r.headers['x-trellis-proxy-error'] === 'FAULT_ABORT'));
  assert.equal(aborted.length + replies.filter((r) => r.status === 200).length, n);
  // Binomial(600, 0.3): mean 180, sd ~11.2; 5 sd either side.
  assert.ok(aborted.length > 124 && aborted.length < 236, `${aborted.length} of ${n} aborted`);

  const d = await call(port, { path: '/delay' });
  assert.equal(d.status, 200);
  assert.ok(d.ms >= 295, `delayed ${Math.round(d.ms)} ms`);
  assert.equal(proxy.resilience.stats.faults.labels('delay').get(), 1, 'only the /delay route is delayed');
  assert.equal((await call(port, { path: '/plain' })).status, 200);
});
