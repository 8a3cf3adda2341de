// Explicit mode for gRPC and TCP: declared upstreams get local ports on the
// sidecar, named to the app in TRELLIS_UPSTREAM_<SVC>_<PORT>.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { freePort } from '../../src/runner/ports.ts';
import { greeterDefinition } from './apps/greeter.ts';
import { APPS, apply, controlPlane, events, service, tempDir, trellisRun, waitFor } from './harness.ts';

async function register(apiUrl: string, name: string, app: string, port: number, protocol: string): Promise<void> {
  const res = await fetch(`${apiUrl}/api/v1/registry/workloads`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, namespace: 'default', address: '127.0.0.1', ports: [{ name: protocol, port, protocol }], labels: { app }, ttlSeconds: 60 }),
  });
  assert.equal(res.status, 201, await res.text());
}

test('trellis run: gRPC and TCP through per-upstream local ports', async (t) => {
  const cp = await controlPlane(t);
  const dir = tempDir(t);
  await apply(cp, service('greeter', 50051, 'grpc'));
  await apply(cp, service('echo', 7000, 'tcp'));
  await apply(cp, service('caller', 8080, 'http'));

  const server = new grpc.Server();
  server.addService(greeterDefinition, {
    sayHello: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(`hello ${String(call.request)}`)),
  });
  const grpcPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  t.after(() => server.forceShutdown());
  const echo = net.createServer((s) => s.on('data', (d) => s.write(`echo: ${String(d)}`)).on('end', () => s.end()));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => echo.close(() => r())));
  await register(cp.apiUrl, 'greeter-1', 'greeter', grpcPort, 'grpc');
  await register(cp.apiUrl, 'echo-1', 'echo', (echo.address() as net.AddressInfo).port, 'tcp');

  const out = path.join(dir, 'out.json');
  const [g, e] = [await freePort(), await freePort()];
  const r = trellisRun(t, cp, ['--service', 'caller', '--upstream', `greeter:50051=${g}`, '--upstream', `echo:7000=${e}`, '--', process.execPath, path.join(APPS, 'upstream-client.ts')], { OUT: out });
  const ex = await r.exit;
  assert.equal(ex.code, 0, r.stderr());
  const rec = JSON.parse(readFileSync(out, 'utf8')) as Record<string, string>;
  assert.equal(rec.grpcAddr, `127.0.0.1:${g}`);
  assert.equal(rec.tcpAddr, `127.0.0.1:${e}`);
  assert.equal(rec.grpcReply, 'hello mesh');
  assert.equal(rec.tcpReply, 'echo: ping over tcp');
});

test('trellis run: a gRPC client dials a mesh service by name; grpc-js CONNECTs through the sidecar (http_proxy)', async (t) => {
  const cp = await controlPlane(t);
  const dir = tempDir(t);
  await apply(cp, service('greeter', 50051, 'grpc'));
  await apply(cp, service('caller', 8080, 'http'));
  // The server runs in the mesh too: the tunnel ends at its sidecar's inbound port.
  const grpcPort = await freePort();
  const srv = trellisRun(t, cp, ['--service', 'greeter', '--workload', 'greeter-1', '--port', `${grpcPort}:grpc`, '--', process.execPath, path.join(APPS, 'greeter-server.ts'), String(grpcPort)]);
  await waitFor('greeter started', () => (events(srv.stderr()).some((e) => e.event === 'app_started') ? true : srv.child.exitCode !== null ? Promise.reject(new Error(srv.stderr())) : undefined));

  const out = path.join(dir, 'by-name.json');
  const r = trellisRun(t, cp, ['--service', 'caller', '--', process.execPath, path.join(APPS, 'grpc-by-name.ts'), 'greeter:50051'], { OUT: out });
  const ex = await r.exit;
  assert.equal(ex.code, 0, r.stderr());
  const rec = JSON.parse(readFileSync(out, 'utf8')) as { replies: string[]; proxy: string };
  assert.match(rec.proxy, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.deepEqual(rec.replies, ['hello call 0', 'hello call 1', 'hello call 2']);
});
