import { test } from 'node:test';
import assert from 'node:assert/strict';
import { translate } from './translate.ts';
import type { MeshState, ProxyNode, WorkloadInstance } from './model.ts';
import { tlsModeFor, TRUST_BUNDLE_SECRET, type MeshTlsInput } from './mtls.ts';
import { createSnapshot, checkConsistency, snapshotResources } from '../../xds/snapshot.ts';
import { TypeUrl } from '../../xds/protos.ts';
import { unpackAny } from '../../xds/codec.ts';
import { buildProxyConfig } from '../../proxy/config/envoy.ts';
import { readUpstreamTls, transportSocketFor } from '../../proxy/tls/upstream-tls.ts';

const w = (name: string, labels: Record<string, string>, sa = name, proxyPort: number | null = 15100): WorkloadInstance => ({
  name, namespace: 'shop', serviceAccount: sa, address: '127.0.0.1', labels, ports: [{ port: 9080, ...(proxyPort === null ? {} : { proxyPort }) }, { port: 9090, proxyPort: 15101 }, { port: 5432, protocol: 'tcp', proxyPort: 15102 }],
});

test('mode precedence: selector > namespace > mesh root > default PERMISSIVE, port level first', () => {
  const reviews = w('reviews-1', { app: 'reviews' });
  const input = (policies: MeshTlsInput['policies']): MeshTlsInput => ({ trustDomain: 'td', policies });
  assert.equal(tlsModeFor(input([]), reviews, 9080), 'PERMISSIVE');
  const mesh = { metadata: { name: 'mesh', namespace: 'trellis-system' }, spec: { mode: 'STRICT' as const } };
  assert.equal(tlsModeFor(input([mesh]), reviews, 9080), 'STRICT');
  const ns = { metadata: { name: 'ns', namespace: 'shop' }, spec: { mode: 'PERMISSIVE' as const } };
  assert.equal(tlsModeFor(input([mesh, ns]), reviews, 9080), 'PERMISSIVE');
  const sel = { metadata: { name: 'sel', namespace: 'shop' }, spec: { selector: { app: 'reviews' }, portLevel: [{ port: 9090, mode: 'DISABLE' as const }] } };
  assert.equal(tlsModeFor(input([mesh, ns, sel]), reviews, 9090), 'DISABLE');
  assert.equal(tlsModeFor(input([mesh, ns, sel]), reviews, 9080), 'PERMISSIVE', 'a selector policy without mode inherits');
  const other = { metadata: { name: 'o', namespace: 'other' }, spec: { mode: 'DISABLE' as const } };
  assert.equal(tlsModeFor(input([other]), reviews, 9080), 'PERMISSIVE', 'other namespaces do not apply');
});

const state: MeshState = {
  services: [
    { metadata: { name: 'reviews', namespace: 'shop' }, spec: { selector: { app: 'reviews' }, ports: [{ port: 9080, protocol: 'http' }, { name: 'grpc', port: 9090, protocol: 'grpc' }] } },
    { metadata: { name: 'legacy', namespace: 'shop' }, spec: { selector: { app: 'legacy' }, ports: [{ port: 9080 }] } },
    { metadata: { name: 'db', namespace: 'shop' }, spec: { selector: { app: 'reviews' }, ports: [{ port: 5432, protocol: 'tcp' }] } },
  ],
  httpRoutes: [], grpcRoutes: [], tcpRoutes: [],
  workloads: [w('reviews-1', { app: 'reviews' }), w('reviews-2', { app: 'reviews' }, 'reviews-v2'), w('legacy-1', { app: 'legacy' }, 'legacy', null)],
  vips: new Map(),
  meshTls: {
    trustDomain: 'mesh.test',
    trustBundlePem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
    policies: [{ metadata: { name: 'strict', namespace: 'shop' }, spec: { mode: 'STRICT', portLevel: [{ port: 9090, mode: 'PERMISSIVE' }] } }],
  },
};

