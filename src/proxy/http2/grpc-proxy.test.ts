// gRPC through the HTTP/2 codec: a real @grpc/grpc-js client -> serveHttp2
// -> createHttp2Pool -> a real @grpc/grpc-js server, on loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ProxyError } from '../errors.ts';
import type { Dispatch, ExchangeController, RequestContext, ResponseHandler } from '../http/exchange.ts';
import { startProxy, type HarnessOptions, type ProxyHarness } from './fixtures/proxy-harness.ts';

const PROTO = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'echo.proto');
const definition = protoLoader.loadSync(PROTO, { keepCase: true, defaults: true });
const loaded = grpc.loadPackageDefinition(definition) as unknown as {
  trellis: { test: { Echo: grpc.ServiceClientConstructor } };
};
const Echo = loaded.trellis.test.Echo;

interface EchoRequest { message: string; count: number }
interface EchoReply { message: string; index: number }
type Unary = (req: EchoRequest, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: EchoReply) => void) => void;
interface EchoClient extends grpc.Client {
  Unary: Unary;
  ServerStream(req: EchoRequest, opts?: grpc.CallOptions): grpc.ClientReadableStream<EchoReply>;
  ClientStream(opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: EchoReply) => void): grpc.ClientWritableStream<EchoRequest>;
  Bidi(opts?: grpc.CallOptions): grpc.ClientDuplexStream<EchoRequest, EchoReply>;
}

// ---- the upstream gRPC server ----

/** Calls the server left hanging, and whether each saw its cancellation. */
const hanging: Array<{ cancelled: Promise<void>; deadline: grpc.Deadline; arrived: number }> = [];
let upstreamPort = 0;
let upstream: grpc.Server;

function hang(call: grpc.ServerUnaryCall<EchoRequest, EchoReply> | grpc.ServerWritableStream<EchoRequest, EchoReply>): void {
  hanging.push({ cancelled: new Promise((r) => call.once('cancelled', () => r())), deadline: call.getDeadline(), arrived: Date.now() });
}

before(async () => {
  upstream = new grpc.Server();
  upstream.addService(Echo.service, {
    Unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      const msg = call.request.message;
      if (msg === 'not-found') {
        const md = new grpc.Metadata();
        md.set('x-detail', 'missing-thing');
        cb({ code: grpc.status.NOT_FOUND, details: 'no such thing: 42', metadata: md });
        return;
      }
      if (msg === 'hang') {
        hang(call);
        return;
      }
      cb(null, { message: `echo:${msg}`, index: 0 });
    },
    ServerStream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
      const { message, count } = call.request;
      if (message === 'hang-after-first') {
        call.write({ message: 'first', index: 0 });
        hang(call);
        return;
      }
      for (let i = 0; i < count; i++) call.write({ message, index: i });
      call.end();
    },
    ClientStream(call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      const parts: string[] = [];
      let failed = false;
      call.on('data', (r: EchoRequest) => {
        if (r.message === 'fail-early' && !failed) {
          failed = true;
          cb({ code: grpc.status.INVALID_ARGUMENT, details: 'rejected on the first message' });
        }
        parts.push(r.message);
      });
      call.on('end', () => cb(null, { message: parts.join('+'), index: parts.length }));
    },
    Bidi(call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) {
      let i = 0;
      call.on('data', (r: EchoRequest) => call.write({ message: r.message.toUpperCase(), index: i++ }));
      call.on('end', () => call.end());
    },
  });
  upstreamPort = await new Promise<number>((resolve, reject) =>
    upstream.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
});

after(() => upstream.forceShutdown());

async function setup(t: { after(fn: () => unknown): void }, o: HarnessOptions = {}, port = upstreamPort): Promise<{ proxy: ProxyHarness; client: EchoClient }> {
  const proxy = await startProxy({ host: '127.0.0.1', port }, o);
  const client = new Echo(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure()) as unknown as EchoClient;
  t.after(async () => {
    client.close();
    await proxy.close();
  });
  return { proxy, client };
}

function unary(client: EchoClient, message: string, opts: grpc.CallOptions = {}): Promise<{ err: grpc.ServiceError | null; res?: EchoReply }> {
  return new Promise((resolve) => client.Unary({ message, count: 0 }, opts, (err, res) => resolve({ err, res })));
}

