// Local rate limit from LocalRateLimit in typedPerFilterConfig: a route
// bucket and per-caller buckets, 429 with Retry-After.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backend, call, cluster, proxyWith } from './kit.ts';

const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

test('route bucket: 5 pass, the rest get 429 with Retry-After', async (t) => {
  const up = await backend(t, (req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  const { port, proxy } = await proxyWith(t, {
    clusters: [cluster('app', [up.port])],
    routes: [
      { match: { prefix: '/route' }, route: { cluster: 'app' }, typedPerFilterConfig: { 'envoy.filters.http.local_ratelimit': { '@type': LRL, statPrefix: 'route_rl', tokenBucket: { maxTokens: 5, tokensPerFill: 5, fillInterval: '2s' } } } },
      { match: { prefix: '/caller' }, route: { cluster: 'app' }, typedPerFilterConfig: { 'envoy.filters.http.local_ratelimit': { '@type': LRL, statPrefix: 'caller_rl', descriptors: [{ entries: [{ key: 'trellis.caller', value: '*' }], tokenBucket: { maxTokens: 2, tokensPerFill: 2, fillInterval: '10s' } }] } } },
    ],
  });
  const replies = [];
  for (let i = 0; i < 10; i++) replies.push(await call(port, { path: '/route' }));
  assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200, 200, 429, 429, 429, 429, 429]);
  for (const r of replies.slice(5)) {
    assert.equal(r.headers['x-trellis-proxy-error'], 'RATE_LIMITED');
    const ra = Number(r.headers['retry-after']);
    assert.ok(ra >= 1 && ra <= 2, `retry-after ${r.headers['retry-after']}`);
  }
  assert.equal(up.hits(), 5);
  assert.equal(proxy.resilience.stats.rateLimited.labels('route_rl').get(), 5);

  // Plaintext callers are keyed by their address (loopback aliases here);
  // a header they write does not change which bucket they draw from.
  const statuses = async (from: string, spoof = false) => {
    const out = [];
    for (let i = 0; i < 3; i++) out.push((await call(port, { path: '/caller', localAddress: from, ...(spoof ? { headers: { 'x-trellis-client-id': `fresh-${i}` } } : {}) })).status);
    return out;
  };
  assert.deepEqual(await statuses('127.0.0.2'), [200, 200, 429]);
  assert.deepEqual(await statuses('127.0.0.3'), [200, 200, 429], 'each caller has its own bucket');
  assert.deepEqual(await statuses('127.0.0.2', true), [429, 429, 429], 'spoofing x-trellis-client-id gets no fresh bucket');
});

test('a bad LocalRateLimit is rejected when the config is read, with the field path', async (t) => {
  const up = await backend(t, (_req, res) => res.end());
  await assert.rejects(
    proxyWith(t, {
      clusters: [cluster('app', [up.port])],
      routes: [{ match: { prefix: '/' }, route: { cluster: 'app' }, typedPerFilterConfig: { rl: { '@type': LRL, statPrefix: 'x', tokenBucket: { maxTokens: 0, fillInterval: '1s' } } } }],
    }),
    /routes\[0\]\.route\.typedPerFilterConfig\[\\"rl\\"\]\.tokenBucket\.maxTokens","message":"must be between 1 /,
  );
});
