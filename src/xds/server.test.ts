import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { SnapshotCache } from './cache.ts';
import { createSnapshot } from './snapshot.ts';
import type { Snapshot, SnapshotInput } from './snapshot.ts';
import { createXdsServer } from './server.ts';
import type { XdsServerEvent } from './server.ts';
import { TypeUrl } from './protos.ts';
import { unpackAny } from './codec.ts';
import { edsCluster, loadAssignment, serviceSnapshotInput } from '../../test/util/xds-fixtures.ts';
import { openRawAds, openStalledAds } from '../../test/util/xds-raw-stream.ts';

const node = { id: 'proxy-1', cluster: 'echo-client', locality: { region: 'r1', zone: 'z1' } };
const backends = [
  { cluster: 'echo-v1', weight: 80, ports: [9001] },
  { cluster: 'echo-v2', weight: 20, ports: [9002] },
];
const base = serviceSnapshotInput('echo', backends);

function build(input: SnapshotInput, label: string): Snapshot {
  const r = createSnapshot(input, label);
  assert.ok(r.ok);
  return r.snapshot;
}

async function start(t: import('node:test').TestContext, opts: { pushBudgetBytes?: number; pushStallMs?: number } = {}) {
  const cache = new SnapshotCache();
  const server = createXdsServer({ source: cache, controlPlaneId: 'test', ...opts });
  const port = await server.listen('127.0.0.1', 0);
  const events: XdsServerEvent[] = [];
  server.on((e) => events.push(e));
  t.after(() => server.close());
  const open = (o: { ownConnection?: boolean } = {}) => {
    const s = openRawAds(port, o);
    t.after(() => s.close());
    return s;
  };
  return { cache, server, port, events, open };
}

test('a subscription made before the snapshot exists is answered when it lands; ACKs make the proxy synced', async (t) => {
  const { cache, server, events, open } = await start(t);
  const ads = open();
  ads.send({ typeUrl: TypeUrl.listener, node });
  ads.send({ typeUrl: TypeUrl.cluster });
  // The node is known (first request) but nothing can be sent yet.
  await waitFor(() => server.status().length === 1);
  assert.equal(server.status()[0]!.status, 'stale');
  assert.equal(server.status()[0]!.snapshotLabel, null);

  assert.deepEqual(cache.setSnapshot('proxy-1', build(base, 'rev-1')), { ok: true });
  // Both come (clusters first when both are due: make before break).
  const got = [await ads.next(), await ads.next()];
  const lds = got.find((r) => r.typeUrl === TypeUrl.listener)!;
  const cds = got.find((r) => r.typeUrl === TypeUrl.cluster)!;
  assert.ok(lds && cds, 'an LDS and a CDS response');
  assert.equal(lds.resources.length, 1);
  assert.equal(unpackAny(lds.resources[0]!).name, 'echo');
  assert.deepEqual(cds.resources.map((r) => unpackAny(r).name), ['echo-v1', 'echo-v2']);
  assert.notEqual(lds.nonce, cds.nonce);

  ads.send({ typeUrl: TypeUrl.listener, responseNonce: lds.nonce, versionInfo: lds.versionInfo });
  ads.send({ typeUrl: TypeUrl.cluster, responseNonce: cds.nonce, versionInfo: cds.versionInfo });
  ads.send({ typeUrl: TypeUrl.route, resourceNames: ['echo-route'] });
  ads.send({ typeUrl: TypeUrl.endpoint, resourceNames: ['echo-v1'] });
  const rds = await ads.next();
  assert.equal(rds.typeUrl, TypeUrl.route);
  const eds = await ads.next();
  assert.equal(eds.typeUrl, TypeUrl.endpoint);
  assert.deepEqual(eds.resources.map((r) => unpackAny(r).clusterName), ['echo-v1'], 'only the subscribed name');
  ads.send({ typeUrl: TypeUrl.route, resourceNames: ['echo-route'], responseNonce: rds.nonce, versionInfo: rds.versionInfo });
  ads.send({ typeUrl: TypeUrl.endpoint, resourceNames: ['echo-v1'], responseNonce: eds.nonce, versionInfo: eds.versionInfo });
  await waitFor(() => server.status()[0]?.status === 'synced');
  const st = server.status()[0]!;
  assert.equal(st.nodeId, 'proxy-1');
  assert.equal(st.cluster, 'echo-client');
  assert.deepEqual(st.locality, { region: 'r1', zone: 'z1', subZone: '' });
  assert.equal(st.snapshotLabel, 'rev-1');
  assert.equal(st.perType.Listener!.ackedVersion, lds.versionInfo);
  assert.equal(st.perType.Listener!.subscribed, '*');
  assert.deepEqual(st.perType.ClusterLoadAssignment!.subscribed, ['echo-v1']);
  assert.deepEqual(events.filter((e) => e.kind === 'ack').length, 4);

  // An endpoint-only change pushes EDS only; and only to streams whose subscribed
  // resources changed (echo-v2 is not subscribed here).
  events.length = 0;
  cache.setSnapshot('proxy-1', build({ ...base, endpoints: [loadAssignment('echo-v1', [9001]), loadAssignment('echo-v2', [9005])] }, 'rev-2'));
  await settle();
  assert.deepEqual(events.filter((e) => e.kind === 'push'), []);
  assert.equal(server.status()[0]!.status, 'synced');
  cache.setSnapshot('proxy-1', build({ ...base, endpoints: [loadAssignment('echo-v1', [9001, 9003]), loadAssignment('echo-v2', [9005])] }, 'rev-3'));
  await settle();
  assert.deepEqual(events.filter((e) => e.kind === 'push').map((e) => e.kind === 'push' && e.typeUrl), [TypeUrl.endpoint]);
  assert.equal(server.status()[0]!.status, 'stale');
  const eds2 = await ads.next();
  assert.equal(eds2.typeUrl, TypeUrl.endpoint);
  assert.equal(((unpackAny(eds2.resources[0]!).endpoints as { lbEndpoints: unknown[] }[])[0]!.lbEndpoints).length, 2);
  ads.send({ typeUrl: TypeUrl.endpoint, resourceNames: ['echo-v1'], responseNonce: eds2.nonce, versionInfo: eds2.versionInfo });
  await waitFor(() => server.status()[0]?.status === 'synced');

  // The proxy goes away: it leaves the status list.
  ads.close();
  await waitFor(() => server.status().length === 0);
  assert.ok(events.some((e) => e.kind === 'disconnect' && e.nodeId === 'proxy-1'));
});

