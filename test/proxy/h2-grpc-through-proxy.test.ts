// HTTP/2 (prior knowledge) and gRPC through the whole in-process proxy:
// detection -> HTTP/2 codec -> layers -> router -> cluster -> HTTP/2 or
// HTTP/1 pool, with real node:http2 and @grpc/grpc-js peers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { TestContext } from 'node:test';
import { bootstrapDoc, getText, httpBackend, httpListener, portOf, routeConfig, runProxy, staticCluster } from './helpers.ts';

const PROTO = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'proxy', 'http2', 'fixtures', 'echo.proto');
const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, { keepCase: true, defaults: true })) as unknown as {
  trellis: { test: { Echo: grpc.ServiceClientConstructor } };
};
const Echo = loaded.trellis.test.Echo;
interface EchoRequest { message: string; count: number }
interface EchoReply { message: string; index: number }

async function h2Backend(t: TestContext): Promise<number> {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200, 'x-backend': 'h2', 'x-seen-path': String(headers[':path']) });
    stream.end(`h2 says hi to ${String(headers['x-forwarded-for'])}`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as net.AddressInfo).port;
}

function h2Get(port: number, p: string): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({ ':path': p });
    const chunks: Buffer[] = [];
    let headers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => (headers = h));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      session.close();
      resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks).toString() });
    });
    req.on('error', reject);
    req.end();
  });
}

test('HTTP/2 prior knowledge through the proxy, to an HTTP/2 and to an HTTP/1 upstream', async (t) => {
  const h2 = await h2Backend(t);
  const h1 = await httpBackend(t, 'h1');
  const p = await runProxy(t, bootstrapDoc({
    listeners: [httpListener('out', { routeConfigName: 'r' })],
    clusters: [staticCluster('h2', [h2], { http2: true }), staticCluster('h1', [h1.port])],
    routes: [routeConfig('r', [{ prefix: '/one', cluster: 'h1' }, { cluster: 'h2' }])],
  }));
  const port = portOf(p, 'out');
  const r = await h2Get(port, '/two?q=1');
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-backend'], 'h2');
  assert.equal(r.headers['x-seen-path'], '/two?q=1');
  assert.equal(r.body, 'h2 says hi to 127.0.0.1');
  const r1 = await h2Get(port, '/one');
  assert.equal(r1.body, 'h1 /one');
  const prom = (await getText(p.adminPort!, '/stats/prometheus')).body;
  assert.match(prom, /^trellis_downstream_connections_total\{listener="out",protocol="http2"\} 2$/m);
});

test('gRPC through the proxy: unary, server streaming, status pass-through, route timeout as DEADLINE_EXCEEDED', async (t) => {
  const server = new grpc.Server();
  server.addService(Echo.service, {
    Unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      const msg = call.request.message;
      if (msg === 'missing') return cb({ code: grpc.status.NOT_FOUND, details: 'nothing here' });
      if (msg === 'hang') return; // never answers: the proxy's route timeout must
      cb(null, { message: `echo:${msg}`, index: 0 });
    },
    ServerStream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
      for (let i = 0; i < call.request.count; i++) call.write({ message: call.request.message, index: i });
      call.end();
    },
  });
  const upPort = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, port) => (e ? rej(e) : res(port))));
  t.after(() => server.forceShutdown());
  const p = await runProxy(t, bootstrapDoc({
    listeners: [httpListener('out', { routeConfigName: 'r' })],
    clusters: [staticCluster('echo', [upPort], { http2: true })],
    routes: [routeConfig('r', [{ cluster: 'echo', timeout: '0.3s' }])],
  }));
  const client = new Echo(`127.0.0.1:${portOf(p, 'out')}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Unary(req: EchoRequest, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: EchoReply) => void): void;
    ServerStream(req: EchoRequest, opts?: grpc.CallOptions): grpc.ClientReadableStream<EchoReply>;
  };
  t.after(() => client.close());
  const unary = (message: string): Promise<{ err: grpc.ServiceError | null; res?: EchoReply }> =>
    new Promise((resolve) => client.Unary({ message, count: 0 }, { deadline: Date.now() + 5000 }, (err, res) => resolve({ err, res })));

  const ok = await unary('hello');
  assert.equal(ok.err, null);
  assert.equal(ok.res?.message, 'echo:hello');

  const replies: EchoReply[] = [];
  const stream = client.ServerStream({ message: 's', count: 5 }, { deadline: Date.now() + 5000 });
  stream.on('data', (d: EchoReply) => replies.push(d));
  await once(stream, 'end');
  assert.deepEqual(replies.map((r) => r.index), [0, 1, 2, 3, 4]);

  const missing = await unary('missing');
  assert.equal(missing.err?.code, grpc.status.NOT_FOUND);
  assert.equal(missing.err?.details, 'nothing here');

  const start = performance.now();
  const hung = await unary('hang');
  assert.equal(hung.err?.code, grpc.status.DEADLINE_EXCEEDED);
  const took = performance.now() - start;
  assert.ok(took >= 250 && took < 3000, `route timeout, not the client's 5 s deadline (${took} ms)`);
});
