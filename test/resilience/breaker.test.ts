// Circuit breakers: max_requests (cluster) and max_pending_requests (pool)
// answer overflow with fast 503s and recover once the load is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backend, call, cluster, proxyWith } from './kit.ts';

test('max_requests and max_pending_requests open with fast 503s and recover', async (t) => {
  const up = await backend(t, (req, res) => {
    req.resume();
    const timer = setTimeout(() => res.end('slow ok'), 1000);
    res.on('close', () => clearTimeout(timer));
  });
  const { port } = await proxyWith(t, {
    clusters: [
      cluster('limited', [up.port], { circuitBreakers: { thresholds: [{ maxRequests: 5 }] } }),
      cluster('pooled', [up.port], { circuitBreakers: { thresholds: [{ maxConnections: 2, maxPendingRequests: 2 }] } }),
    ],
    routes: [
      { match: { prefix: '/limited' }, route: { cluster: 'limited' } },
      { match: { prefix: '/pooled' }, route: { cluster: 'pooled' } },
    ],
  });
  for (const path of ['/limited', '/pooled']) {
    const replies = await Promise.all(Array.from({ length: 15 }, () => call(port, { path })));
    const ok = replies.filter((r) => r.status === 200);
    const shed = replies.filter((r) => r.status === 503);
    assert.equal(ok.length + shed.length, 15, `${path}: ${replies.map((r) => r.status).join(',')}`);
    assert.ok(ok.length >= 4 && ok.length <= 5, `${path}: ${ok.length} served within the limit`);
    const firstServed = Math.min(...ok.map((r) => r.ms));
    assert.ok(firstServed >= 950, `${path}: served requests waited for the 1 s upstream`);
    for (const r of shed) {
      assert.equal(r.headers['x-trellis-proxy-error'], 'OVERFLOW');
      assert.ok(r.ms < firstServed, `${path}: shed without waiting for the upstream (${Math.round(r.ms)} ms)`);
    }
    // Recovered: with the load gone, requests are served again.
    const after = await Promise.all(Array.from({ length: 3 }, () => call(port, { path })));
    assert.deepEqual(after.map((r) => r.status), [200, 200, 200]);
  }
});
