// RetryPolicy `budget` reaches the proxy as cluster metadata
// (`metadata.filterMetadata.trellis.retryBudget`) and replaces the proxy's
// default budget (0.2 x requests + 10/s) for that cluster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { FAST_BACKOFF, backend, call, cluster, load, proxyWith } from '../resilience/kit.ts';

test('a cluster\'s own retry budget caps retries during a full outage', async (t) => {
  const up = await backend(t, (req, res) => {
    req.resume();
    res.writeHead(503).end();
  });
  const ratio = 0.05;
  const minPerSec = 0.5;
  const { port } = await proxyWith(t, {
    clusters: [cluster('app', [up.port], {
      circuitBreakers: { thresholds: [{ maxRetries: 1000 }] },
      metadata: { filterMetadata: { trellis: { retryBudget: { ratio, minRetriesPerSecond: minPerSec } } } },
    })],
    routes: [{ match: { prefix: '/' }, route: { cluster: 'app', retryPolicy: { retryOn: '5xx', numRetries: 3, retryBackOff: FAST_BACKOFF } } }],
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
  t.after(() => agent.destroy());
  const requests = 300;
  const replies = await load(requests, 10, (i) => call(port, { path: `/r${i}` }, agent));
  assert.ok(replies.every((r) => r.status === 503));
  const retries = up.hits() - requests;
  const cap = ratio * requests + minPerSec * 10;
  assert.ok(retries > 0, 'some retries were allowed');
  // The proxy default would allow 0.2 x 300 + 100 = 160.
  assert.ok(retries <= cap, `retries ${retries} <= ${cap} (the cluster's budget, not the default)`);
});

test('a malformed retry budget is refused with its field path', async (t) => {
  await assert.rejects(proxyWith(t, {
    clusters: [cluster('app', [1], { metadata: { filterMetadata: { trellis: { retryBudget: { ratio: -1 } } } } })],
    routes: [{ match: { prefix: '/' }, route: { cluster: 'app' } }],
  }), /trellis\.retryBudget\.ratio","message":"must be a number between 0 and 100/);
});
