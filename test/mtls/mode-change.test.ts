// A MeshTLS mode change applies to connections already open, not only to new
// ones: PERMISSIVE -> STRICT closes the plaintext connections the inbound
// listener was serving (an HTTP/1.1 keep-alive connection, an h2c session, a
// caller sidecar's pooled plaintext connections), while mTLS connections keep
// working. The new listener spec arrives as an xDS update would (the proxy's
// applyConfig); Listener.update re-chooses every open connection's chain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { get, spiffe, startApp, startCaAndIds, startOutbound } from './sidecar-fixtures.ts';
import { startInboundProxy } from './harness.ts';

/** A held-open HTTP/1.1 connection: `request()` writes one GET and resolves
 * with the status line of its answer, or with 'closed' when the proxy closed
 * the connection instead (bounded). */
function heldConnection(port: number): Promise<{ request(path: string): Promise<string>; closed: Promise<void>; destroy(): void }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    let waiter: ((v: string) => void) | undefined;
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      // One response: a head with Content-Length and its body.
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number(/content-length: *(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
      if (buf.length < end + 4 + len) return;
      const status = buf.slice(0, buf.indexOf('\r\n'));
      buf = buf.slice(end + 4 + len);
      waiter?.(status);
      waiter = undefined;
    });
    sock.on('error', () => {});
    void closed.then(() => waiter?.('closed'));
    sock.once('connect', () => resolve({
      request(path) {
        return new Promise((r) => {
          if (sock.destroyed) return r('closed');
          const timer = setTimeout(() => r('timeout'), 5000);
          waiter = (v) => {
            clearTimeout(timer);
            r(v);
          };
          sock.write(`GET ${path} HTTP/1.1\r\nhost: b.shop\r\n\r\n`);
        });
      },
      closed,
      destroy: () => sock.destroy(),
    }));
    sock.once('error', reject);
  });
}

/** One GET on an h2c session: the status, or the error that ended the stream (bounded). */
function h2Get(session: http2.ClientHttp2Session, path: string): Promise<string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), 5000);
    const done = (v: string): void => {
      clearTimeout(timer);
      resolve(v);
    };
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request({ ':path': path, ':authority': 'b.shop' });
    } catch (err) {
      done(`error: ${(err as Error).message}`);
      return;
    }
    req.on('response', (h) => {
      req.resume();
      req.on('end', () => done(String(h[':status'])));
    });
    req.on('error', (err) => done(`error: ${err.message}`));
    req.on('close', () => done(`closed (rst ${req.rstCode})`));
    req.end();
  });
}

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
