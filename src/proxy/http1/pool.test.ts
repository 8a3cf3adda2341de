// createHttp1Pool on its own: requests dispatched straight into the pool
// with a recording handler, against node:http or raw-socket upstreams.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { BodySink, BodySource, ExchangeController, HeaderList, ProxyRequest, RequestHead, ResponseHandler, ResponseHead } from '../http/exchange.ts';
import type { ProxyError } from '../errors.ts';
import { DEFAULT_POOL_OPTIONS } from '../upstream/types.ts';
import type { PoolOptions, UpstreamPool } from '../upstream/types.ts';
import { createHttp1Pool } from './pool.ts';
import { startUpstream } from './test-harness.ts';

type Outcome =
  | { kind: 'response'; status: number; headers: HeaderList; body: string; trailers: HeaderList | null; informational: number[] }
  | { kind: 'error'; code: string; message: string }
  | { kind: 'upgrade'; status: number; socket: Duplex; head: Buffer };

interface Recorder {
  handler: ResponseHandler;
  done: Promise<Outcome>;
  controller(): ExchangeController;
}

function recorder(): Recorder {
  let resolve!: (o: Outcome) => void;
  const done = new Promise<Outcome>((r) => { resolve = r; });
  let ctl: ExchangeController | null = null;
  let head: ResponseHead | null = null;
  const informational: number[] = [];
  let body = '';
  const handler: ResponseHandler = {
    onStart(c) { ctl = c; },
    onInformational(h) { informational.push(h.status); },
    onHeaders(h) { head = h; return true; },
    onData(c) { body += c.toString('latin1'); return true; },
    onEnd(trailers) { resolve({ kind: 'response', status: head!.status, headers: head!.headers, body, trailers, informational }); },
    onError(err: ProxyError) { resolve({ kind: 'error', code: err.code, message: err.message }); },
    onUpgrade(h, socket, rest) { resolve({ kind: 'upgrade', status: h.status, socket, head: rest }); },
  };
  return { handler, done, controller: () => ctl! };
}

function request(path: string, init: Partial<RequestHead> = {}, body: BodySource | null = null): ProxyRequest {
  return {
    head: { method: 'GET', scheme: 'http', authority: 'svc.test', path, headers: [], httpVersion: '1.1', ...init },
    body,
    ctx: {
      listener: 't', direction: 'outbound', downstream: { remoteAddress: '', remotePort: 0, localAddress: '', localPort: 0 },
      startTime: performance.now(), deadline: null, responseFlags: [], grpc: false, attempts: 0, attrs: new Map(),
    },
  };
}

function bufferBody(chunks: string[], knownLength: boolean): BodySource {
  const total = chunks.reduce((n, c) => n + Buffer.byteLength(c), 0);
  return {
    contentLength: knownLength ? total : null,
    start(sink: BodySink) {
      for (const c of chunks) sink.onData(Buffer.from(c));
      sink.onEnd(knownLength ? null : ['x-body-sum', String(total)]);
    },
    resume() {},
    destroy() {},
  };
}

function pool(t: TestContext, port: number, o: Partial<PoolOptions> = {}): UpstreamPool {
  const p = createHttp1Pool({ ...DEFAULT_POOL_OPTIONS, host: '127.0.0.1', port, ...o });
  t.after(() => p.destroy());
  return p;
}

async function send(p: UpstreamPool, req: ProxyRequest): Promise<Outcome> {
  const r = recorder();
  p.dispatch(req, r.handler);
  return r.done;
}

async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > ms) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A raw upstream that answers each connection with `reply(requestText)`. */
async function rawUpstream(t: TestContext, reply: (socket: net.Socket, req: string) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    let data = '';
    s.on('data', (d) => {
      data += d.toString('latin1');
      if (data.includes('\r\n\r\n')) {
        const req = data;
        data = '';
        reply(s, req);
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => srv.close(() => r()));
  });
  return (srv.address() as net.AddressInfo).port;
}