test('NACKs are matched by nonce: the proxy is rejected with the message until a later version is ACKed', async (t) => {
  const { cache, server, events, open } = await start(t);
  cache.setGroupSnapshot('echo-client', build(base, 'g1'));
  const ads = open();
  ads.send({ typeUrl: TypeUrl.cluster, node });
  const cds = await ads.next();
  ads.send({ typeUrl: TypeUrl.cluster, responseNonce: cds.nonce, versionInfo: cds.versionInfo });
  await waitFor(() => server.status()[0]?.status === 'synced');

  cache.setGroupSnapshot('echo-client', build({ ...base, clusters: [...(base.clusters ?? []), { name: 'extra', type: 'STATIC' }] }, 'g2'));
  const bad = await ads.next();
  assert.equal(bad.resources.length, 3);
  // A NACK whose version_info is the old version (as Envoy fills it): matched by nonce.
  ads.send({ typeUrl: TypeUrl.cluster, responseNonce: bad.nonce, versionInfo: cds.versionInfo, error: 'cluster extra: no endpoints' });
  await waitFor(() => server.status()[0]?.status === 'rejected');
  const st = server.status()[0]!;
  assert.equal(st.perType.Cluster!.nacked?.message, 'cluster extra: no endpoints');
  assert.equal(st.perType.Cluster!.nacked?.version, bad.versionInfo);
  assert.equal(st.perType.Cluster!.ackedVersion, cds.versionInfo);
  assert.ok(events.some((e) => e.kind === 'nack' && e.message === 'cluster extra: no endpoints'));

  // A stale nonce (an older response) is ignored.
  ads.send({ typeUrl: TypeUrl.cluster, responseNonce: cds.nonce, versionInfo: cds.versionInfo });
  // The same rejected content is not sent again; a fixed snapshot is, and its ACK clears the rejection.
  const pushesBefore = events.filter((e) => e.kind === 'push').length;
  cache.setGroupSnapshot('echo-client', build({ ...base, clusters: [...(base.clusters ?? []), { name: 'extra', type: 'STATIC' }] }, 'g2-again'));
  await settle();
  assert.equal(events.filter((e) => e.kind === 'push').length, pushesBefore);
  assert.equal(server.status()[0]!.status, 'rejected');
  cache.setGroupSnapshot('echo-client', build(base, 'g3'));
  const fixed = await ads.next();
  assert.equal(fixed.versionInfo, cds.versionInfo, 'content equal to the first version: same version');
  ads.send({ typeUrl: TypeUrl.cluster, responseNonce: fixed.nonce, versionInfo: fixed.versionInfo });
  await waitFor(() => server.status()[0]?.status === 'synced');
  assert.equal(server.status()[0]!.perType.Cluster!.nacked, null);
});

