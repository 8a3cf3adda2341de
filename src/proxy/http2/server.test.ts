// End-to-end tests of the HTTP/2 codec: an http2 client -> serveHttp2 ->
// createHttp2Pool -> a real node:http2 upstream, all on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { ProxyError } from '../errors.ts';
import type { Dispatch, ResponseHandler } from '../http/exchange.ts';
import { startProxy } from './fixtures/proxy-harness.ts';
import { createHttp2Server, serveHttp2 } from './server.ts';

interface Upstream {
  port: number;
  sessions: number;
  close(): Promise<void>;
}

async function startUpstream(
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, raw: string[]) => void,
  settings: http2.Settings = {},
): Promise<Upstream> {
  const server = http2.createServer({ settings });
  const open = new Set<http2.ServerHttp2Session>();
  const u: Upstream = {
    port: 0,
    sessions: 0,
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  server.on('session', (s) => {
    u.sessions++;
    open.add(s);
    s.once('close', () => open.delete(s));
    s.on('error', () => {});
  });
  server.on('stream', (stream, headers, _flags, raw) => {
    stream.on('error', () => {});
    onStream(stream, headers, raw);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  u.port = (server.address() as net.AddressInfo).port;
  return u;
}

interface Reply {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders | null;
}

function request(client: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer | string, trailers?: Record<string, string>): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = client.request(headers, { endStream: body === undefined && !trailers, waitForTrailers: trailers !== undefined });
    if (trailers) req.once('wantTrailers', () => req.sendTrailers(trailers));
    if (body !== undefined || trailers) req.end(body);
    let head: http2.IncomingHttpHeaders = {};
    let tr: http2.IncomingHttpHeaders | null = null;
    const chunks: Buffer[] = [];
    req.on('response', (h) => (head = h));
    req.on('trailers', (t) => (tr = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks), trailers: tr }));
    req.on('error', reject);
  });
}

function connectClient(port: number): http2.ClientHttp2Session {
  const c = http2.connect(`http://127.0.0.1:${port}`);
  c.on('error', () => {});
  return c;
}

test('many concurrent streams share one downstream connection and one upstream session', async (t) => {
  const N = 50;
  const held: http2.ServerHttp2Stream[] = [];
  // The upstream answers only once all N streams are open at the same time.
  const upstream = await startUpstream((stream, headers) => {
    held.push(stream);
    stream.on('close', () => void 0);
    (stream as unknown as { path: string }).path = String(headers[':path']);
    if (held.length === N) {
      for (const s of held) {
        s.respond({ ':status': 200, 'x-path': (s as unknown as { path: string }).path });
        s.end((s as unknown as { path: string }).path);
      }
    }
  });
  t.after(() => upstream.close());
  const proxy = await startProxy({ host: '127.0.0.1', port: upstream.port });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());

  const replies = await Promise.all(Array.from({ length: N }, (_, i) => request(client, { ':path': `/item/${i}` })));
  for (const [i, r] of replies.entries()) {
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), `/item/${i}`);
    assert.equal(r.headers['x-path'], `/item/${i}`);
  }
  assert.equal(upstream.sessions, 1, 'one upstream session');
  assert.equal(proxy.accepted, 1, 'one downstream connection');
  assert.equal(proxy.pool.stats().connections, 1);
  assert.equal(proxy.pool.stats().active, 0);
});

test("the peer's SETTINGS_MAX_CONCURRENT_STREAMS caps streams per session; extra sessions open", async (t) => {
  const N = 12;
  const held: http2.ServerHttp2Stream[] = [];
  const perSession = new Map<http2.Http2Session, number>();
  let maxSeen = 0;
  const upstream = await startUpstream((stream) => {
    const n = (perSession.get(stream.session!) ?? 0) + 1;
    perSession.set(stream.session!, n);
    maxSeen = Math.max(maxSeen, n);
    held.push(stream);
    if (held.length === N) for (const s of held) { s.respond({ ':status': 204 }, { endStream: true }); }
  }, { maxConcurrentStreams: 5 });
  t.after(() => upstream.close());
  const proxy = await startProxy({ host: '127.0.0.1', port: upstream.port });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());

  const replies = await Promise.all(Array.from({ length: N }, () => request(client, { ':path': '/' })));
  assert.deepEqual(replies.map((r) => r.status), Array(N).fill(204));
  assert.equal(upstream.sessions, 3, '12 streams at 5 per session need 3 sessions');
  assert.ok(maxSeen <= 5, `at most 5 concurrent streams per session, saw ${maxSeen}`);
});