test('request serialization: host, framing, chunked body with trailers', async (t) => {
  let seen = '';
  const port = await rawUpstream(t, (s, req) => {
    seen += req; // called for the head, then for the body
    if (seen.endsWith('x-sum: 5\r\n\r\n')) s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  });
  const p = pool(t, port);
  const r = await send(p, request('/p?q=1', { method: 'POST', headers: ['x-a', '1', 'content-length', '999', 'te', 'trailers'] }, {
    contentLength: null,
    start(sink) {
      setTimeout(() => {
        sink.onData(Buffer.from('hello'));
        sink.onEnd(['x-sum', '5']);
      }, 5);
    },
    resume() {},
    destroy() {},
  }));
  assert.equal(r.kind, 'response');
  assert.equal(seen, 'POST /p?q=1 HTTP/1.1\r\nhost: svc.test\r\nx-a: 1\r\nte: trailers\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-sum: 5\r\n\r\n');
});

test('responses: chunked with trailers, until-close, informational, HEAD', async (t) => {
  const port = await rawUpstream(t, (s, req) => {
    if (req.startsWith('GET /chunked')) s.write('HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n');
    else if (req.startsWith('GET /close')) s.end('HTTP/1.0 200 OK\r\n\r\nuntil-close');
    else if (req.startsWith('HEAD')) s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n');
  });
  const p = pool(t, port);
  const a = await send(p, request('/chunked'));
  assert.deepEqual(a, { kind: 'response', status: 200, headers: [], body: 'abc', trailers: ['x-t', '1'], informational: [103] });
  const h = await send(p, request('/h', { method: 'HEAD' }));
  assert.deepEqual(h.kind === 'response' && [h.headers, h.body], [['content-length', '10'], '']);
  const c = await send(p, request('/close'));
  assert.deepEqual(c.kind === 'response' && c.body, 'until-close');
});

test('bad response -> UPSTREAM_PROTOCOL_ERROR; reset -> UPSTREAM_RESET', async (t) => {
  const port = await rawUpstream(t, (s, req) => {
    if (req.startsWith('GET /bad')) s.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n');
    else if (req.startsWith('GET /garbage')) s.write('SSH-2.0-OpenSSH\r\n\r\n');
    else s.destroy();
  });
  const p = pool(t, port);
  assert.deepEqual((await send(p, request('/bad'))).kind === 'error' && 'UPSTREAM_PROTOCOL_ERROR', 'UPSTREAM_PROTOCOL_ERROR');
  const g = await send(p, request('/garbage'));
  assert.equal(g.kind === 'error' && g.code, 'UPSTREAM_PROTOCOL_ERROR');
  const r = await send(p, request('/reset'));
  assert.equal(r.kind === 'error' && r.code, 'UPSTREAM_RESET');
  assert.deepEqual(p.stats(), { connections: 0, active: 0, pending: 0 });
});

test('idle connections are reused most-recent first and closed after idleTimeoutMs', async (t) => {
  const ports: number[] = [];
  const holds: Array<() => void> = [];
  const up = await startUpstream(t, (req, res) => {
    ports.push(req.socket.remotePort!);
    if (req.url === '/hold') holds.push(() => res.end('held'));
    else res.end('ok');
  });
  const p = pool(t, up.port, { idleTimeoutMs: 400 });
  const a = send(p, request('/hold'));
  const b = send(p, request('/hold'));
  await until(() => holds.length === 2, 'two requests upstream');
  holds[0]!();
  await a;
  holds[1]!();
  await b;
  assert.deepEqual(p.stats(), { connections: 2, active: 0, pending: 0 });
  await send(p, request('/next'));
  assert.equal(ports[2], ports[1], 'the most recently idle connection is reused');
  await until(() => p.stats().connections === 0, 'idle connections to close');
  assert.equal(up.connections(), 2);
});

test('a connection the server closes while idle is removed', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'), (s) => { s.keepAliveTimeout = 50; });
  const p = pool(t, up.port);
  await send(p, request('/'));
  assert.equal(p.stats().connections, 1);
  await until(() => p.stats().connections === 0, 'the idle connection to be dropped');
  const r = await send(p, request('/'));
  assert.equal(r.kind, 'response');
  assert.equal(up.connections(), 2);
});

