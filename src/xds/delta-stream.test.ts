// Incremental xDS (DeltaAggregatedResources) on the same server and snapshots
// as state of the world, over real gRPC streams on loopback.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { SnapshotCache } from './cache.ts';
import { createSnapshot } from './snapshot.ts';
import type { Snapshot, SnapshotInput } from './snapshot.ts';
import { createXdsServer } from './server.ts';
import { TypeUrl } from './protos.ts';
import { unpackAny } from './codec.ts';
import { edsCluster, loadAssignment } from '../../test/util/xds-fixtures.ts';
import { openRawAds, openRawDeltaAds } from '../../test/util/xds-raw-stream.ts';

const node = { id: 'proxy-d', cluster: 'client' };

function build(input: SnapshotInput, label: string): Snapshot {
  const r = createSnapshot(input, label);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.snapshot;
}

const clusters = (names: readonly string[], timeout: Record<string, string> = {}): SnapshotInput => ({
  clusters: names.map((n) => ({ ...edsCluster(n), connectTimeout: timeout[n] ?? '1s' })),
  endpoints: names.map((n) => loadAssignment(n, [9000])),
});

async function start(t: TestContext) {
  const cache = new SnapshotCache();
  const server = createXdsServer({ source: cache, controlPlaneId: 'test' });
  const port = await server.listen('127.0.0.1', 0);
  t.after(() => server.close());
  return { cache, server, port };
}

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const names = (res: { resources: readonly { name: string }[] }): string[] => res.resources.map((r) => r.name).sort();

test('delta and state-of-the-world clients are served side by side from one snapshot', async (t) => {
  const { cache, server, port } = await start(t);
  cache.setDefaultSnapshot(build(clusters(['a', 'b']), 'rev-1'));
  const sotw = openRawAds(port);
  t.after(() => sotw.close());
  const delta = openRawDeltaAds(port);
  t.after(() => delta.close());
  sotw.send({ typeUrl: TypeUrl.cluster, node: { id: 'sotw-1' } });
  delta.send({ typeUrl: TypeUrl.cluster, node: { id: 'delta-1' } });

  const s1 = await sotw.next();
  const d1 = await delta.next();
  assert.deepEqual(s1.resources.map((r) => unpackAny(r).name).sort(), ['a', 'b']);
  assert.deepEqual(names(d1), ['a', 'b']);
  assert.deepEqual(d1.removed, []);
  assert.equal(d1.systemVersionInfo, s1.versionInfo, 'one snapshot, one version');
  // Each delta resource carries its own version: its content hash.
  assert.ok(d1.resources.every((r) => /^[0-9a-f]{16}$/.test(r.version)));
  sotw.send({ typeUrl: TypeUrl.cluster, responseNonce: s1.nonce, versionInfo: s1.versionInfo });
  delta.send({ typeUrl: TypeUrl.cluster, responseNonce: d1.nonce });
  await waitFor(() => server.status().length === 2 && server.status().every((s) => s.status === 'synced'));

  // A cluster added: state of the world resends the whole set, delta only the new one.
  cache.setDefaultSnapshot(build(clusters(['a', 'b', 'c']), 'rev-2'));
  const s2 = await sotw.next();
  const d2 = await delta.next();
  assert.deepEqual(s2.resources.map((r) => unpackAny(r).name).sort(), ['a', 'b', 'c']);
  assert.deepEqual(names(d2), ['c']);
  assert.equal(unpackAny(d2.resources[0]!.any).name, 'c');
  sotw.send({ typeUrl: TypeUrl.cluster, responseNonce: s2.nonce, versionInfo: s2.versionInfo });
  delta.send({ typeUrl: TypeUrl.cluster, responseNonce: d2.nonce });

  // A cluster removed: delta says so in removed_resources, with no resources.
  cache.setDefaultSnapshot(build(clusters(['a', 'c']), 'rev-3'));
  const s3 = await sotw.next();
  const d3 = await delta.next();
  assert.deepEqual(s3.resources.map((r) => unpackAny(r).name).sort(), ['a', 'c']);
  assert.deepEqual(names(d3), []);
  assert.deepEqual(d3.removed, ['b']);
  sotw.send({ typeUrl: TypeUrl.cluster, responseNonce: s3.nonce, versionInfo: s3.versionInfo });
  delta.send({ typeUrl: TypeUrl.cluster, responseNonce: d3.nonce });
  await waitFor(() => server.status().every((s) => s.status === 'synced' && s.perType.Cluster?.ackedVersion === d3.systemVersionInfo));
  assert.deepEqual(server.status().map((s) => s.nodeId), ['delta-1', 'sotw-1']);
});

