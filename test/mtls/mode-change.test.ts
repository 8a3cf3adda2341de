// A MeshTLS mode change applies to connections already open, not only to new
// ones: PERMISSIVE -> STRICT closes the plaintext connections the inbound
// listener was serving (an HTTP/1.1 keep-alive connection, an h2c session, a
// caller sidecar's pooled plaintext connections), while mTLS connections keep
// working. The new listener spec arrives as an xDS update would (the proxy's
// applyConfig); Listener.update re-chooses every open connection's chain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { get, spiffe, startApp, startCaAndIds, startOutbound } from './sidecar-fixtures.ts';
import { startInboundProxy } from './harness.ts';
import { h2Get, heldConnection } from './held-connections.ts';

test('PERMISSIVE -> STRICT closes open plaintext connections (HTTP/1.1, h2c, a sidecar pool); mTLS ones keep serving', async (t) => {
  const { a, b } = await startCaAndIds(t);
  const app = await startApp(t);
  const inbound = await startInboundProxy(t, b, app, { mode: 'PERMISSIVE' });
  // A caller sidecar without TLS to this port (its pool holds plaintext
  // connections) and one with mTLS.
  const plainCaller = await startOutbound(t, a, inbound.port, { sans: [] });
  const mtlsCaller = await startOutbound(t, a, inbound.port, { sans: [spiffe('ratings')] });

  const h1 = await heldConnection(inbound.port);
  t.after(() => h1.destroy());
  assert.equal(await h1.request('/before'), 'HTTP/1.1 200 OK');
  const h2 = http2.connect(`http://127.0.0.1:${inbound.port}`);
  h2.on('error', () => {});
  t.after(() => h2.destroy());
  assert.equal(await h2Get(h2, '/before'), '200');
  const viaPool = await get(plainCaller);
  assert.deepEqual([viaPool.status, viaPool.body?.peer], [200, null], 'plaintext through the caller sidecar under PERMISSIVE');
  const viaMtls = await get(mtlsCaller);
  assert.deepEqual([viaMtls.status, viaMtls.body?.peer], [200, spiffe('reviews')]);

  await inbound.setMode('STRICT');

  // The held HTTP/1.1 connection is closed: its next request gets no answer.
  assert.equal(await h1.request('/after'), 'closed');
  // The h2c session got GOAWAY: no new stream is served.
  assert.doesNotMatch(await h2Get(h2, '/after'), /^200$/);
  // The caller sidecar's pooled plaintext connection is gone and a new one finds no chain.
  const after: number[] = [];
  for (let i = 0; i < 5; i++) after.push((await get(plainCaller)).status);
  assert.deepEqual(after.filter((s) => s === 200), [], `plaintext through the caller sidecar under STRICT: ${after.join(',')}`);
  // mTLS keeps working, with the caller's identity.
  const stillMtls = await get(mtlsCaller);
  assert.deepEqual([stillMtls.status, stillMtls.body?.peer], [200, spiffe('reviews')]);
  // A new plaintext connection is refused, as before the fix.
  const fresh = await heldConnection(inbound.port);
  t.after(() => fresh.destroy());
  assert.equal(await fresh.request('/new'), 'closed');
});

test('an unchanged chain keeps its connections across a config push', async (t) => {
  const { b } = await startCaAndIds(t);
  const app = await startApp(t);
  const inbound = await startInboundProxy(t, b, app, { mode: 'PERMISSIVE' });
  const h1 = await heldConnection(inbound.port);
  t.after(() => h1.destroy());
  assert.equal(await h1.request('/before'), 'HTTP/1.1 200 OK');
  await inbound.setMode('PERMISSIVE');
  assert.equal(await h1.request('/after'), 'HTTP/1.1 200 OK', 'the same connection serves on');
});

test('PERMISSIVE -> STRICT closes an open plaintext TCP connection at once (no request boundary to drain at)', async (t) => {
  const { b } = await startCaAndIds(t);
  const echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.after(() => echo.close());
  const inbound = await startInboundProxy(t, b, (echo.address() as AddressInfo).port, { mode: 'PERMISSIVE', tcp: true });
  const sock = net.connect(inbound.port, '127.0.0.1');
  sock.on('error', () => {});
  t.after(() => sock.destroy());
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  const echoed = new Promise<string>((r) => sock.once('data', (d: Buffer) => r(d.toString())));
  sock.write('ping');
  assert.equal(await echoed, 'ping', 'plaintext TCP proxied under PERMISSIVE');
  await inbound.setMode('STRICT');
  const outcome = await Promise.race([closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open'), 5000))]);
  assert.equal(outcome, 'closed');
});
