import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConsistency, createSnapshot } from './snapshot.ts';
import type { Snapshot, SnapshotInput } from './snapshot.ts';
import { SnapshotCache } from './cache.ts';
import type { XdsNode } from './cache.ts';
import { TypeUrl } from './protos.ts';
import { edsCluster, loadAssignment, serviceSnapshotInput } from '../../test/util/xds-fixtures.ts';

const input = serviceSnapshotInput('echo', [
  { cluster: 'echo-v1', weight: 80, ports: [9001] },
  { cluster: 'echo-v2', weight: 20, ports: [9002] },
]);

function build(i: SnapshotInput, label = 'v'): Snapshot {
  const r = createSnapshot(i, label);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.snapshot;
}

test('a complete snapshot is consistent', () => {
  const s = build(input);
  assert.deepEqual(checkConsistency(s), []);
  assert.deepEqual([...s.types.get(TypeUrl.cluster)!.resources.keys()], ['echo-v1', 'echo-v2']);
  assert.equal(s.types.get(TypeUrl.endpoint)!.resources.get('echo-v2')!.any.type_url, TypeUrl.endpoint);
});

test('dangling references are reported with paths', () => {
  const s = build({
    listeners: input.listeners,
    routes: [{ name: 'other' }],
    clusters: [edsCluster('echo-v1'), { ...edsCluster('named'), edsClusterConfig: { edsConfig: { ads: {} }, serviceName: 'svc' } }],
    endpoints: [loadAssignment('named', [1])],
  });
  const errs = checkConsistency(s);
  assert.deepEqual(
    errs.map((e) => [e.code, e.path]),
    [
      ['XDS_DANGLING_REFERENCE', 'listeners[echo].apiListener.apiListener.rds.routeConfigName'],
      ['XDS_DANGLING_REFERENCE', 'clusters[echo-v1]'],
      ['XDS_DANGLING_REFERENCE', 'clusters[named]'],
    ],
  );
  const s2 = build({ routes: input.routes, clusters: [edsCluster('echo-v1')], endpoints: [loadAssignment('echo-v1', [1])] });
  const e2 = checkConsistency(s2);
  assert.equal(e2.length, 1);
  assert.equal(e2[0]!.path, 'routes[echo-route].virtualHosts[0].routes[0].route.weightedClusters.clusters[1].name');
  assert.match(e2[0]!.message, /echo-v2/);
  // tcp_proxy references and SDS secret names
  const s3 = build({
    listeners: [
      {
        name: 'tcp',
        address: { socketAddress: { address: '127.0.0.1', portValue: 1 } },
        filterChains: [
          {
            filters: [{ name: 'tcp', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', statPrefix: 't', cluster: 'db' } }],
            transportSocket: {
              name: 'tls',
              typedConfig: {
                '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
                commonTlsContext: { tlsCertificateSdsSecretConfigs: [{ name: 'cert', sdsConfig: { ads: {} } }] },
              },
            },
          },
        ],
      },
    ],
  });
  const s4 = build({ clusters: [edsCluster('w')], endpoints: [{ clusterName: 'w', endpoints: [{ lbEndpoints: [] }] }] });
  assert.deepEqual(checkConsistency(s4).map((e) => [e.code, e.path]), [['XDS_MISSING_LOCALITY_WEIGHT', 'endpoints[w].endpoints[0].loadBalancingWeight']]);
  assert.deepEqual(
    checkConsistency(s3).map((e) => e.message),
    ['cluster "db" is not in the snapshot', 'secret "cert" is not in the snapshot'],
  );
  assert.match(checkConsistency(s3)[1]!.path, /^listeners\[[^\]]+\]\.filterChains\[0\]\..*\.typedConfig\.commonTlsContext\.tlsCertificateSdsSecretConfigs\[0\]\.name$/);
});

test('invalid, unnamed and duplicate resources are rejected at creation', () => {
  const r = createSnapshot({
    clusters: [edsCluster('a'), { ...edsCluster('a') }, { name: 'b', conectTimeout: '1s' }, { type: 'EDS' }],
  });
  assert.equal(r.ok, false);
  assert.ok(!r.ok);
  assert.deepEqual(
    r.errors.map((e) => [e.code, e.path]),
    [
      ['XDS_DUPLICATE_NAME', 'clusters[1].name'],
      ['XDS_INVALID_RESOURCE', 'clusters[2].conectTimeout'],
      ['XDS_MISSING_NAME', 'clusters[3].name'],
    ],
  );
});

test('per-type versions change only with that type\'s content', () => {
  const a = build(input, 'a');
  const b = build({ ...input, endpoints: [loadAssignment('echo-v1', [9001]), loadAssignment('echo-v2', [9003])] }, 'b');
  const c = build(input, 'c');
  for (const t of [TypeUrl.listener, TypeUrl.route, TypeUrl.cluster, TypeUrl.secret]) assert.equal(a.types.get(t)!.version, b.types.get(t)!.version, t);
  assert.notEqual(a.types.get(TypeUrl.endpoint)!.version, b.types.get(TypeUrl.endpoint)!.version);
  for (const t of Object.values(TypeUrl)) assert.equal(a.types.get(t)!.version, c.types.get(t)!.version);
  // order of resources does not matter
  const d = build({ ...input, clusters: [...(input.clusters ?? [])].reverse() });
  assert.equal(a.types.get(TypeUrl.cluster)!.version, d.types.get(TypeUrl.cluster)!.version);
});

test('the cache resolves node, group, then default, refuses inconsistent snapshots, and signals changes', () => {
  const cache = new SnapshotCache();
  let changes = 0;
  const off = cache.onChange(() => changes++);
  const node = (id: string, cluster: string): XdsNode => ({ id, cluster, locality: { region: '', zone: '', subZone: '' }, metadata: {}, userAgentName: '', userAgentVersion: '' });
  const s1 = build(input, '1');
  const s2 = build(input, '2');
  const s3 = build(input, '3');
  assert.equal(cache.snapshotFor(node('a', 'g')), undefined);
  assert.deepEqual(cache.setDefaultSnapshot(s1), { ok: true });
  assert.deepEqual(cache.setGroupSnapshot('g', s2), { ok: true });
  assert.deepEqual(cache.setSnapshot('a', s3), { ok: true });
  assert.equal(cache.snapshotFor(node('a', 'g'))?.label, '3');
  assert.equal(cache.snapshotFor(node('b', 'g'))?.label, '2');
  assert.equal(cache.snapshotFor(node('c', 'h'))?.label, '1');
  const broken = build({ clusters: [edsCluster('x')] });
  const r = cache.setSnapshot('a', broken);
  assert.equal(r.ok, false);
  assert.equal(cache.snapshotFor(node('a', 'g'))?.label, '3');
  assert.deepEqual(cache.setSnapshot('a', broken, { skipConsistencyCheck: true }), { ok: true });
  cache.clearSnapshot('a');
  assert.equal(cache.snapshotFor(node('a', 'g'))?.label, '2');
  assert.equal(changes, 5);
  off();
  cache.clearGroupSnapshot('g');
  assert.equal(changes, 5);
});
