// gRPC through a real proxy: a trailers-only UNAVAILABLE is retried when the
// route names it (gRPC calls are POSTs: the route's retryOn is the opt-in),
// other statuses are not; an HTTPFault gRPC abort reaches the client as
// that status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { cluster, proxyWith } from './kit.ts';

const PROTO = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../src/proxy/http2/fixtures/echo.proto');
const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, { keepCase: true, defaults: true })) as unknown as {
  trellis: { test: { Echo: grpc.ServiceClientConstructor } };
};
const Echo = loaded.trellis.test.Echo;
interface EchoReply { message: string; index: number }
type UnaryClient = grpc.Client & { Unary(req: { message: string; count: number }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: EchoReply) => void): void };

const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';

test('gRPC: UNAVAILABLE is retried when named, INVALID_ARGUMENT is not; a fault abort carries its gRPC status', async (t) => {
  const hits = new Map<string, number>();
  const server = new grpc.Server();
  server.addService(Echo.service, {
    Unary(call: grpc.ServerUnaryCall<{ message: string }, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      const msg = call.request.message;
      const n = (hits.get(msg) ?? 0) + 1;
      hits.set(msg, n);
      if (msg.startsWith('flaky') && n === 1) return cb({ code: grpc.status.UNAVAILABLE, details: 'warming up' });
      if (msg === 'bad') return cb({ code: grpc.status.INVALID_ARGUMENT, details: 'bad input' });
      cb(null, { message: `echo:${msg}`, index: n });
    },
  });
  const upPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  t.after(() => new Promise<void>((r) => server.tryShutdown(() => r())));

  const { port } = await proxyWith(t, {
    clusters: [cluster('echo', [upPort], { http2ProtocolOptions: {} })],
    routes: [
      { match: { prefix: '/', headers: [{ name: 'x-chaos', presentMatch: true }] }, route: { cluster: 'echo' }, typedPerFilterConfig: { fault: { '@type': FAULT, abort: { grpcStatus: 8, percentage: { numerator: 100 } } } } },
      { match: { prefix: '/' }, route: { cluster: 'echo', retryPolicy: { retryOn: 'unavailable,cancelled', numRetries: 2, retryBackOff: { baseInterval: '0.001s' } } } },
    ],
  });
  const client = new Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as UnaryClient;
  t.after(() => client.close());
  const unary = (message: string, md?: grpc.Metadata) =>
    new Promise<{ err: grpc.ServiceError | null; res?: EchoReply }>((resolve) => {
      const opts = { deadline: Date.now() + 5000 };
      const cb = (err: grpc.ServiceError | null, res?: EchoReply) => resolve({ err, res });
      if (md) (client as unknown as { Unary(r: unknown, m: grpc.Metadata, o: grpc.CallOptions, c: typeof cb): void }).Unary({ message, count: 0 }, md, opts, cb);
      else client.Unary({ message, count: 0 }, opts, cb);
    });

  const flaky = await unary('flaky-1');
  assert.equal(flaky.err, null, flaky.err?.message);
  assert.equal(flaky.res?.message, 'echo:flaky-1');
  assert.equal(hits.get('flaky-1'), 2, 'the UNAVAILABLE attempt was retried');

  const bad = await unary('bad');
  assert.equal(bad.err?.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(hits.get('bad'), 1);

  const md = new grpc.Metadata();
  md.set('x-chaos', '1');
  const chaos = await unary('chaos', md);
  assert.equal(chaos.err?.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.equal(hits.get('chaos'), undefined, 'the aborted call never reached the server');
});
