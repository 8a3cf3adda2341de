// Proxyless gRPC through the REAL control plane (issue 3): a grpc-js-xds
// client, bootstrapped by `trellis bootstrap grpc`, dials
// `xds:///echo.default.svc:50051` and reaches grpc-js backends registered in
// the registry; a GRPCRoute 80/20 split shows in the call distribution; an
// endpoint move (deregister one workload, register another) is followed; the
// client keeps serving while the control plane is down and follows a change
// made after it restarts on the same xDS port and data dir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startControlPlane } from '../../src/control-plane/control-plane.ts';
import { TypeUrl } from '../../src/xds/protos.ts';
import { freePort } from '../proxy/helpers.ts';
import { service as grpcService } from './fixtures.ts';
import { startEchoBackend, startGrpcXdsClient } from '../util/xds-grpc-fixtures.ts';
import { api, apply, callUntil, cliBootstrap, nextEvent, register as registerWorkload, waitSynced } from '../util/proxyless-cp.ts';
import type { ControlPlane } from '../../src/control-plane/control-plane.ts';

const TARGET = 'xds:///echo.default.svc:50051';

const register = (cp: ControlPlane, name: string, port: number, version: string): Promise<void> => registerWorkload(cp, name, port, { app: 'echo', version });

const service = (name: string, selector: Record<string, string>) => grpcService(name, selector, { port: 50051, protocol: 'grpc' });

const grpcRoute = (weights: [number, number]) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'GRPCRoute',
  metadata: { name: 'echo-split', namespace: 'default' },
  spec: {
    parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: 50051 }],
    rules: [{
      matches: [{ method: { service: 'echo.Echo', method: 'Call' } }],
      backendRefs: [{ name: 'echo-v1', port: 50051, weight: weights[0] }, { name: 'echo-v2', port: 50051, weight: weights[1] }],
    }],
  },
});

test('grpc-js-xds via the control plane: CLI bootstrap, GRPCRoute split, endpoint move, control-plane restart', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-proxyless-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const xdsPort = await freePort();
  const cpOpts = { dataDir, apiPort: 0, xdsPort, log: () => {} };
  let cp = await startControlPlane(cpOpts);
  t.after(() => cp.close());

  const backends = await Promise.all([startEchoBackend('v1'), startEchoBackend('v2a'), startEchoBackend('v2b')]);
  t.after(() => Promise.all(backends.map((b) => b.close())));
  const [v1, v2a, v2b] = backends as [typeof backends[0], typeof backends[0], typeof backends[0]];

  for (const s of [service('echo', { app: 'echo' }), service('echo-v1', { app: 'echo', version: 'v1' }), service('echo-v2', { app: 'echo', version: 'v2' })]) await apply(cp, s);
  await register(cp, 'echo-1', v1.port, 'v1');
  await register(cp, 'echo-2', v2a.port, 'v2');

  const bootstrap = await cliBootstrap(xdsPort);
  assert.deepEqual(bootstrap.xds_servers.length, 1);
  assert.match(bootstrap.node.id, /^default\/echo-client-grpc-\d+$/);
  const nodeId = bootstrap.node.id;
  const client = await startGrpcXdsClient(bootstrap, TARGET);
  t.after(() => client.close());

  // 1. No route: the service round-robins over both registered backends.
  await callUntil(client, 'both backends answer', (r) => Object.keys(r.errors).length === 0 && (r.counts.v1 ?? 0) > 0 && (r.counts.v2a ?? 0) > 0);
  const plain = await client.call(40, 2000);
  assert.deepEqual(plain.errors, {});
  assert.deepEqual(Object.keys(plain.counts).sort(), ['v1', 'v2a']);
  const status = (await api(cp, 'GET', '/api/v1/proxies')).json.proxies as { nodeId: string; status: string }[];
  assert.ok(status.some((p) => p.nodeId === nodeId), `the client is listed as a proxy: ${JSON.stringify(status)}`);

  // 2. A GRPCRoute splits 80/20 between echo-v1 and echo-v2.
  const routeAck = nextEvent(cp, (e) => e.kind === 'ack' && e.nodeId === nodeId && e.typeUrl === TypeUrl.route);
  await apply(cp, grpcRoute([80, 20]));
  await routeAck;
  const split = await client.call(500, 2000);
  assert.deepEqual(split.errors, {});
  const v1Share = (split.counts.v1 ?? 0) / 500;
  // p = 0.8, n = 500: sd ~ 0.018; these bounds are > 4 sd away.
  assert.ok(v1Share > 0.72 && v1Share < 0.88, `v1 share ${v1Share} (${JSON.stringify(split.counts)})`);
  assert.equal((split.counts.v1 ?? 0) + (split.counts.v2a ?? 0), 500);

  // 3. Endpoint move: echo-v2 moves from v2a to v2b.
  const gone = await api(cp, 'DELETE', '/api/v1/registry/workloads/default/echo-2');
  assert.ok(gone.status < 300, JSON.stringify(gone.json));
  await register(cp, 'echo-3', v2b.port, 'v2');
  await callUntil(client, 'traffic follows the endpoint move', (r) => (r.counts.v2b ?? 0) > 0 && r.counts.v2a === undefined);
  const moved = await client.call(100, 2000);
  assert.deepEqual(moved.errors, {});
  assert.equal(moved.counts.v2a, undefined);
  assert.ok((moved.counts.v1 ?? 0) > 0 && (moved.counts.v2b ?? 0) > 0, JSON.stringify(moved));

  // 4. The control plane goes away: the client keeps serving from its last config.
  await cp.close();
  const whileDown = await client.call(100, 2000);
  assert.deepEqual(whileDown.errors, {});
  assert.equal((whileDown.counts.v1 ?? 0) + (whileDown.counts.v2b ?? 0), 100);

  // ... it comes back on the same port and data dir; the client reconnects and follows a change.
  const restartedAt = Date.now();
  cp = await startControlPlane(cpOpts);
  assert.equal(cp.xdsPort, xdsPort);
  await apply(cp, grpcRoute([0, 100]));
  await waitSynced(cp, nodeId, 20_000);
  const resyncMs = Date.now() - restartedAt;
  await callUntil(client, 'traffic follows the change made after the restart', (r) => r.counts.v1 === undefined && Object.keys(r.errors).length === 0 && r.counts.v2b === 10);
  const final = await client.call(50, 2000);
  assert.deepEqual(final.errors, {});
  assert.deepEqual(final.counts, { v2b: 50 });
  t.diagnostic(`client resynced ${resyncMs} ms after the control plane restarted`);
});