test('with maxConnections reached, requests queue; past maxPendingRequests they overflow (503)', async (t) => {
  const held: http2.ServerHttp2Stream[] = [];
  let arrived!: () => void;
  const twoArrived = new Promise<void>((r) => (arrived = r));
  const upstream = await startUpstream((stream) => {
    held.push(stream);
    if (held.length === 1) arrived();
  }, { maxConcurrentStreams: 1 });
  t.after(() => upstream.close());
  const proxy = await startProxy({ host: '127.0.0.1', port: upstream.port }, { pool: { maxConnections: 1, maxPendingRequests: 1 } });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());

  const first = request(client, { ':path': '/1' });
  await twoArrived;
  const second = request(client, { ':path': '/2' }); // queued
  // Wait until the proxy holds the second one in its queue.
  for (let i = 0; i < 200 && proxy.pool.stats().pending < 1; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(proxy.pool.stats().pending, 1);
  const third = await request(client, { ':path': '/3' });
  assert.equal(third.status, 503);
  assert.equal(third.headers['x-trellis-proxy-error'], 'OVERFLOW');
  // Free the session: the queued request then runs on it.
  held[0]!.respond({ ':status': 200 }, { endStream: true });
  assert.equal((await first).status, 200);
  for (let i = 0; i < 200 && held.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
  held[1]!.respond({ ':status': 201 }, { endStream: true });
  assert.equal((await second).status, 201);
  assert.equal(upstream.sessions, 1);
});

test('request and response trailers pass through; hop-by-hop headers do not', async (t) => {
  let seenHeaders: http2.IncomingHttpHeaders = {};
  const upstream = await startUpstream((stream, headers) => {
    seenHeaders = headers;
    const chunks: Buffer[] = [];
    let reqTrailers: http2.IncomingHttpHeaders = {};
    stream.on('trailers', (tr) => (reqTrailers = tr));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'set-cookie': ['a=1', 'b=2'] }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'x-checksum': String(reqTrailers['x-req-trailer']), 'x-len': String(Buffer.concat(chunks).length) }));
      stream.end(Buffer.concat(chunks));
    });
  });
  t.after(() => upstream.close());
  const proxy = await startProxy({ host: '127.0.0.1', port: upstream.port });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());

  const r = await request(client, { ':method': 'POST', ':path': '/upload', te: 'trailers', cookie: 'x=1' }, 'hello body', { 'x-req-trailer': 'abc' });
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'hello body');
  assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
  assert.equal(r.trailers?.['x-checksum'], 'abc');
  assert.equal(r.trailers?.['x-len'], '10');
  assert.equal(seenHeaders.te, 'trailers');
  assert.equal(seenHeaders[':authority'], `127.0.0.1:${proxy.port}`);
});

test('flow control end to end: a slow reader blocks the upstream writer; nothing is buffered whole', async (t) => {
  const TOTAL = 32 * 1024 * 1024;
  const CHUNK = Buffer.alloc(64 * 1024, 0x61);
  let flushed = 0; // bytes the upstream's stream accepted and handed to nghttp2
  let stalled!: (n: number) => void;
  const stall = new Promise<number>((r) => (stalled = r));
  const upstream = await startUpstream((stream) => {
    stream.respond({ ':status': 200 });
    let sent = 0;
    const pump = (): void => {
      while (sent < TOTAL) {
        sent += CHUNK.length;
        const ok = stream.write(CHUNK, () => (flushed += CHUNK.length));
        if (!ok) {
          // Blocked: if no 'drain' comes within 500 ms the writer is stalled.
          const timer = setTimeout(() => stalled(flushed), 500);
          stream.once('drain', () => {
            clearTimeout(timer);
            pump();
          });
          return;
        }
      }
      // Everything went out without a stall: the path buffered it all.
      stream.end(() => stalled(flushed));
    };
    pump();
  });
  t.after(() => upstream.close());
  const proxy = await startProxy({ host: '127.0.0.1', port: upstream.port });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());

  const req = client.request({ ':path': '/big' });
  await once(req, 'response');
  req.pause(); // the slow reader: reads nothing until the upstream stalls
  const atStall = await stall;
  assert.ok(atStall < 2 * 1024 * 1024, `upstream flushed ${atStall} bytes of ${TOTAL} into a paused path`);
  let received = 0;
  req.on('data', (c: Buffer) => (received += c.length));
  req.resume();
  await once(req, 'end');
  assert.equal(received, TOTAL);
});

