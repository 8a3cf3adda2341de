// The upstream HTTP/2 pool driven directly through its Dispatch contract,
// with requests shaped as an HTTP/1 downstream would hand them over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { ProxyError } from '../errors.ts';
import type {
  BodySink, BodySource, ExchangeController, HeaderList, ProxyRequest, RequestHead, ResponseHead,
} from '../http/exchange.ts';
import { DEFAULT_POOL_OPTIONS, type PoolOptions, type UpstreamPool } from '../upstream/types.ts';
import { createHttp2Pool } from './pool.ts';

interface Upstream {
  port: number;
  sessions: number;
  close(): Promise<void>;
}

async function startUpstream(onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, raw: string[]) => void): Promise<Upstream> {
  const server = http2.createServer();
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
  server.on('stream', (stream, headers, _f, raw) => {
    stream.on('error', () => {});
    onStream(stream, headers, raw);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  u.port = (server.address() as net.AddressInfo).port;
  return u;
}

function pool(t: { after(fn: () => unknown): void }, port: number, o: Partial<PoolOptions> = {}): UpstreamPool {
  const p = createHttp2Pool({ ...DEFAULT_POOL_OPTIONS, connectTimeoutMs: 2000, ...o, host: '127.0.0.1', port });
  t.after(() => p.destroy());
  return p;
}

function makeReq(head: Partial<RequestHead>, body: BodySource | null = null, grpc = false): ProxyRequest {
  return {
    head: { method: 'GET', scheme: 'http', authority: 'svc.local:8080', path: '/', headers: [], httpVersion: '1.1', ...head },
    body,
    ctx: {
      listener: 'test', direction: 'outbound',
      downstream: { remoteAddress: '127.0.0.1', remotePort: 1, localAddress: '127.0.0.1', localPort: 2 },
      startTime: performance.now(), deadline: null, responseFlags: [], grpc, attempts: 0, attrs: new Map(),
    },
  };
}

interface Outcome {
  events: string[];
  head: ResponseHead | null;
  body: Buffer;
  trailers: HeaderList | null;
  error: ProxyError | null;
  controller: ExchangeController | null;
}

/** Dispatch and collect; `pauseData` makes onData return false (the test resumes). */
function run(p: UpstreamPool, req: ProxyRequest, opts: { onStart?: (c: ExchangeController) => void } = {}): { outcome: Outcome; done: Promise<Outcome> } {
  const outcome: Outcome = { events: [], head: null, body: Buffer.alloc(0), trailers: null, error: null, controller: null };
  const chunks: Buffer[] = [];
  const done = new Promise<Outcome>((resolve) => {
    p.dispatch(req, {
      onStart(c) {
        outcome.events.push('start');
        outcome.controller = c;
        opts.onStart?.(c);
      },
      onInformational(h) {
        outcome.events.push(`info:${h.status}`);
      },
      onHeaders(h) {
        outcome.events.push('headers');
        outcome.head = h;
        return true;
      },
      onData(c) {
        chunks.push(c);
        return true;
      },
      onEnd(tr) {
        outcome.events.push('end');
        outcome.trailers = tr;
        outcome.body = Buffer.concat(chunks);
        resolve(outcome);
      },
      onError(e) {
        outcome.events.push('error');
        outcome.error = e;
        resolve(outcome);
      },
    });
  });
  return { outcome, done };
}

/** A BodySource over a list of chunks that honours the sink's backpressure. */
class ChunkSource implements BodySource {
  contentLength: number | null = null;
  pushed = 0;
  paused = 0;
  destroyed = false;
  private sink: BodySink | null = null;
  private i = 0;
  private readonly chunks: Buffer[];
  private readonly trailers: HeaderList | null;
  constructor(chunks: Buffer[], trailers: HeaderList | null = null) {
    this.chunks = chunks;
    this.trailers = trailers;
  }
  start(sink: BodySink): void {
    this.sink = sink;
    this.flow();
  }
  resume(): void {
    this.flow();
  }
  destroy(): void {
    this.destroyed = true;
  }
  private flow(): void {
    const sink = this.sink!;
    while (this.i < this.chunks.length && !this.destroyed) {
      const c = this.chunks[this.i++]!;
      this.pushed += c.length;
      if (!sink.onData(c)) {
        this.paused++;
        return;
      }
    }
    if (!this.destroyed && this.i === this.chunks.length) {
      this.i++;
      sink.onEnd(this.trailers);
    }
  }
}

test('an HTTP/1-shaped request is rewritten for HTTP/2: pseudo-headers, no hop-by-hop, joined cookies', async (t) => {
  let raw: string[] = [];
  const up = await startUpstream((stream, _h, r) => {
    raw = r;
    stream.respond({ ':status': 200 }, { endStream: true });
  });
  t.after(() => up.close());
  const p = pool(t, up.port);
  const { done } = run(p, makeReq({
    method: 'GET', path: '/a?b=c', authority: 'svc.local:8080',
    headers: ['host', 'svc.local:8080', 'connection', 'keep-alive, x-hop', 'keep-alive', 'timeout=5', 'x-hop', '1',
      'transfer-encoding', 'chunked', 'te', 'gzip', 'upgrade', 'h2c', 'cookie', 'a=1', 'cookie', 'b=2', 'x-multi', '1', 'x-multi', '2'],
  }));
  const o = await done;
  assert.deepEqual(o.events, ['start', 'headers', 'end']);
  assert.equal(o.head?.status, 200);
  assert.deepEqual(raw.slice(0, 8), [':method', 'GET', ':scheme', 'http', ':authority', 'svc.local:8080', ':path', '/a?b=c']);
  assert.deepEqual(raw.slice(8), ['x-multi', '1', 'x-multi', '2', 'cookie', 'a=1; b=2']);
});

test('gRPC from a non-HTTP/2 hop gets te: trailers and the remaining deadline as grpc-timeout', async (t) => {
  let headers: http2.IncomingHttpHeaders = {};
  const up = await startUpstream((stream, h) => {
    headers = h;
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'nope' }, { endStream: true });
  });
  t.after(() => up.close());
  const p = pool(t, up.port);
  const req = makeReq({ method: 'POST', path: '/pkg.Svc/M', headers: ['content-type', 'application/grpc', 'grpc-timeout', '99S'] }, null, true);
  req.ctx.deadline = performance.now() + 1500;
  const o = await run(p, req).done;
  assert.equal(headers.te, 'trailers');
  const m = /^(\d+)m$/.exec(String(headers['grpc-timeout']));
  assert.ok(m && Number(m[1]) <= 1500 && Number(m[1]) > 1000, `grpc-timeout ${String(headers['grpc-timeout'])}`);
  // Trailers-only: the handler sees onHeaders (with grpc-status) then onEnd(null).
  assert.deepEqual(o.events, ['start', 'headers', 'end']);
  assert.equal(o.trailers, null);
  assert.deepEqual(o.head?.headers.slice(0, 6), ['content-type', 'application/grpc', 'grpc-status', '5', 'grpc-message', 'nope']);
});