test('maxRequestsPerConnection closes the connection after the last one', async (t) => {
  const conns: string[] = [];
  const up = await startUpstream(t, (req, res) => {
    conns.push(`${req.socket.remotePort}:${req.headers.connection ?? ''}`);
    res.end('ok');
  });
  const p = pool(t, up.port, { maxRequestsPerConnection: 2 });
  for (let i = 0; i < 4; i++) assert.equal((await send(p, request('/'))).kind, 'response');
  assert.equal(up.connections(), 2);
  assert.match(conns[1]!, /:close$/);
  assert.match(conns[0]!, /:$/);
});

test('connect timeout -> UPSTREAM_CONNECT_TIMEOUT (TLS handshake that never completes)', async (t) => {
  const silent = net.createServer((s) => { s.on('error', () => {}); s.resume(); });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => silent.close(() => r())));
  const p = pool(t, (silent.address() as net.AddressInfo).port, { connectTimeoutMs: 100, tls: { rejectUnauthorized: false } });
  const start = performance.now();
  const r = await send(p, request('/'));
  assert.equal(r.kind === 'error' && r.code, 'UPSTREAM_CONNECT_TIMEOUT');
  assert.ok(performance.now() - start >= 90);
  assert.deepEqual(p.stats(), { connections: 0, active: 0, pending: 0 });
});

test('controller.abort destroys that upstream connection and reports the error', async (t) => {
  let closed!: () => void;
  const upstreamClosed = new Promise<void>((r) => { closed = r; });
  let arrived!: () => void;
  const got = new Promise<void>((r) => { arrived = r; });
  const up = await startUpstream(t, (req) => {
    req.socket.on('close', () => closed());
    arrived();
  });
  const p = pool(t, up.port);
  const rec = recorder();
  p.dispatch(request('/'), rec.handler);
  await got;
  assert.deepEqual(p.stats(), { connections: 1, active: 1, pending: 0 });
  const { ProxyError } = await import('../errors.ts');
  rec.controller().abort(new ProxyError('REQUEST_TIMEOUT'));
  const o = await rec.done;
  assert.equal(o.kind === 'error' && o.code, 'REQUEST_TIMEOUT');
  assert.deepEqual(p.stats(), { connections: 0, active: 0, pending: 0 });
  await upstreamClosed;
});

test('a queued request can be aborted; close() waits for in-flight; destroy() fails them', async (t) => {
  const holds: Array<() => void> = [];
  const up = await startUpstream(t, (_req, res) => { holds.push(() => res.end('ok')); });
  const p = pool(t, up.port, { maxConnections: 1, maxPendingRequests: 5 });
  const first = recorder();
  p.dispatch(request('/1'), first.handler);
  const queued = recorder();
  p.dispatch(request('/2'), queued.handler);
  await until(() => holds.length === 1, 'first request upstream');
  assert.deepEqual(p.stats(), { connections: 1, active: 1, pending: 1 });
  const { ProxyError } = await import('../errors.ts');
  queued.controller().abort(new ProxyError('REQUEST_TIMEOUT'));
  assert.equal((await queued.done).kind, 'error');
  assert.deepEqual(p.stats(), { connections: 1, active: 1, pending: 0 });
  let closedDone = false;
  const closing = p.close().then(() => { closedDone = true; });
  const late = await send(p, request('/late'));
  assert.equal(late.kind === 'error' && late.code, 'UPSTREAM_CONNECT_FAILED');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(closedDone, false, 'close() waits for the in-flight request');
  holds[0]!();
  assert.equal((await first.done).kind, 'response');
  await closing;
  assert.deepEqual(p.stats(), { connections: 0, active: 0, pending: 0 });

  const p2 = pool(t, up.port);
  const inflight = recorder();
  p2.dispatch(request('/3'), inflight.handler);
  await until(() => holds.length === 2, 'second pool request upstream');
  p2.destroy();
  const o = await inflight.done;
  assert.equal(o.kind === 'error' && o.code, 'UPSTREAM_RESET');
});

