// The router is protocol-neutral, so the codecs must mix: an HTTP/2
// downstream forwarded to an HTTP/1 pool, and an HTTP/1 downstream forwarded
// to the HTTP/2 pool. Real clients and servers on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { createHttp1Pool } from '../http1/pool.ts';
import { serveHttp1 } from '../http1/server.ts';
import { startProxy } from './fixtures/proxy-harness.ts';

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

test('HTTP/2 client -> HTTP/1 upstream: body both ways, hop-by-hop dropped, multi-valued headers kept', async (t) => {
  let seen: http.IncomingHttpHeaders = {};
  const upstream = http.createServer((req, res) => {
    seen = req.headers;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.setHeader('connection', 'keep-alive');
      res.setHeader('keep-alive', 'timeout=5');
      res.setHeader('x-seen-url', req.url ?? '');
      res.end(Buffer.concat(chunks));
    });
  });
  const port = await listen(upstream);
  t.after(() => {
    upstream.closeAllConnections();
    upstream.close();
  });
  const proxy = await startProxy({ host: '127.0.0.1', port }, { createPool: createHttp1Pool });
  t.after(() => proxy.close());
  const client = http2.connect(`http://127.0.0.1:${proxy.port}`);
  client.on('error', () => {});
  t.after(() => client.destroy());

  const req = client.request({ ':method': 'POST', ':path': '/p?q=1', 'content-type': 'text/plain', cookie: 'x=1' });
  req.end('hello from h2');
  const [headers] = await new Promise<[http2.IncomingHttpHeaders]>((r) => req.once('response', (h) => r([h])));
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  await new Promise((r) => req.once('end', r));
  assert.equal(headers[':status'], 200);
  assert.deepEqual(headers['set-cookie'], ['a=1', 'b=2']);
  assert.equal(headers.connection, undefined);
  assert.equal(headers['keep-alive'], undefined);
  assert.equal(headers['x-seen-url'], '/p?q=1');
  assert.equal(Buffer.concat(chunks).toString(), 'hello from h2');
  assert.equal(seen.host, `127.0.0.1:${proxy.port}`, 'the :authority became Host');
  assert.equal(seen.cookie, 'x=1');
});

test('HTTP/1 client -> HTTP/2 upstream: Host becomes :authority, body and trailers-free response', async (t) => {
  let seen: http2.IncomingHttpHeaders = {};
  let body = '';
  const upstream = http2.createServer();
  upstream.on('stream', (stream, headers) => {
    seen = headers;
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => (body += c));
    stream.on('end', () => {
      stream.respond({ ':status': 201, 'set-cookie': ['c=3', 'd=4'], 'content-type': 'text/plain' });
      stream.end(`got ${body.length}`);
    });
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  upstream.on('session', (s) => sessions.add(s));
  const port = await listen(upstream);
  t.after(() => {
    for (const s of sessions) s.destroy();
    upstream.close();
  });
  const proxy = await startProxy({ host: '127.0.0.1', port }, { serve: serveHttp1 });
  t.after(() => proxy.close());

  const res = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'PUT', path: '/thing', agent: false, headers: { host: 'svc.example:80', connection: 'keep-alive', 'x-app': 'a' } }, (r) => {
      let b = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (b += c));
      r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, body: b }));
    });
    req.on('error', reject);
    req.end('x'.repeat(100_000));
  });
  assert.equal(res.status, 201);
  assert.equal(res.body, 'got 100000');
  assert.deepEqual(res.headers['set-cookie'], ['c=3', 'd=4']);
  assert.equal(seen[':authority'], 'svc.example:80');
  assert.equal(seen[':method'], 'PUT');
  assert.equal(seen[':path'], '/thing');
  assert.equal(seen['x-app'], 'a');
  assert.equal(seen.connection, undefined);
  assert.equal(seen.host, undefined);
  assert.equal(seen['content-length'], '100000');
});