test('a reconnecting delta client gets only what changed while it was away', async (t) => {
  const { cache, port } = await start(t);
  cache.setSnapshot('proxy-d', build(clusters(['keep', 'change', 'drop']), 'rev-1'));
  const first = openRawDeltaAds(port);
  first.send({ typeUrl: TypeUrl.cluster, node });
  const r1 = await first.next();
  assert.deepEqual(names(r1), ['change', 'drop', 'keep']);
  first.send({ typeUrl: TypeUrl.cluster, responseNonce: r1.nonce });
  const held = new Map(r1.resources.map((r) => [r.name, r.version]));
  first.close();

  // While away: one changed, one removed, one added, one untouched.
  cache.setSnapshot('proxy-d', build(clusters(['keep', 'change', 'new'], { change: '3s' }), 'rev-2'));
  const again = openRawDeltaAds(port);
  t.after(() => again.close());
  again.send({ typeUrl: TypeUrl.cluster, node, initialVersions: held });
  const r2 = await again.next();
  assert.deepEqual(names(r2), ['change', 'new'], 'not "keep": the client has it');
  assert.equal(unpackAny(r2.resources.find((r) => r.name === 'change')!.any).connectTimeout, '3s');
  assert.deepEqual(r2.removed, ['drop']);
  again.send({ typeUrl: TypeUrl.cluster, responseNonce: r2.nonce });

  // Resumed with nothing changed: one empty answer (the client is current), then quiet.
  const third = openRawDeltaAds(port);
  t.after(() => third.close());
  third.send({ typeUrl: TypeUrl.cluster, node, initialVersions: new Map([...r2.resources.map((r) => [r.name, r.version] as const), ['keep', held.get('keep')!]]) });
  const r3 = await third.next();
  assert.deepEqual(names(r3), []);
  assert.deepEqual(r3.removed, []);
  assert.equal(await third.quiet(300), true);
});

test('named delta subscriptions: subscribe, unsubscribe, and a name that does not exist comes back removed', async (t) => {
  const { cache, port } = await start(t);
  cache.setSnapshot('proxy-d', build(clusters(['a', 'b', 'c']), 'rev-1'));
  const d = openRawDeltaAds(port);
  t.after(() => d.close());
  d.send({ typeUrl: TypeUrl.endpoint, node, subscribe: ['a', 'nope'] });
  const r1 = await d.next();
  assert.deepEqual(names(r1), ['a']);
  assert.equal(unpackAny(r1.resources[0]!.any).clusterName, 'a');
  assert.deepEqual(r1.removed, ['nope'], 'the client stops waiting for a name that does not exist');
  d.send({ typeUrl: TypeUrl.endpoint, responseNonce: r1.nonce });

  d.send({ typeUrl: TypeUrl.endpoint, subscribe: ['b'], unsubscribe: ['a'] });
  const r2 = await d.next();
  assert.deepEqual(names(r2), ['b']);
  assert.deepEqual(r2.removed, []);
  d.send({ typeUrl: TypeUrl.endpoint, responseNonce: r2.nonce });

  // A change to an unsubscribed resource is not sent; "nope" appearing is.
  const next = clusters(['a', 'b', 'c', 'nope']);
  cache.setSnapshot('proxy-d', build({ ...next, endpoints: [loadAssignment('a', [9100]), loadAssignment('b', [9000]), loadAssignment('c', [9000]), loadAssignment('nope', [9000])] }, 'rev-2'));
  const r3 = await d.next();
  assert.deepEqual(names(r3), ['nope']);
  assert.equal(await d.quiet(300), true);
});

test('a NACKed delta response keeps the acked version and shows as rejected; the next change is sent', async (t) => {
  const { cache, server, port } = await start(t);
  cache.setSnapshot('proxy-d', build(clusters(['a']), 'rev-1'));
  const d = openRawDeltaAds(port);
  t.after(() => d.close());
  d.send({ typeUrl: TypeUrl.cluster, node });
  const r1 = await d.next();
  d.send({ typeUrl: TypeUrl.cluster, responseNonce: r1.nonce });
  await waitFor(() => server.status()[0]?.status === 'synced');

  cache.setSnapshot('proxy-d', build(clusters(['a', 'b']), 'rev-2'));
  const r2 = await d.next();
  d.send({ typeUrl: TypeUrl.cluster, responseNonce: r2.nonce, error: 'cluster b: no' });
  await waitFor(() => server.status()[0]?.status === 'rejected');
  const st = server.status()[0]!.perType.Cluster!;
  assert.equal(st.ackedVersion, r1.systemVersionInfo);
  assert.equal(st.sentVersion, r2.systemVersionInfo);
  assert.equal(st.nacked?.message, 'cluster b: no');
  assert.equal(await d.quiet(300), true, 'the NACKed content is not resent');

  cache.setSnapshot('proxy-d', build(clusters(['a', 'c']), 'rev-3'));
  const r3 = await d.next();
  assert.deepEqual(names(r3), ['c']);
  assert.deepEqual(r3.removed, ['b']);
  d.send({ typeUrl: TypeUrl.cluster, responseNonce: r3.nonce });
  await waitFor(() => server.status()[0]?.status === 'synced');
});

test('a first delta request without node.id ends the stream', async (t) => {
  const { port } = await start(t);
  const d = openRawDeltaAds(port);
  t.after(() => d.close());
  d.send({ typeUrl: TypeUrl.cluster });
  const status = await d.ended;
  assert.equal(status.code, 3); // INVALID_ARGUMENT
  assert.match(status.details, /must carry node\.id/);
});