test('1xx responses arrive as onInformational before the final head', async (t) => {
  const up = await startUpstream((stream) => {
    stream.additionalHeaders({ ':status': 103, link: '</s.css>; rel=preload' });
    stream.respond({ ':status': 200 });
    stream.end('x');
  });
  t.after(() => up.close());
  const o = await run(pool(t, up.port), makeReq({})).done;
  assert.deepEqual(o.events, ['start', 'info:103', 'headers', 'end']);
});

test('the request body is streamed with backpressure, followed by its trailers', async (t) => {
  const TOTAL_CHUNKS = 256;
  const chunk = Buffer.alloc(16 * 1024, 0x62);
  let upstreamStream!: http2.ServerHttp2Stream;
  let arrived!: () => void;
  const gotStream = new Promise<void>((r) => (arrived = r));
  const up = await startUpstream((stream) => {
    upstreamStream = stream;
    stream.pause(); // reads nothing until the test says so
    arrived();
  });
  t.after(() => up.close());
  const p = pool(t, up.port);
  const src = new ChunkSource(Array.from({ length: TOTAL_CHUNKS }, () => chunk), ['x-sum', 'ok']);
  const { done } = run(p, makeReq({ method: 'POST' }, src));
  await gotStream;
  // The upstream is not reading: the pool must stop pulling the source.
  for (let i = 0; i < 200 && src.paused === 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(src.paused > 0, 'the source was paused');
  const before = src.pushed;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(src.pushed, before, 'nothing more pushed while paused');
  assert.ok(before < TOTAL_CHUNKS * chunk.length / 2, `${before} bytes pushed before the pause`);
  let received = 0;
  let trailers: http2.IncomingHttpHeaders = {};
  upstreamStream.on('data', (c: Buffer) => (received += c.length));
  upstreamStream.on('trailers', (tr) => (trailers = tr));
  upstreamStream.on('end', () => {
    upstreamStream.respond({ ':status': 200 }, { endStream: true });
  });
  upstreamStream.resume();
  const o = await done;
  assert.equal(o.head?.status, 200);
  assert.equal(received, TOTAL_CHUNKS * chunk.length);
  assert.equal(trailers['x-sum'], 'ok');
});

test('abort while queued fails the request and frees its place; abort while streaming resets with CANCEL', async (t) => {
  let hold!: http2.ServerHttp2Stream;
  let arrived!: () => void;
  const gotStream = new Promise<void>((r) => (arrived = r));
  let closedWith!: (code: number) => void;
  const upstreamClosed = new Promise<number>((r) => (closedWith = r));
  const up = await startUpstream((stream) => {
    hold = stream;
    stream.on('close', () => closedWith(stream.rstCode ?? -1));
    arrived();
  });
  t.after(() => up.close());
  const p = pool(t, up.port, { maxConnections: 1, maxConcurrentStreams: 1, maxPendingRequests: 5 });
  const first = run(p, makeReq({ path: '/1' }));
  await gotStream;
  const second = run(p, makeReq({ path: '/2' }));
  assert.equal(p.stats().pending, 1);
  second.outcome.controller!.abort(new ProxyError('REQUEST_TIMEOUT'));
  const o2 = await second.done;
  assert.equal(o2.error?.code, 'REQUEST_TIMEOUT');
  assert.equal(p.stats().pending, 0);
  first.outcome.controller!.abort(new ProxyError('DOWNSTREAM_CLOSED'));
  assert.equal((await first.done).error?.code, 'DOWNSTREAM_CLOSED');
  assert.equal(await upstreamClosed, http2.constants.NGHTTP2_CANCEL);
  void hold;
});

test('a stream reset before the response is UPSTREAM_RESET', async (t) => {
  const up = await startUpstream((stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM));
  t.after(() => up.close());
  const o = await run(pool(t, up.port), makeReq({})).done;
  assert.deepEqual(o.events, ['start', 'error']);
  assert.equal(o.error?.code, 'UPSTREAM_RESET');
});

test('maxRequestsPerConnection retires a session after that many streams', async (t) => {
  const up = await startUpstream((stream) => stream.respond({ ':status': 204 }, { endStream: true }));
  t.after(() => up.close());
  const p = pool(t, up.port, { maxRequestsPerConnection: 2 });
  for (let i = 0; i < 5; i++) assert.equal((await run(p, makeReq({})).done).head?.status, 204);
  assert.equal(up.sessions, 3);
});

test('close() waits for in-flight requests; destroy() fails them with UPSTREAM_RESET', async (t) => {
  const held: http2.ServerHttp2Stream[] = [];
  let arrived!: () => void;
  const gotStream = new Promise<void>((r) => (arrived = r));
  const up = await startUpstream((stream) => {
    held.push(stream);
    arrived();
  });
  t.after(() => up.close());
  const p = pool(t, up.port);
  const a = run(p, makeReq({}));
  await gotStream;
  let closed = false;
  const closing = p.close().then(() => (closed = true));
  const refused = await run(p, makeReq({})).done;
  assert.equal(refused.error?.code, 'UPSTREAM_CONNECT_FAILED', 'a closed pool takes no new requests');
  assert.equal(closed, false);
  held[0]!.respond({ ':status': 200 }, { endStream: true });
  assert.equal((await a.done).head?.status, 200);
  await closing;
  assert.equal(p.stats().connections, 0);

  const p2 = pool(t, up.port);
  const b = run(p2, makeReq({}));
  for (let i = 0; i < 200 && held.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
  p2.destroy();
  assert.equal((await b.done).error?.code, 'UPSTREAM_RESET');
});

test('losing the connection (GOAWAY + close) before a response is UPSTREAM_RESET; the next request gets a new session', async (t) => {
  const up = await startUpstream((stream, headers) => {
    if (headers[':path'] === '/refuse') stream.session!.destroy(new Error('going away'), http2.constants.NGHTTP2_INTERNAL_ERROR);
    else stream.respond({ ':status': 200 }, { endStream: true });
  });
  t.after(() => up.close());
  const p = pool(t, up.port);
  const o = await run(p, makeReq({ path: '/refuse' })).done;
  assert.equal(o.error?.code, 'UPSTREAM_RESET');
  assert.equal((await run(p, makeReq({ path: '/ok' })).done).head?.status, 200);
  assert.equal(up.sessions, 2);
});

test('a body length known only to the BodySource (HTTP/1 framing) is sent as content-length', async (t) => {
  let seen: http2.IncomingHttpHeaders = {};
  let got = '';
  const up = await startUpstream((stream, headers) => {
    seen = headers;
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => (got += c));
    stream.on('end', () => stream.respond({ ':status': 200 }, { endStream: true }));
  });
  t.after(() => up.close());
  const src = new ChunkSource([Buffer.from('abc'), Buffer.from('de')]);
  src.contentLength = 5;
  const o = await run(pool(t, up.port), makeReq({ method: 'POST' }, src)).done;
  assert.equal(o.head?.status, 200);
  assert.equal(seen['content-length'], '5');
  assert.equal(got, 'abcde');
});

test('an unusable upstream address fails the request, it does not throw from dispatch', async (t) => {
  const p = createHttp2Pool({ ...DEFAULT_POOL_OPTIONS, host: 'bad host', port: 80 });
  t.after(() => p.destroy());
  const o = await run(p, makeReq({})).done;
  assert.equal(o.error?.code, 'UPSTREAM_CONNECT_FAILED');
  assert.equal(p.stats().connections, 0);
});

test('keepalive: a peer that goes silent (no FIN, no RST) is detected by PING and its streams fail', async (t) => {
  let arrived!: () => void;
  const gotStream = new Promise<void>((r) => (arrived = r));
  const up = await startUpstream(() => arrived()); // never answers
  t.after(() => up.close());
  // A relay that can be frozen: bytes stop flowing both ways, sockets stay open.
  let frozen = false;
  const pairs: net.Socket[] = [];
  const relay = net.createServer((down) => {
    const upSock = net.connect(up.port, '127.0.0.1');
    pairs.push(down, upSock);
    for (const [a, b] of [[down, upSock], [upSock, down]] as const) {
      a.on('error', () => {});
      a.on('data', (c: Buffer) => {
        if (!frozen) b.write(c);
      });
    }
  });
  const relayPort = await new Promise<number>((r) => relay.listen(0, '127.0.0.1', () => r((relay.address() as net.AddressInfo).port)));
  t.after(() => {
    for (const s of pairs) s.destroy();
    relay.close();
  });
  const p = createHttp2Pool({ ...DEFAULT_POOL_OPTIONS, host: '127.0.0.1', port: relayPort, keepaliveIntervalMs: 100, keepaliveTimeoutMs: 100 });
  t.after(() => p.destroy());
  const pending = run(p, makeReq({ path: '/hang' }));
  await gotStream;
  frozen = true;
  const started = performance.now();
  const o = await pending.done;
  assert.equal(o.error?.code, 'UPSTREAM_RESET');
  assert.ok(performance.now() - started < 2000, 'detected within interval + timeout (plus slack)');
  for (let i = 0; i < 200 && p.stats().connections > 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(p.stats().connections, 0);
});

test('keepalive: PINGs on a quiet, healthy session are answered and keep it', async (t) => {
  let hold!: http2.ServerHttp2Stream;
  let arrived!: () => void;
  const gotStream = new Promise<void>((r) => (arrived = r));
  let pings = 0;
  const up = await startUpstream((stream) => {
    hold = stream;
    stream.session!.on('ping', () => pings++);
    arrived();
  });
  t.after(() => up.close());
  const p = createHttp2Pool({ ...DEFAULT_POOL_OPTIONS, host: '127.0.0.1', port: up.port, keepaliveIntervalMs: 50, keepaliveTimeoutMs: 1000 });
  t.after(() => p.destroy());
  const pending = run(p, makeReq({}));
  await gotStream;
  for (let i = 0; i < 400 && pings < 3; i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(pings >= 3, `saw ${pings} pings`);
  hold.respond({ ':status': 200 }, { endStream: true });
  assert.equal((await pending.done).head?.status, 200);
  // Idle (no streams): no PINGs.
  const atIdle = pings;
  await new Promise((r) => setTimeout(r, 250));
  assert.ok(pings <= atIdle + 1, `idle session pinged ${pings - atIdle} times`);
  // A new stream re-arms them.
  const second = run(p, makeReq({}));
  const idleCount = pings;
  for (let i = 0; i < 400 && pings < idleCount + 2; i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(pings >= idleCount + 2, 'pings resumed with a stream in flight');
  hold.respond({ ':status': 200 }, { endStream: true });
  assert.equal((await second.done).head?.status, 200);
  assert.equal(up.sessions, 1);
});