test('flow control end to end: an upload to a slow upstream reader blocks the client', async (t) => {
  const TOTAL = 32 * 1024 * 1024;
  const CHUNK = Buffer.alloc(64 * 1024, 0x62);
  let upstreamStream!: http2.ServerHttp2Stream;
  let arrived!: () => void;
  const gotStream = new Promise<void>((r) => (arrived = r));
  const upstream = await startUpstream((stream) => {
    upstreamStream = stream;
    stream.pause(); // the slow reader
    arrived();
  });
  t.after(() => upstream.close());
  const proxy = await startProxy({ host: '127.0.0.1', port: upstream.port });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());

  const req = client.request({ ':method': 'POST', ':path': '/upload' });
  req.on('error', () => {});
  let flushed = 0;
  let stalled!: (n: number) => void;
  const stall = new Promise<number>((r) => (stalled = r));
  let sent = 0;
  const pump = (): void => {
    while (sent < TOTAL) {
      sent += CHUNK.length;
      if (!req.write(CHUNK, () => (flushed += CHUNK.length))) {
        const timer = setTimeout(() => stalled(flushed), 500);
        req.once('drain', () => {
          clearTimeout(timer);
          pump();
        });
        return;
      }
    }
    req.end(() => stalled(flushed));
  };
  pump();
  await gotStream;
  const atStall = await stall;
  assert.ok(atStall < 2 * 1024 * 1024, `client flushed ${atStall} bytes of ${TOTAL} towards a paused reader`);
  let received = 0;
  upstreamStream.on('data', (c: Buffer) => (received += c.length));
  upstreamStream.on('end', () => upstreamStream.respond({ ':status': 200 }, { endStream: true }));
  upstreamStream.resume();
  const [headers] = await new Promise<[http2.IncomingHttpHeaders]>((r) => req.once('response', (h) => r([h])));
  assert.equal(headers[':status'], 200);
  assert.equal(received, TOTAL);
});

test('upstream down: a plain HTTP/2 request gets 502 with x-trellis-proxy-error', async (t) => {
  const dead = net.createServer();
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
  const port = (dead.address() as net.AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  const proxy = await startProxy({ host: '127.0.0.1', port });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());
  const r = await request(client, { ':path': '/' });
  assert.equal(r.status, 502);
  assert.equal(r.headers['x-trellis-proxy-error'], 'UPSTREAM_CONNECT_FAILED');
  assert.match(r.body.toString(), /upstream connection failed/);
});

test('a peer that accepts TCP but never speaks HTTP/2 is a connect timeout (503)', async (t) => {
  const silent = net.createServer((s) => s.on('error', () => {}));
  const sockets = new Set<net.Socket>();
  silent.on('connection', (s) => sockets.add(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const proxy = await startProxy({ host: '127.0.0.1', port: (silent.address() as net.AddressInfo).port }, { pool: { connectTimeoutMs: 150 } });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());
  const started = performance.now();
  const r = await request(client, { ':path': '/' });
  assert.equal(r.status, 503);
  assert.equal(r.headers['x-trellis-proxy-error'], 'UPSTREAM_CONNECT_TIMEOUT');
  assert.ok(performance.now() - started < 2000);
});

test('a client reset cancels the upstream stream', async (t) => {
  let upstreamClosed!: (code: number) => void;
  const closed = new Promise<number>((r) => (upstreamClosed = r));
  let arrived!: () => void;
  const gotIt = new Promise<void>((r) => (arrived = r));
  const upstream = await startUpstream((stream) => {
    stream.respond({ ':status': 200 });
    stream.write('partial');
    stream.on('close', () => upstreamClosed(stream.rstCode ?? -1));
    arrived();
  });
  t.after(() => upstream.close());
  const proxy = await startProxy({ host: '127.0.0.1', port: upstream.port });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());
  const req = client.request({ ':path': '/hang' });
  req.on('error', () => {});
  await gotIt;
  await once(req, 'response');
  req.close(http2.constants.NGHTTP2_CANCEL);
  assert.equal(await closed, http2.constants.NGHTTP2_CANCEL);
  for (let i = 0; i < 200 && proxy.pool.stats().active > 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(proxy.pool.stats().active, 0);
});

test('drain sends GOAWAY and lets the in-flight stream finish', async (t) => {
  let hold!: http2.ServerHttp2Stream;
  let arrived!: () => void;
  const gotIt = new Promise<void>((r) => (arrived = r));
  const upstream = await startUpstream((stream) => {
    hold = stream;
    arrived();
  });
  t.after(() => upstream.close());
  const proxy = await startProxy({ host: '127.0.0.1', port: upstream.port });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());
  const pending = request(client, { ':path': '/slow' });
  await gotIt;
  assert.equal(proxy.tracked.size, 1);
  const goaway = once(client, 'goaway');
  for (const c of proxy.tracked) c.drain();
  await goaway;
  hold.respond({ ':status': 200 });
  hold.end('done');
  const r = await pending;
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'done');
  await once(client, 'close');
  for (let i = 0; i < 200 && proxy.tracked.size > 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(proxy.tracked.size, 0, 'untracked once the session closed');
  assert.equal(proxy.closedStats.length, 1);
  assert.ok(proxy.closedStats[0]!.bytesIn > 24 && proxy.closedStats[0]!.bytesOut > 0, JSON.stringify(proxy.closedStats));
});

