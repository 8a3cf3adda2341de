// Retries through a real proxy against upstreams that fail on purpose:
// safe-by-default method rules, replayed bodies, no retry once the response
// began, per-try timeouts, the retry budget under a full outage, and the
// remaining deadline sent upstream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { FAST_BACKOFF, backend, call, cluster, load, proxyWith } from './kit.ts';

test('a GET is retried after a 503 and succeeds; a POST is not; Idempotency-Key makes a POST retryable with its body replayed', async (t) => {
  let failNext = 0;
  const up = await backend(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (failNext > 0) {
        failNext--;
        res.writeHead(503).end('busy');
        return;
      }
      res.setHeader('x-attempt-deadline', String(req.headers['x-trellis-deadline-ms'] ?? ''));
      res.end(`ok ${req.method} ${Buffer.concat(chunks).toString()}`);
    });
  });
  const { port, proxy } = await proxyWith(t, {
    clusters: [cluster('app', [up.port])],
    routes: [{ match: { prefix: '/' }, route: { cluster: 'app', timeout: '2s', retryPolicy: { retryOn: '5xx', numRetries: 2, retryBackOff: FAST_BACKOFF } } }],
  });

  failNext = 1;
  let before = up.hits();
  const get = await call(port, { path: '/g' });
  assert.equal(get.status, 200);
  assert.equal(get.body, 'ok GET ');
  assert.equal(up.hits() - before, 2, 'the GET was sent twice');
  const deadline = Number(get.headers['x-attempt-deadline']);
  assert.ok(deadline > 1000 && deadline <= 2000, `the remaining deadline went upstream: ${deadline}`);

  failNext = 1;
  before = up.hits();
  const post = await call(port, { method: 'POST', path: '/p', body: 'payload' });
  assert.equal(post.status, 503, 'a POST without an idempotency key is not retried');
  assert.equal(up.hits() - before, 1);

  failNext = 1;
  before = up.hits();
  const keyed = await call(port, { method: 'POST', path: '/p', body: 'payload', headers: { 'idempotency-key': 'k1' } });
  assert.equal(keyed.status, 200);
  assert.equal(keyed.body, 'ok POST payload', 'the body was replayed intact');
  assert.equal(up.hits() - before, 2);

  // Retries exhausted: the last 503 reaches the caller.
  failNext = 5;
  before = up.hits();
  const exhausted = await call(port, { path: '/x' });
  assert.equal(exhausted.status, 503);
  assert.equal(up.hits() - before, 3, 'one attempt and two retries');
  failNext = 0;
  assert.ok(proxy.resilience.stats.retries.labels('app').get() >= 4);
});

test('a chunked request body larger than the replay bound is not retried', async (t) => {
  let failNext = 0;
  const up = await backend(t, (req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => {
      if (failNext > 0) {
        failNext--;
        res.writeHead(503).end();
      } else res.end(String(n));
    });
  });
  const { port } = await proxyWith(t, {
    clusters: [cluster('app', [up.port])],
    routes: [{ match: { prefix: '/' }, route: { cluster: 'app', retryPolicy: { retryOn: '5xx', numRetries: 2, retryBackOff: FAST_BACKOFF } } }],
  });
  failNext = 1;
  const big = Buffer.alloc(100 * 1024, 'a');
  const r = await new Promise<number>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path: '/big', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.write(big.subarray(0, 50 * 1024));
    req.end(big.subarray(50 * 1024));
  });
  assert.equal(r, 503);
  assert.equal(up.hits(), 1);
  // A small PUT is retried.
  failNext = 1;
  const small = await call(port, { method: 'PUT', path: '/small', body: 'abc' });
  assert.equal(small.status, 200);
  assert.equal(small.body, '3');
});

test('no retry once response bytes reached the caller', async (t) => {
  const up = await backend(t, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-length': '100' });
    res.write('partial');
    setTimeout(() => res.socket?.destroy(), 20);
  });
  const { port } = await proxyWith(t, {
    clusters: [cluster('app', [up.port])],
    routes: [{ match: { prefix: '/' }, route: { cluster: 'app', retryPolicy: { retryOn: '5xx,reset', numRetries: 3, retryBackOff: FAST_BACKOFF } } }],
  });
  const r = await call(port, { path: '/stream' });
  assert.equal(r.status, 200);
  assert.ok(r.error || r.body.length < 100, 'the caller sees a truncated response');
  assert.equal(up.hits(), 1, 'the upstream was called once');
});