function inSeconds(s: number): Date {
  return new Date(Date.now() + s * 1000);
}

// ---- call shapes ----

test('unary calls, many at once, share one upstream session', async (t) => {
  const { proxy, client } = await setup(t);
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => unary(client, `m${i}`, { deadline: inSeconds(10) })));
  for (const [i, r] of results.entries()) {
    assert.equal(r.err, null);
    assert.equal(r.res?.message, `echo:m${i}`);
  }
  assert.equal(proxy.accepted, 1);
  assert.equal(proxy.pool.stats().connections, 1);
});

test('server-streaming call', async (t) => {
  const { client } = await setup(t);
  const call = client.ServerStream({ message: 'tick', count: 50 }, { deadline: inSeconds(10) });
  const got: EchoReply[] = [];
  for await (const r of call) got.push(r as EchoReply);
  assert.equal(got.length, 50);
  assert.deepEqual(got.map((r) => r.index), Array.from({ length: 50 }, (_, i) => i));
});

test('client-streaming call', async (t) => {
  const { client } = await setup(t);
  const res = await new Promise<EchoReply>((resolve, reject) => {
    const call = client.ClientStream({ deadline: inSeconds(10) }, (err, r) => (err ? reject(err) : resolve(r!)));
    for (const m of ['a', 'b', 'c', 'd']) call.write({ message: m, count: 0 });
    call.end();
  });
  assert.deepEqual(res, { message: 'a+b+c+d', index: 4 });
});