test('idle upstream sessions close; a GOAWAY from upstream moves new requests to a new session', async (t) => {
  const upstream = await startUpstream((stream, headers) => {
    stream.respond({ ':status': 200 }, { endStream: true });
    if (headers[':path'] === '/goaway') stream.session!.close();
  });
  t.after(() => upstream.close());
  const proxy = await startProxy({ host: '127.0.0.1', port: upstream.port }, { pool: { idleTimeoutMs: 100 } });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());

  assert.equal((await request(client, { ':path': '/goaway' })).status, 200);
  for (let i = 0; i < 200 && proxy.pool.stats().connections > 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(proxy.pool.stats().connections, 0, 'GOAWAY removed the session');
  assert.equal((await request(client, { ':path': '/a' })).status, 200);
  assert.equal(upstream.sessions, 2);
  assert.equal(proxy.pool.stats().connections, 1);
  for (let i = 0; i < 200 && proxy.pool.stats().connections > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(proxy.pool.stats().connections, 0, 'idle session closed after idleTimeoutMs');
});

test('a response from an HTTP/1-style upstream loses its connection-specific headers', async (t) => {
  // A terminal dispatch standing in for an HTTP/1 pool.
  const h1Like: Dispatch = (req, handler: ResponseHandler) => {
    handler.onStart({ resume() {}, abort() {} });
    assert.equal(req.head.httpVersion, '2');
    assert.equal(req.body, null);
    handler.onHeaders({
      status: 200,
      headers: ['connection', 'keep-alive, x-hop', 'keep-alive', 'timeout=5', 'transfer-encoding', 'chunked', 'x-hop', '1', 'content-type', 'text/plain', 'content-type', 'text/html', 'x-end', 'yes'],
    });
    handler.onData(Buffer.from('ok'));
    handler.onEnd(null);
  };
  const proxy = await startProxy({ host: '127.0.0.1', port: 1 }, { wrap: () => h1Like });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());
  const r = await request(client, { ':path': '/' });
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'ok');
  assert.equal(r.headers['x-end'], 'yes');
  assert.equal(r.headers['content-type'], 'text/plain');
  for (const h of ['connection', 'keep-alive', 'transfer-encoding', 'x-hop']) assert.equal(r.headers[h], undefined, h);
});

test('an error after the response head resets a plain HTTP/2 stream', async (t) => {
  const failing: Dispatch = (_req, handler) => {
    handler.onStart({ resume() {}, abort() {} });
    handler.onHeaders({ status: 200, headers: [] });
    handler.onData(Buffer.from('part'));
    setImmediate(() => handler.onError(new ProxyError('UPSTREAM_RESET')));
  };
  const proxy = await startProxy({ host: '127.0.0.1', port: 1 }, { wrap: () => failing });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());
  const req = client.request({ ':path': '/' });
  req.resume();
  req.on('error', () => {});
  await new Promise((r) => req.once('close', r));
  assert.equal(req.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR);
});

