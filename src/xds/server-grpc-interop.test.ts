// The ADS server against a REAL proxyless gRPC client (@grpc/grpc-js-xds in a
// child process) and real grpc-js backends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SnapshotCache } from './cache.ts';
import { createSnapshot } from './snapshot.ts';
import type { Snapshot, SnapshotInput } from './snapshot.ts';
import { createXdsServer } from './server.ts';
import type { XdsServer, XdsServerEvent, ProxyStatus } from './server.ts';
import { bootstrapForGrpc } from './bootstrap.ts';
import { TypeUrl } from './protos.ts';
import { edsCluster, loadAssignment, serviceSnapshotInput } from '../../test/util/xds-fixtures.ts';
import { startEchoBackend, startGrpcXdsClient } from '../../test/util/xds-grpc-fixtures.ts';
import type { CallResult, GrpcXdsClientProcess } from '../../test/util/xds-grpc-fixtures.ts';

function build(input: SnapshotInput, label: string): Snapshot {
  const r = createSnapshot(input, label);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.snapshot;
}

function waitForEvent(server: XdsServer, pred: (e: XdsServerEvent) => boolean, timeoutMs = 10_000): Promise<XdsServerEvent> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      off();
      reject(new Error('xDS event not seen in time'));
    }, timeoutMs);
    const off = server.on((e) => {
      if (pred(e)) {
        clearTimeout(t);
        off();
        resolve(e);
      }
    });
  });
}

async function waitForStatus(server: XdsServer, pred: (s: ProxyStatus | undefined) => boolean, timeoutMs = 10_000): Promise<ProxyStatus | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = server.status().find((p) => p.nodeId === 'grpc-client-1');
    if (pred(s)) return s;
    if (Date.now() > deadline) throw new Error(`status not reached: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Calls in small batches until `done(batch)` holds (bounded), for config changes to reach the picker. */
async function callUntil(client: GrpcXdsClientProcess, done: (r: CallResult) => boolean, tries = 40): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (done(await client.call(10))) return;
  }
  throw new Error('traffic did not move in time');
}

test('grpc-js-xds: weighted clusters, endpoint moves, NACK keeps serving, control plane restart', async (t) => {
  const [b1, b2, b3] = await Promise.all([startEchoBackend('b1'), startEchoBackend('b2'), startEchoBackend('b3')]);
  t.after(() => Promise.all([b1, b2, b3].map((b) => b.close())));
  const cache = new SnapshotCache();
  let server = createXdsServer({ source: cache, controlPlaneId: 'trellis-test' });
  const port = await server.listen('127.0.0.1', 0);
  t.after(() => server.close());

  const echo = (v2Ports: number[]) =>
    serviceSnapshotInput('echo', [
      { cluster: 'echo-v1', weight: 80, ports: [b1.port] },
      { cluster: 'echo-v2', weight: 20, ports: v2Ports },
    ]);
  assert.deepEqual(cache.setGroupSnapshot('echo-clients', build(echo([b2.port]), 'r1')), { ok: true });

  const bootstrap = bootstrapForGrpc({ serverUri: `127.0.0.1:${port}`, nodeId: 'grpc-client-1', cluster: 'echo-clients', locality: { region: 'r1', zone: 'z1' } });
  const client = await startGrpcXdsClient(bootstrap);
  t.after(() => client.close());

  // 1. Weighted clusters 80/20.
  const first = await client.call(200);
  assert.deepEqual(first.errors, {});
  const share = (first.counts.b1 ?? 0) / 200;
  assert.ok(share > 0.65 && share < 0.93, `b1 share ${share} (${JSON.stringify(first.counts)})`);
  assert.ok((first.counts.b2 ?? 0) > 0);
  const synced = await waitForStatus(server, (s) => s?.status === 'synced');
  assert.equal(synced?.cluster, 'echo-clients');
  assert.deepEqual(synced?.locality, { region: 'r1', zone: 'z1', subZone: '' });
  assert.deepEqual(Object.keys(synced?.perType ?? {}).sort(), ['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration']);

  // 2. Endpoints change: echo-v2 moves from b2 to b3; only EDS is pushed.
  const pushes: XdsServerEvent[] = [];
  const off = server.on((e) => e.kind === 'push' && pushes.push(e));
  const ack = waitForEvent(server, (e) => e.kind === 'ack' && e.typeUrl === TypeUrl.endpoint);
  cache.setGroupSnapshot('echo-clients', build(echo([b3.port]), 'r2'));
  await ack;
  off();
  assert.deepEqual([...new Set(pushes.map((e) => e.kind === 'push' && e.typeUrl))], [TypeUrl.endpoint]);
  await callUntil(client, (r) => (r.counts.b3 ?? 0) > 0 && r.counts.b2 === undefined);
  const moved = await client.call(100);
  assert.equal(moved.counts.b2, undefined);
  assert.ok((moved.counts.b3 ?? 0) > 0 && (moved.counts.b1 ?? 0) > 0, JSON.stringify(moved));

  // 3. An invalid resource (grpc-js-xds rejects a MAGLEV cluster): NACK, status rejected, traffic unchanged.
  const nack = waitForEvent(server, (e) => e.kind === 'nack');
  const bad = echo([b3.port]);
  cache.setGroupSnapshot('echo-clients', build({ ...bad, clusters: [{ ...edsCluster('echo-v1'), lbPolicy: 'MAGLEV' }, edsCluster('echo-v2')] }, 'r3-bad'));
  const nackEvent = await nack;
  assert.equal(nackEvent.kind === 'nack' && nackEvent.typeUrl, TypeUrl.cluster);
  const rejected = await waitForStatus(server, (s) => s?.status === 'rejected');
  assert.ok((rejected?.perType.Cluster?.nacked?.message ?? '').length > 0);
  const stillServing = await client.call(50);
  assert.deepEqual(stillServing.errors, {});
  assert.equal((stillServing.counts.b1 ?? 0) + (stillServing.counts.b3 ?? 0), 50);
  // Fixing it clears the rejection.
  cache.setGroupSnapshot('echo-clients', build(echo([b3.port]), 'r4'));
  await waitForStatus(server, (s) => s?.status === 'synced');

  // 4. The control plane goes away: the client keeps serving from its last config.
  await server.close();
  const whileDown = await client.call(50);
  assert.deepEqual(whileDown.errors, {});
  // ... and comes back on the same port; the client reconnects and follows a change.
  server = createXdsServer({ source: cache });
  assert.equal(await server.listen('127.0.0.1', port), port);
  await waitForStatus(server, (s) => s?.status === 'synced', 20_000);
  cache.setGroupSnapshot(
    'echo-clients',
    build({ ...echo([b3.port]), endpoints: [loadAssignment('echo-v1', [b2.port]), loadAssignment('echo-v2', [b3.port])] }, 'r5'),
  );
  await callUntil(client, (r) => (r.counts.b2 ?? 0) > 0 && r.counts.b1 === undefined);
  const after = await client.call(50);
  assert.equal(after.counts.b1, undefined);
  assert.deepEqual(after.errors, {});
});