test('client-streaming call answered early while the client is still sending', async (t) => {
  const { client } = await setup(t);
  const big = 'x'.repeat(1024);
  const err = await new Promise<grpc.ServiceError | null>((resolve) => {
    const call = client.ClientStream({ deadline: inSeconds(10) }, (e) => resolve(e));
    call.on('error', () => {});
    call.write({ message: 'fail-early', count: 0 });
    // Far more than the flow-control windows hold: the proxy must keep
    // draining (and dropping) the rest once the response is complete.
    for (let i = 0; i < 2000; i++) call.write({ message: big, count: i });
    call.end();
  });
  assert.equal(err?.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(err.details, 'rejected on the first message');
});

test('bidirectional streaming call, interleaved', async (t) => {
  const { client } = await setup(t);
  const call = client.Bidi({ deadline: inSeconds(10) });
  const replies: EchoReply[] = [];
  // Send one, wait for its echo, send the next: proves both directions flow
  // while the call is open.
  for (const m of ['one', 'two', 'three']) {
    const next = new Promise<EchoReply>((r) => call.once('data', r));
    call.write({ message: m, count: 0 });
    replies.push(await next);
  }
  const status = new Promise<grpc.StatusObject>((r) => call.once('status', r));
  call.end();
  assert.deepEqual(replies.map((r) => r.message), ['ONE', 'TWO', 'THREE']);
  assert.equal((await status).code, grpc.status.OK);
});

// ---- statuses ----

test("the server's error status, message and metadata pass through", async (t) => {
  const { client } = await setup(t);
  const { err } = await unary(client, 'not-found', { deadline: inSeconds(10) });
  assert.ok(err);
  assert.equal(err.code, grpc.status.NOT_FOUND);
  assert.equal(err.details, 'no such thing: 42');
  assert.deepEqual(err.metadata.get('x-detail'), ['missing-thing']);
  assert.deepEqual(err.metadata.get('x-trellis-proxy-error'), [], 'not a proxy-generated status');
});

test('a 200 ms client deadline on a server that never answers: DEADLINE_EXCEEDED, upstream cancelled', async (t) => {
  let seen: RequestContext | null = null;
  const { client } = await setup(t, { wrap: (next) => (req, h) => { seen = req.ctx; next(req, h); } });
  const before = hanging.length;
  const started = performance.now();
  const { err } = await unary(client, 'hang', { deadline: new Date(Date.now() + 200) });
  const took = performance.now() - started;
  assert.equal(err?.code, grpc.status.DEADLINE_EXCEEDED);
  assert.ok(took < 1500, `took ${took} ms`);
  // The proxy read grpc-timeout into ctx.deadline...
  const ctx = seen as RequestContext | null;
  assert.ok(ctx !== null && ctx.deadline !== null);
  assert.ok(ctx.deadline - ctx.startTime <= 200 && ctx.deadline - ctx.startTime > 100);
  // ...forwarded what was left of it, and the upstream call was cancelled.
  const call = hanging[before];
  assert.ok(call, 'the call reached the upstream');
  const d = call.deadline instanceof Date ? call.deadline.getTime() : call.deadline;
  assert.ok(Number.isFinite(d) && d - call.arrived <= 200, `upstream deadline ${d - call.arrived} ms after arrival`);
  await call.cancelled;
});

test('upstream down: the proxy answers gRPC UNAVAILABLE (not an HTTP error), marked as its own', async (t) => {
  const dead = net.createServer();
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
  const port = (dead.address() as net.AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  const { client } = await setup(t, {}, port);
  const { err } = await unary(client, 'x', { deadline: inSeconds(10) });
  assert.equal(err?.code, grpc.status.UNAVAILABLE);
  assert.match(err.details, /upstream connection failed/);
  assert.deepEqual(err.metadata.get('x-trellis-proxy-error'), ['UPSTREAM_CONNECT_FAILED']);
});

test('pool overflow is gRPC UNAVAILABLE with the OVERFLOW marker', async (t) => {
  const { proxy, client } = await setup(t, { pool: { maxConnections: 1, maxConcurrentStreams: 1, maxPendingRequests: 0 } });
  const before = hanging.length;
  const first = unary(client, 'hang', { deadline: inSeconds(10) });
  for (let i = 0; i < 400 && hanging.length === before; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(proxy.pool.stats().active, 1);
  const { err } = await unary(client, 'x', { deadline: inSeconds(10) });
  assert.equal(err?.code, grpc.status.UNAVAILABLE);
  assert.deepEqual(err.metadata.get('x-trellis-proxy-error'), ['OVERFLOW']);
  client.close(); // the hanging call ends with the client
  void first;
});

// ---- an abort from the controller (what the core's timeout layer does) ----

/** A dispatch wrapper that aborts each exchange with REQUEST_TIMEOUT after `ms`. */
function abortAfter(ms: number): (next: Dispatch) => Dispatch {
  return (next) => (req, handler) => {
    let timer: NodeJS.Timeout | null = null;
    const wrapped: ResponseHandler = {
      onStart(c: ExchangeController) {
        timer ??= setTimeout(() => c.abort(new ProxyError('REQUEST_TIMEOUT')), ms);
        handler.onStart(c);
      },
      onHeaders: (h) => handler.onHeaders(h),
      onData: (c) => handler.onData(c),
      onEnd(tr) {
        if (timer) clearTimeout(timer);
        handler.onEnd(tr);
      },
      onError(e) {
        if (timer) clearTimeout(timer);
        handler.onError(e);
      },
    };
    next(req, wrapped);
  };
}

test('REQUEST_TIMEOUT before the response head reaches a gRPC client as DEADLINE_EXCEEDED', async (t) => {
  const { client } = await setup(t, { wrap: abortAfter(100) });
  const before = hanging.length;
  const { err } = await unary(client, 'hang', { deadline: inSeconds(10) });
  assert.equal(err?.code, grpc.status.DEADLINE_EXCEEDED);
  assert.deepEqual(err.metadata.get('x-trellis-proxy-error'), ['REQUEST_TIMEOUT']);
  await hanging[before]!.cancelled;
});

test('REQUEST_TIMEOUT after the response head ends the call with DEADLINE_EXCEEDED in trailers', async (t) => {
  const { client } = await setup(t, { wrap: abortAfter(300) });
  const before = hanging.length;
  const call = client.ServerStream({ message: 'hang-after-first', count: 0 }, { deadline: inSeconds(10) });
  const got: EchoReply[] = [];
  call.on('data', (r: EchoReply) => got.push(r));
  const err = await new Promise<grpc.ServiceError>((resolve) => call.once('error', resolve));
  assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
  assert.deepEqual(err.metadata.get('x-trellis-proxy-error'), ['REQUEST_TIMEOUT']);
  assert.deepEqual(got.map((r) => r.message), ['first']);
  await hanging[before]!.cancelled;
});