test('a stream whose first request has no node is refused', async (t) => {
  const { open } = await start(t);
  const ads = open();
  ads.send({ typeUrl: TypeUrl.listener });
  const status = await withTimeout(ads.ended, 5000);
  assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
  assert.match(status.details, /node/);
});

test('a reconnecting client gets the current state again, on a new server too', async (t) => {
  const { cache, port, server, open } = await start(t);
  cache.setDefaultSnapshot(build(base, 'd'));
  const a = open();
  a.send({ typeUrl: TypeUrl.listener, node });
  const first = await a.next();
  a.close();
  await server.close();
  const again = createXdsServer({ source: cache });
  t.after(() => again.close());
  assert.equal(await again.listen('127.0.0.1', port), port);
  const b = open();
  b.send({ typeUrl: TypeUrl.listener, node, versionInfo: first.versionInfo });
  const second = await b.next();
  assert.equal(second.versionInfo, first.versionInfo);
  assert.equal(second.resources.length, 1);
});

/** Lets the server's push slices for a change run (they start on setImmediate). */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_r, rej) => { timer = setTimeout(() => rej(new Error('timeout')), ms); })]).finally(() => clearTimeout(timer));
}

test('a client that does not read gets the latest state when it drains, not every intermediate one', async (t) => {
  const { cache, events, open } = await start(t);
  const big = (n: number): Snapshot =>
    build({ clusters: [edsCluster('c')], endpoints: [loadAssignment('c', Array.from({ length: 2000 }, (_v, i) => 1000 + i + n))] }, String(n));
  cache.setDefaultSnapshot(big(0));
  const ads = open();
  ads.send({ typeUrl: TypeUrl.endpoint, resourceNames: ['c'], node });
  await ads.next();
  ads.pause();
  const changes = 60;
  for (let i = 1; i <= changes; i++) {
    cache.setDefaultSnapshot(big(i));
    await settle(); // each change pushed (not coalesced) until the stream's buffer is full
  }
  const pushedWhilePaused = events.filter((e) => e.kind === 'push').length;
  assert.ok(pushedWhilePaused < changes, `pushed ${pushedWhilePaused} of ${changes}: no backpressure`);
  ads.resume();
  const latest = big(changes).types.get(TypeUrl.endpoint)!.version;
  let last = '';
  for (let i = 0; i <= changes && last !== latest; i++) last = (await ads.next()).versionInfo;
  assert.equal(last, latest);
});

