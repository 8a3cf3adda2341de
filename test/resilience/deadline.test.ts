// Deadline propagation: client -> proxy A -> service A -> proxy B -> slow
// service B. Proxy A sends the remaining deadline upstream in
// x-trellis-deadline-ms, service A passes it on (as apps pass trace headers),
// proxy B honours it: the whole chain gives up at the caller's deadline
// instead of service B's 3 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { backend, call, cluster, proxyWith } from './kit.ts';

test('a nested call chain gives up at the caller\'s deadline', async (t) => {
  let serviceBClosedAt = 0;
  let serviceBSawDeadline = '';
  const start = { t: 0 };
  const serviceB = await backend(t, (req, res) => {
    serviceBSawDeadline = String(req.headers['x-trellis-deadline-ms'] ?? '');
    req.resume();
    const timer = setTimeout(() => res.end('too late'), 3000);
    res.on('close', () => {
      clearTimeout(timer);
      serviceBClosedAt = performance.now() - start.t;
    });
  });
  const b = await proxyWith(t, { clusters: [cluster('b', [serviceB.port])], routes: [{ match: { prefix: '/' }, route: { cluster: 'b' } }] });
  const serviceA = await backend(t, (req, res) => {
    req.resume();
    // Service A calls B through its proxy, passing the deadline header on,
    // and does NOT cancel that call when its own caller goes away.
    const out = http.request({ host: '127.0.0.1', port: b.port, path: '/b', agent: false, headers: { 'x-trellis-deadline-ms': String(req.headers['x-trellis-deadline-ms'] ?? '') } }, (r) => {
      r.resume();
      r.on('end', () => { if (!res.headersSent) res.writeHead(r.statusCode ?? 500).end(`b said ${r.statusCode}`); });
    });
    out.on('error', () => { if (!res.headersSent) res.writeHead(502).end(); });
    out.end();
  });
  const a = await proxyWith(t, { clusters: [cluster('a', [serviceA.port])], routes: [{ match: { prefix: '/' }, route: { cluster: 'a', timeout: '0.5s' } }] });
  start.t = performance.now();
  const r = await call(a.port, { path: '/a' });
  assert.equal(r.status, 504);
  assert.ok(r.ms >= 450 && r.ms < 1200, `the caller got its answer at its deadline (${Math.round(r.ms)} ms)`);
  const until = performance.now() + 3000;
  while (serviceBClosedAt === 0 && performance.now() < until) await new Promise((res) => setTimeout(res, 20));
  const seen = Number(serviceBSawDeadline);
  assert.ok(seen > 0 && seen <= 500, `service B was told the remaining deadline (${serviceBSawDeadline})`);
  assert.ok(serviceBClosedAt > 0 && serviceBClosedAt < 1200, `proxy B gave up on service B at the caller's deadline (${Math.round(serviceBClosedAt)} ms)`);
});