test('101 hands the socket over and removes it from the pool', async (t) => {
  const port = await rawUpstream(t, (s) => {
    s.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\nhi');
    s.on('data', (d) => s.write(d));
  });
  const p = pool(t, port);
  const o = await send(p, request('/ws', { upgrade: 'echo' }));
  assert.equal(o.kind, 'upgrade');
  if (o.kind !== 'upgrade') return;
  t.after(() => o.socket.destroy());
  assert.equal(o.head.toString(), 'hi');
  assert.deepEqual(p.stats(), { connections: 0, active: 0, pending: 0 });
  o.socket.resume(); // handed over paused, so nothing is lost before the new owner reads
  o.socket.write('ping');
  const [d] = (await new Promise((r) => o.socket.once('data', (x: Buffer) => r([x])))) as [Buffer];
  assert.equal(d.toString(), 'ping');
});

test('content-length body and bad options', async (t) => {
  let seen = '';
  const port = await rawUpstream(t, (s, req) => {
    seen = req;
    s.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
  });
  const p = pool(t, port);
  await send(p, request('/', { method: 'PUT' }, bufferBody(['ab', 'c'], true)));
  assert.match(seen, /content-length: 3\r\n\r\n/);
  assert.throws(() => createHttp1Pool({ ...DEFAULT_POOL_OPTIONS, host: 'h', port: 1, maxConnections: 0 }), /maxConnections/);
  assert.throws(() => createHttp1Pool({ ...DEFAULT_POOL_OPTIONS, host: 'h', port: 1, idleTimeoutMs: -1 }), /idleTimeoutMs/);
});

test('TLS origination: requests over a verified TLS connection, reused', async (t) => {
  const { readFileSync } = await import('node:fs');
  const https = await import('node:https');
  const dir = new URL('../http2/fixtures/', import.meta.url);
  const cert = readFileSync(new URL('localhost-cert.pem', dir));
  const key = readFileSync(new URL('localhost-key.pem', dir));
  let conns = 0;
  const server = https.createServer({ key, cert }, (req, res) => res.end(`tls ${req.url}`));
  server.on('secureConnection', () => conns++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => { server.closeAllConnections(); return new Promise<void>((r) => server.close(() => r())); });
  const port = (server.address() as net.AddressInfo).port;
  const p = pool(t, port, { tls: { ca: cert, servername: 'localhost' } });
  for (const path of ['/a', '/b']) {
    const o = await send(p, request(path));
    assert.equal(o.kind === 'response' && o.body, `tls ${path}`);
  }
  assert.equal(conns, 1);
  const untrusted = pool(t, port, { tls: { servername: 'localhost' } });
  const bad = await send(untrusted, request('/'));
  assert.equal(bad.kind === 'error' && bad.code, 'UPSTREAM_CONNECT_FAILED');
});

test('TLS origination to a plaintext server that hangs up on the ClientHello fails at once, never hangs', async (t) => {
  const server = net.createServer((s) => s.once('data', () => s.end()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as net.AddressInfo).port;
  const p = pool(t, port, { tls: { servername: 'localhost', rejectUnauthorized: false }, connectTimeoutMs: 10_000 });
  const started = Date.now();
  const o = await send(p, request('/'));
  assert.equal(o.kind === 'error' && o.code, 'UPSTREAM_CONNECT_FAILED');
  assert.ok(Date.now() - started < 5000, 'failed by the hang-up, not the connect timeout');
  assert.deepEqual(p.stats(), { connections: 0, active: 0, pending: 0 });
});

test('a handler that throws fails its exchange, not the process', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const p = pool(t, up.port);
  const rec = recorder();
  const o = await new Promise<Outcome>((resolve) => {
    p.dispatch(request('/'), {
      ...rec.handler,
      onHeaders() { throw new Error('layer bug'); },
      onError(err) { resolve({ kind: 'error', code: err.code, message: err.message }); },
    });
  });
  assert.deepEqual(o, { kind: 'error', code: 'INTERNAL', message: 'internal proxy error: layer bug' });
  assert.deepEqual(p.stats(), { connections: 0, active: 0, pending: 0 });
  assert.equal((await send(p, request('/again'))).kind, 'response');
});