test('an endpoint change sends only the changed ClusterLoadAssignment; a named Cluster subscription still gets every cluster', async (t) => {
  const { cache, open } = await start(t);
  cache.setSnapshot('proxy-1', build(base, 'rev-1'));
  const ads = open();
  ads.send({ typeUrl: TypeUrl.cluster, node, resourceNames: ['echo-v1', 'echo-v2'] });
  const cds = await ads.next();
  ads.send({ typeUrl: TypeUrl.cluster, resourceNames: ['echo-v1', 'echo-v2'], versionInfo: cds.versionInfo, responseNonce: cds.nonce });
  ads.send({ typeUrl: TypeUrl.endpoint, resourceNames: ['echo-v1', 'echo-v2'] });
  const eds = await ads.next();
  assert.deepEqual(eds.resources.map((r) => unpackAny(r).clusterName), ['echo-v1', 'echo-v2'], 'first response: everything subscribed');
  ads.send({ typeUrl: TypeUrl.endpoint, resourceNames: ['echo-v1', 'echo-v2'], versionInfo: eds.versionInfo, responseNonce: eds.nonce });

  // echo-v2 moves: only its assignment is sent.
  const moved = { ...base, endpoints: [loadAssignment('echo-v1', [9001]), loadAssignment('echo-v2', [9003])] };
  cache.setSnapshot('proxy-1', build(moved, 'rev-2'));
  const eds2 = await ads.next();
  assert.equal(eds2.typeUrl, TypeUrl.endpoint);
  assert.deepEqual(eds2.resources.map((r) => unpackAny(r).clusterName), ['echo-v2']);
  assert.notEqual(eds2.versionInfo, eds.versionInfo);
  ads.send({ typeUrl: TypeUrl.endpoint, resourceNames: ['echo-v1', 'echo-v2'], versionInfo: eds2.versionInfo, responseNonce: eds2.nonce });

  // A cluster change: the named CDS subscription gets the complete set (leaving one out would delete it).
  const changed = { ...moved, clusters: [{ ...edsCluster('echo-v1'), connectTimeout: '2s' }, edsCluster('echo-v2')] };
  cache.setSnapshot('proxy-1', build(changed, 'rev-3'));
  const cds2 = await ads.next();
  assert.equal(cds2.typeUrl, TypeUrl.cluster);
  assert.deepEqual(cds2.resources.map((r) => unpackAny(r).name), ['echo-v1', 'echo-v2']);
});

test('pushes wait for budget; a proxy that stops reading is not waited for past the stall time, nor once it is gone', async (t) => {
  // A budget of one byte: each push waits for the previous one to be taken by its socket.
  const { cache, server, open, port } = await start(t, { pushBudgetBytes: 1, pushStallMs: 1500 });
  // Bigger than a stream's HTTP/2 window, so a reader that stopped cannot take it.
  const big = (n: number): Snapshot =>
    build({ clusters: [edsCluster('c')], endpoints: [loadAssignment('c', Array.from({ length: 6000 }, (_v, i) => 1000 + i + n))] }, String(n));
  cache.setDefaultSnapshot(big(0));
  const stalled = openStalledAds(port, { typeUrl: TypeUrl.endpoint, resourceNames: ['c'], node: { ...node, id: 'stalled' } });
  t.after(stalled);
  await waitFor(() => server.pushQueue().inflightBytes > 0);
  const readers = Array.from({ length: 8 }, () => open({ ownConnection: true }));
  for (const [i, r] of readers.entries()) r.send({ typeUrl: TypeUrl.endpoint, resourceNames: ['c'], node: { ...node, id: `reader-${i}` } });
  // The readers wait behind the stalled stream's first push until it has
  // been stalled for pushStallMs; then each gets its answer, one at a time.
  await waitFor(() => server.pushQueue().waitingStreams === readers.length, 1000);
  for (const r of readers) await r.next(3000);
  assert.equal(server.pushQueue().waitingStreams, 0);
  assert.equal(server.pushQueue().inflightBytes, 0, 'the stalled write no longer counts');

  // A stalled proxy that goes away while holding the budget: its writes stop counting at once.
  const slow = await start(t, { pushBudgetBytes: 1, pushStallMs: 60_000 });
  slow.cache.setDefaultSnapshot(big(0));
  const gone = openStalledAds(slow.port, { typeUrl: TypeUrl.endpoint, resourceNames: ['c'], node: { ...node, id: 'gone' } });
  await waitFor(() => slow.server.pushQueue().inflightBytes > 0);
  const reader = slow.open({ ownConnection: true });
  reader.send({ typeUrl: TypeUrl.endpoint, resourceNames: ['c'], node: { ...node, id: 'reader' } });
  await waitFor(() => slow.server.pushQueue().waitingStreams === 1, 1000); // the reader waits
  gone();
  assert.equal((await reader.next(3000)).versionInfo, big(0).types.get(TypeUrl.endpoint)!.version);
  await waitFor(() => slow.server.pushQueue().inflightBytes === 0);
});