test('per-try timeout: a hanging first attempt is abandoned and the retry answers; without retries the caller gets PER_TRY_TIMEOUT', async (t) => {
  const up = await backend(t, (req, res, hit) => {
    req.resume();
    if (req.url === '/always-slow' || hit === 1) {
      const timer = setTimeout(() => res.end('late'), 3000);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    res.end('fast');
  });
  const { port } = await proxyWith(t, {
    clusters: [cluster('app', [up.port])],
    routes: [
      { match: { prefix: '/always-slow' }, route: { cluster: 'app', retryPolicy: { retryOn: 'connect-failure', numRetries: 0, perTryTimeout: '0.2s' } } },
      { match: { prefix: '/' }, route: { cluster: 'app', retryPolicy: { retryOn: '5xx', numRetries: 1, perTryTimeout: '0.2s', retryBackOff: FAST_BACKOFF } } },
    ],
  });
  const r = await call(port, { path: '/x' });
  assert.equal(r.status, 200);
  assert.equal(r.body, 'fast');
  assert.ok(r.ms < 1500, `answered after the per-try timeout, not the slow attempt (${Math.round(r.ms)} ms)`);
  const slow = await call(port, { path: '/always-slow' });
  assert.equal(slow.status, 504);
  assert.equal(slow.headers['x-trellis-proxy-error'], 'PER_TRY_TIMEOUT');
  assert.ok(slow.ms < 1500);
});

test('the retry budget caps retries during a full outage', async (t) => {
  const up = await backend(t, (req, res) => {
    req.resume();
    res.writeHead(503).end();
  });
  const ratio = 0.2;
  const minPerSec = 1;
  const { port, proxy } = await proxyWith(t, {
    clusters: [cluster('app', [up.port], { circuitBreakers: { thresholds: [{ maxRetries: 1000 }] } })],
    routes: [{ match: { prefix: '/' }, route: { cluster: 'app', retryPolicy: { retryOn: '5xx', numRetries: 3, retryBackOff: FAST_BACKOFF } } }],
  }, { resilience: { retryBudget: { ratio, minRetriesPerSecond: minPerSec } } });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
  t.after(() => agent.destroy());
  const requests = 300;
  const replies = await load(requests, 10, (i) => call(port, { path: `/r${i}` }, agent));
  assert.ok(replies.every((r) => r.status === 503));
  const retries = up.hits() - requests;
  const cap = ratio * requests + minPerSec * 10;
  assert.ok(retries > 0, 'some retries were allowed');
  assert.ok(retries <= cap, `retries ${retries} <= ${cap} (ratio x requests + reserve)`);
  assert.ok(retries < requests * 3, 'far fewer than numRetries x requests');
  assert.ok(proxy.resilience.stats.budgetExhausted.labels('app').get() > 0, 'exhaustion is counted');
});

test('connect failures are retried even for a POST; the max_retries breaker stops retries', async (t) => {
  const up = await backend(t, (req, res) => {
    req.resume();
    res.end('ok');
  });
  // One dead endpoint and one live one, round robin.
  const dead = await backend(t, () => {});
  const deadPort = dead.port;
  await dead.kill();
  const { port } = await proxyWith(t, {
    clusters: [cluster('app', [deadPort, up.port])],
    routes: [{ match: { prefix: '/' }, route: { cluster: 'app', retryPolicy: { retryOn: 'connect-failure', numRetries: 2, retryBackOff: FAST_BACKOFF } } }],
  });
  for (let i = 0; i < 6; i++) {
    const r = await call(port, { method: 'POST', path: '/p', body: 'x' });
    assert.equal(r.status, 200, `request ${i}`);
  }
  assert.equal(up.hits(), 6);

  // maxRetries 0: the breaker is always open for retries.
  const noRetries = await proxyWith(t, {
    clusters: [cluster('app', [deadPort, up.port], { circuitBreakers: { thresholds: [{ maxRetries: 0 }] } })],
    routes: [{ match: { prefix: '/' }, route: { cluster: 'app', retryPolicy: { retryOn: 'connect-failure', numRetries: 2, retryBackOff: FAST_BACKOFF } } }],
  });
  const statuses = [];
  for (let i = 0; i < 6; i++) statuses.push((await call(noRetries.port, { path: '/p' })).status);
  assert.ok(statuses.includes(502) || statuses.includes(503), `failures reach the caller: ${statuses.join(',')}`);
  assert.ok(noRetries.proxy.resilience.stats.retryOverflow.labels('app').get() > 0);
});

test('an HTTP/2 caller\'s streamed body is replayed to the retry', async (t) => {
  const http2 = await import('node:http2');
  let failNext = 1;
  const up = await backend(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (failNext-- > 0) res.writeHead(503).end();
      else res.end(`got ${Buffer.concat(chunks).toString()}`);
    });
  });
  const { port } = await proxyWith(t, {
    clusters: [cluster('app', [up.port])],
    routes: [{ match: { prefix: '/' }, route: { cluster: 'app', retryPolicy: { retryOn: '5xx', numRetries: 1, retryBackOff: FAST_BACKOFF } } }],
  });
  const session = http2.connect(`http://127.0.0.1:${port}`);
  t.after(() => session.close());
  const stream = session.request({ ':method': 'POST', ':path': '/h2', 'idempotency-key': 'k' });
  stream.write('one,');
  setTimeout(() => stream.end('two'), 20);
  const [status, body] = await new Promise<[number, string]>((resolve, reject) => {
    let s = 0;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (s = Number(h[':status'])));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve([s, Buffer.concat(chunks).toString()]));
    stream.on('error', reject);
  });
  assert.equal(status, 200);
  assert.equal(body, 'got one,two');
  assert.equal(up.hits(), 2);
});
