import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startPortGuard } from './port-guard.ts';
import { freePort } from './ports.ts';

async function server(t: test.TestContext, onConn: (s: net.Socket) => void): Promise<number> {
  const srv = net.createServer(onConn);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => srv.close(() => r())));
  return (srv.address() as net.AddressInfo).port;
}

function exchange(port: number, request: string): Promise<{ data: string; error?: string }> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1', () => c.write(request));
    let data = '';
    c.setEncoding('utf8').on('data', (d: string) => (data += d));
    c.on('end', () => resolve({ data }));
    c.on('error', (err: NodeJS.ErrnoException) => resolve({ data, error: err.code ?? err.message }));
    c.setTimeout(3000, () => c.destroy(new Error('timeout')));
  });
}

const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nfallback';

test('port guard: refused -> fallback; died before answering -> idempotent requests replayed, others reset', async (t) => {
  const fallback = await server(t, (s) => s.once('data', () => s.end(OK)));
  // A primary that reads the request and dies without answering.
  const dying = await server(t, (s) => s.once('data', () => s.destroy()));
  const guard = await startPortGuard({ listen: { host: '127.0.0.1', port: 0 }, primary: { host: '127.0.0.1', port: dying }, fallback: { host: '127.0.0.1', port: fallback } });
  t.after(() => guard.close());

  const get = await exchange(guard.port, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n');
  assert.match(get.data, /fallback$/);
  assert.equal(guard.stats().replayed, 1);

  const post = await exchange(guard.port, 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\nx');
  assert.equal(post.data, '');
  assert.ok(post.error, 'a non-idempotent request is not replayed: the client sees a reset');
  assert.equal(guard.stats().replayed, 1);

  // Nothing listening on the primary: connect refused, straight to the fallback.
  const refused = await startPortGuard({ listen: { host: '127.0.0.1', port: 0 }, primary: { host: '127.0.0.1', port: await freePort() }, fallback: { host: '127.0.0.1', port: fallback } });
  t.after(() => refused.close());
  const r = await exchange(refused.port, 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\nx');
  assert.match(r.data, /fallback$/);
  assert.equal(refused.stats().primaryUp, false);
  assert.equal(refused.stats().fallback, 1);
});

test('port guard: the health check moves traffic back to the primary', async (t) => {
  const primary = await server(t, (s) => s.once('data', () => s.end(OK.replace('fallback', 'primary!'))));
  const fallback = await server(t, (s) => s.once('data', () => s.end(OK)));
  let healthy = false;
  const guard = await startPortGuard({ listen: { host: '127.0.0.1', port: 0 }, primary: { host: '127.0.0.1', port: primary }, fallback: { host: '127.0.0.1', port: fallback }, check: async () => healthy, checkMs: 20 });
  t.after(() => guard.close());
  for (let i = 0; i < 100 && guard.stats().primaryUp; i++) await new Promise((r) => setTimeout(r, 10));
  assert.match((await exchange(guard.port, 'GET / HTTP/1.1\r\n\r\n')).data, /fallback$/);
  healthy = true;
  for (let i = 0; i < 100 && !guard.stats().primaryUp; i++) await new Promise((r) => setTimeout(r, 10));
  assert.match((await exchange(guard.port, 'GET / HTTP/1.1\r\n\r\n')).data, /primary!$/);
});