test('translate with mTLS: clusters originate to meshed endpoints, inbound chains follow the mode, the bundle Secret is included, all of it parses on the proxy', () => {
  const node: ProxyNode = { id: 'r1', kind: 'sidecar', namespace: 'shop', workload: 'reviews-1' };
  const out = translate(state, node);
  assert.deepEqual(out.warnings, []);
  assert.deepEqual(out.secrets?.map((s) => (s as { name: string }).name), [TRUST_BUNDLE_SECRET]);
  const snap = createSnapshot(out);
  assert.ok(snap.ok, JSON.stringify(!snap.ok && snap.errors));
  assert.deepEqual(checkConsistency(snap.snapshot), []);
  const decode = (url: string): unknown[] => [...snapshotResources(snap.snapshot, url as never).values()].map((r) => unpackAny(r.any));
  assert.equal(decode(TypeUrl.secret).length, 1);
  const built = buildProxyConfig({ version: 'v1', listeners: decode(TypeUrl.listener), routeConfigs: decode(TypeUrl.route), clusters: decode(TypeUrl.cluster), endpoints: decode(TypeUrl.endpoint) }, { references: 'error' });
  assert.ok(built.ok, JSON.stringify(!built.ok && built.errors));
  const cfg = built.config;

  const reviews = cfg.clusters.get('reviews.shop.svc:9080')!;
  const ep = cfg.endpoints.get('reviews.shop.svc:9080')![0]!.endpoints[0]!;
  assert.deepEqual(readUpstreamTls(transportSocketFor(reviews, ep)), {
    sans: ['spiffe://mesh.test/ns/shop/sa/reviews-1', 'spiffe://mesh.test/ns/shop/sa/reviews-v2'], alpn: ['http/1.1'],
  });
  assert.equal(readUpstreamTls(transportSocketFor(reviews, { ...ep, labels: {} })), undefined, 'unmeshed endpoints stay plaintext');
  const grpc = cfg.clusters.get('reviews.shop.svc:9090')!;
  assert.deepEqual(readUpstreamTls(transportSocketFor(grpc, cfg.endpoints.get('reviews.shop.svc:9090')![0]!.endpoints[0]!))?.alpn, ['h2']);
  assert.equal(cfg.clusters.get('legacy.shop.svc:9080')!.extensions?.['transportSocketMatches'], undefined, 'no meshed workload: no TLS');

  const chains = (name: string) => cfg.listeners.find((l) => l.name === name)!.filterChains.map((c) => [c.match.transportProtocol, c.extensions?.['transportSocket'] !== undefined]);
  assert.deepEqual(chains('inbound|9080'), [['tls', true], ['raw_buffer', false]], 'STRICT: TLS, and plaintext HTTP told why it is refused');
  // The plaintext chain answers every request with 403 MTLS_REQUIRED and the reason.
  const strictPlain = cfg.listeners.find((l) => l.name === 'inbound|9080')!.filterChains[1]!;
  assert.equal(strictPlain.name, 'inbound|9080-mtls-required');
  const route = cfg.routeConfigs.get(strictPlain.http!.routeConfigName)!.virtualHosts[0]!.routes[0]!;
  assert.equal(route.action.kind, 'direct_response');
  assert.equal(route.action.kind === 'direct_response' ? route.action.status : 0, 403);
  assert.match(route.action.kind === 'direct_response' ? route.action.body ?? '' : '', /^mutual TLS required: port 9080 of shop\/reviews-1 accepts only mutual TLS \(MeshTLS mode STRICT\) and this request came in plaintext: the caller's sidecar has no mesh identity; start it with a join token/);
  assert.deepEqual(route.responseHeaders?.add.map((h) => [h.name, h.value.slice(0, 20)]), [['x-trellis-proxy-error', 'MTLS_REQUIRED'], ['x-trellis-proxy-error-reason', 'port 9080 of shop/re']]);
  assert.deepEqual(chains('inbound|9090'), [['tls', true], ['raw_buffer', false]], 'PERMISSIVE by port level');
  assert.deepEqual(chains('inbound|5432'), [['tls', true]], 'TCP ports too');
  const db = cfg.clusters.get('db.shop.svc:5432')!;
  assert.deepEqual(readUpstreamTls(transportSocketFor(db, cfg.endpoints.get('db.shop.svc:5432')![0]!.endpoints[0]!))?.alpn, []);
});

test('DISABLE: plaintext inbound chain and callers do not originate TLS', () => {
  const s: MeshState = { ...state, meshTls: { ...state.meshTls!, policies: [{ metadata: { name: 'off', namespace: 'shop' }, spec: { mode: 'DISABLE' } }] } };
  const out = translate(s, { id: 'r1', kind: 'sidecar', namespace: 'shop', workload: 'reviews-1' });
  const inbound = out.listeners.find((l) => (l as { name: string }).name === 'inbound|9080') as { filterChains: { filterChainMatch?: { transportProtocol?: string } }[] };
  assert.deepEqual(inbound.filterChains.map((c) => c.filterChainMatch?.transportProtocol), ['raw_buffer']);
  const tcpIn = out.listeners.find((l) => (l as { name: string }).name === 'inbound|5432') as { filterChains: { filterChainMatch?: object }[] };
  assert.deepEqual(tcpIn.filterChains.map((c) => c.filterChainMatch), [undefined], 'DISABLE TCP: unmatched chain, no detection wait');
  const c = out.clusters.find((x) => (x as { name: string }).name === 'reviews.shop.svc:9080') as Record<string, unknown>;
  assert.equal(c['transportSocketMatches'], undefined);
  const plain = translate({ ...state, meshTls: undefined }, { id: 'r1', kind: 'sidecar', namespace: 'shop', workload: 'reviews-1' });
  assert.equal(plain.secrets, undefined, 'no mTLS input: output unchanged');
});

test('transparent capture: pods marked meshed get TLS from callers, their one inbound listener splits each port chain by mode', () => {
  // Two pods: no proxy ports (peers dial pod:app-port), the meshed label set by the runner.
  const pod = (name: string, app: string, ip: string): WorkloadInstance => ({
    name, namespace: 'shop', serviceAccount: app, address: ip, labels: { app, 'trellis.dev/meshed': 'true' },
    ports: [{ port: 9080 }, { port: 5432, protocol: 'tcp' }],
  });
  const s: MeshState = {
    ...state,
    workloads: [pod('reviews-p', 'reviews', '198.18.0.2'), pod('client-p', 'client', '198.18.0.3'), w('legacy-1', { app: 'legacy' }, 'legacy', null)],
    vips: new Map([['shop/db', '10.96.0.5']]),
    meshTls: { ...state.meshTls!, policies: [{ metadata: { name: 'strict', namespace: 'shop' }, spec: { mode: 'STRICT', portLevel: [{ port: 5432, mode: 'PERMISSIVE' }] } }] },
  };
  const out = translate(s, { id: 'shop/reviews-p', kind: 'sidecar', namespace: 'shop', workload: 'reviews-p', capture: 'transparent' });
  assert.deepEqual(out.warnings, []);
  const snap = createSnapshot(out);
  assert.ok(snap.ok, JSON.stringify(!snap.ok && snap.errors));
  const decode = (url: string): unknown[] => [...snapshotResources(snap.snapshot, url as never).values()].map((r) => unpackAny(r.any));
  const built = buildProxyConfig({ version: 'v1', listeners: decode(TypeUrl.listener), routeConfigs: decode(TypeUrl.route), clusters: decode(TypeUrl.cluster), endpoints: decode(TypeUrl.endpoint) }, { references: 'error' });
  assert.ok(built.ok, JSON.stringify(!built.ok && built.errors));
  const cfg = built.config;

  const ep = cfg.endpoints.get('reviews.shop.svc:9080')![0]!.endpoints[0]!;
  assert.equal(ep.port, 9080, 'the app port itself');
  assert.deepEqual(readUpstreamTls(transportSocketFor(cfg.clusters.get('reviews.shop.svc:9080')!, ep))?.sans, ['spiffe://mesh.test/ns/shop/sa/reviews']);
  assert.equal(readUpstreamTls(transportSocketFor(cfg.clusters.get('legacy.shop.svc:9080')!, cfg.endpoints.get('legacy.shop.svc:9080')![0]!.endpoints[0]!)), undefined, 'unmeshed stays plaintext');

  const inbound = cfg.listeners.find((l) => l.name === 'inbound')!;
  assert.deepEqual(
    inbound.filterChains.map((c) => [c.name, c.match.destinationPort, c.match.transportProtocol, c.extensions?.['transportSocket'] !== undefined]),
    [['inbound|9080-mtls', 9080, 'tls', true], ['inbound|9080-mtls-required', 9080, 'raw_buffer', false], ['inbound|5432-mtls', 5432, 'tls', true], ['inbound|5432-plaintext', 5432, 'raw_buffer', false]],
  );
});

test('a meshed workload labelled tls-mode none (its sidecar has no identity) is dialled in plaintext under PERMISSIVE, left out of the SANs, and gets nothing under STRICT', () => {
  const noId = { ...w('reviews-2', { app: 'reviews', 'trellis.dev/tls-mode': 'none' }, 'reviews-v2') };
  const permissive = { ...state.meshTls!, policies: [] };
  const strictState: MeshState = { ...state, workloads: [w('reviews-1', { app: 'reviews', 'trellis.dev/tls-mode': 'mtls' }), noId, w('intruder', { app: 'reviews' }, 'intruder', null)] };
  const strictOut = translate(strictState, { id: 'c', kind: 'sidecar', namespace: 'shop', workload: 'reviews-1' });
  const strictEds = strictOut.endpoints.find((e) => (e as { clusterName: string }).clusterName === 'reviews.shop.svc:9080') as { endpoints: { lbEndpoints: { metadata: { filterMetadata: { trellis: Record<string, string> } } }[] }[] };
  assert.deepEqual(strictEds.endpoints.flatMap((l) => l.lbEndpoints.map((e) => e.metadata.filterMetadata.trellis['trellis.dev/workload'])), ['reviews-1'], 'STRICT: neither the sidecar without identity nor an unmeshed intruder gets plaintext');
  const s: MeshState = { ...state, meshTls: permissive, workloads: [w('reviews-1', { app: 'reviews', 'trellis.dev/tls-mode': 'mtls' }), noId, w('legacy-1', { app: 'legacy' }, 'legacy', null)] };
  const out = translate(s, { id: 'c', kind: 'sidecar', namespace: 'shop', workload: 'legacy-1' });
  const snap = createSnapshot(out);
  assert.ok(snap.ok);
  const decode = (url: string): unknown[] => [...snapshotResources(snap.snapshot, url as never).values()].map((r) => unpackAny(r.any));
  const built = buildProxyConfig({ version: 'v1', listeners: decode(TypeUrl.listener), routeConfigs: decode(TypeUrl.route), clusters: decode(TypeUrl.cluster), endpoints: decode(TypeUrl.endpoint) }, { references: 'error' });
  assert.ok(built.ok, JSON.stringify(!built.ok && built.errors));
  const cluster = built.config.clusters.get('reviews.shop.svc:9080')!;
  const eps = built.config.endpoints.get('reviews.shop.svc:9080')![0]!.endpoints;
  const tlsOf = (workload: string) => readUpstreamTls(transportSocketFor(cluster, eps.find((e) => e.labels?.['trellis.dev/workload'] === workload)!));
  assert.deepEqual(tlsOf('reviews-1')?.sans, ['spiffe://mesh.test/ns/shop/sa/reviews-1']);
  assert.equal(tlsOf('reviews-2'), undefined);
  // Nobody behind the port has an identity: no TLS at all.
  const none = translate({ ...s, workloads: [noId] }, { id: 'c', kind: 'sidecar', namespace: 'shop', workload: 'legacy-1' });
  const c = none.clusters.find((x) => (x as { name: string }).name === 'reviews.shop.svc:9080') as Record<string, unknown>;
  assert.equal(c['transportSocketMatches'], undefined);
});