test('expect: 100-continue becomes head.expectContinue; the client gets its 100 when the body is wanted', async (t) => {
  let seen: http2.IncomingHttpHeaders = {};
  const upstream = await startUpstream((stream, headers) => {
    seen = headers;
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      stream.respond({ ':status': 200 });
      stream.end(Buffer.concat(chunks));
    });
  });
  t.after(() => upstream.close());
  let expectFlag: boolean | undefined;
  const proxy = await startProxy({ host: '127.0.0.1', port: upstream.port }, {
    wrap: (next) => (req, h) => {
      expectFlag = req.head.expectContinue;
      next(req, h);
    },
  });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());
  const req = client.request({ ':method': 'POST', ':path': '/e', expect: '100-continue' });
  await once(req, 'continue');
  req.end('after continue');
  const [headers] = await new Promise<[http2.IncomingHttpHeaders]>((r) => req.once('response', (h) => r([h])));
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c: string) => (body += c));
  await once(req, 'end');
  assert.equal(headers[':status'], 200);
  assert.equal(body, 'after continue');
  assert.equal(expectFlag, true);
  assert.equal(seen.expect, undefined);
});

test('unsendable field names from an upstream: a bad head is 502, a bad trailer resets the stream; nothing throws', async (t) => {
  const bad: Dispatch = (req, handler) => {
    handler.onStart({ resume() {}, abort() {} });
    if (req.head.path === '/bad-head') {
      handler.onHeaders({ status: 200, headers: ['x bad', 'v'] });
      return;
    }
    handler.onHeaders({ status: 200, headers: [] });
    handler.onData(Buffer.from('x'));
    handler.onEnd(['x bad trailer', 'v']);
  };
  const proxy = await startProxy({ host: '127.0.0.1', port: 1 }, { wrap: () => bad });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());
  const r = await request(client, { ':path': '/bad-head' });
  assert.equal(r.status, 502);
  assert.equal(r.headers['x-trellis-proxy-error'], 'UPSTREAM_PROTOCOL_ERROR');
  const req = client.request({ ':path': '/bad-trailer' });
  req.resume();
  req.on('error', () => {});
  await new Promise((res) => req.once('close', res));
  assert.equal(req.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR);
});

test('an initial buffer that already holds a whole request (preface, SETTINGS, HEADERS) loses nothing', async (t) => {
  const hasHeadersFrame = (buf: Buffer): boolean => {
    let off = 24;
    while (off + 9 <= buf.length) {
      const len = buf.readUIntBE(off, 3);
      if (buf[off + 3] === 1) return off + 9 + len <= buf.length;
      off += 9 + len;
    }
    return false;
  };
  let initialLength = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const chunks: Buffer[] = [];
    const onReadable = (): void => {
      let c: Buffer | null;
      while ((c = socket.read() as Buffer | null) !== null) chunks.push(c);
      const buf = Buffer.concat(chunks);
      if (!hasHeadersFrame(buf)) return;
      socket.removeListener('readable', onReadable);
      initialLength = buf.length;
      serveHttp2(socket, buf, {
        listener: 'x', direction: 'outbound', downstream: { remoteAddress: '', remotePort: 0, localAddress: '', localPort: 0 },
        dispatch: (req, h) => {
          h.onStart({ resume() {}, abort() {} });
          h.onHeaders({ status: 200, headers: [] });
          h.onData(Buffer.from(`hi ${req.head.path}`));
          h.onEnd(null);
        },
        track: () => () => {},
      });
    };
    socket.on('readable', onReadable);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const client = connectClient((server.address() as net.AddressInfo).port);
  t.after(() => client.destroy());
  const r = await request(client, { ':path': '/whole' });
  assert.equal(r.body.toString(), 'hi /whole');
  assert.ok(initialLength > 24 + 9, 'the initial bytes went past the preface');
});

test('createHttp2Server({ idleTimeoutMs }) sends GOAWAY on a quiet connection', async (t) => {
  const upstream = await startUpstream((stream) => stream.respond({ ':status': 204 }, { endStream: true }));
  t.after(() => upstream.close());
  const proxy = await startProxy({ host: '127.0.0.1', port: upstream.port }, { serve: createHttp2Server({ idleTimeoutMs: 100 }) });
  t.after(() => proxy.close());
  const client = connectClient(proxy.port);
  t.after(() => client.destroy());
  const goaway = once(client, 'goaway');
  assert.equal((await request(client, { ':path': '/' })).status, 204);
  const started = performance.now();
  await goaway;
  assert.ok(performance.now() - started < 2000);
  await once(client, 'close');
});
