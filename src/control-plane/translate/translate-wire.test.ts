// translate()'s output must survive the whole path to a proxy: strict packing
// into protobuf Anys, the snapshot consistency check, decoding on the proxy
// side, and the proxy's own config parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { translate } from './translate.ts';
import type { MeshState, ProxyNode } from './model.ts';
import { createSnapshot, checkConsistency, snapshotResources } from '../../xds/snapshot.ts';
import { TypeUrl } from '../../xds/protos.ts';
import { unpackAny } from '../../xds/codec.ts';
import { buildProxyConfig } from '../../proxy/config/envoy.ts';

const state: MeshState = {
  services: [
    { metadata: { name: 'reviews' }, spec: { selector: { app: 'reviews' }, ports: [{ port: 9080, protocol: 'http' }] } },
    { metadata: { name: 'reviews-v2' }, spec: { selector: { app: 'reviews', version: 'v2' }, ports: [{ port: 9080 }] } },
    { metadata: { name: 'ratings' }, spec: { selector: { app: 'ratings' }, ports: [{ port: 50051, protocol: 'grpc' }] } },
    { metadata: { name: 'db' }, spec: { selector: { app: 'db' }, ports: [{ port: 5432, protocol: 'tcp' }] } },
  ],
  httpRoutes: [{
    metadata: { name: 'reviews' },
    spec: {
      parentRefs: [{ name: 'reviews', port: 9080 }],
      rules: [
        { matches: [{ path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'x-user-group', value: 'beta' }], method: 'GET' }],
          filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-a', value: '1' }] } },
            { type: 'RequestMirror', requestMirror: { backendRef: { name: 'reviews-v2', port: 9080 }, percent: 10 } }],
          backendRefs: [{ name: 'reviews', port: 9080, weight: 50 }, { name: 'reviews-v2', port: 9080, weight: 50 }], timeouts: { request: '2s', backendRequest: '500ms' } },
        { matches: [{ path: { type: 'Exact', value: '/old' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { hostname: 'x', statusCode: 301 } }] },
        { matches: [{ path: { type: 'RegularExpression', value: '/r/[0-9]+' } }], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath', replaceFullPath: '/r' } } }], backendRefs: [{ name: 'reviews', port: 9080 }] },
      ],
    },
  }],
  grpcRoutes: [{ metadata: { name: 'ratings' }, spec: { parentRefs: [{ name: 'ratings' }], rules: [{ matches: [{ method: { service: 'pkg.Ratings', method: 'Get' } }], backendRefs: [{ name: 'ratings', port: 50051 }] }] } }],
  tcpRoutes: [],
  workloads: [
    { name: 'reviews-1', namespace: 'default', address: '127.0.0.1', ports: [{ port: 9080, proxyPort: 15100 }], labels: { app: 'reviews', version: 'v1' }, locality: { region: 'r', zone: 'z' } },
    { name: 'ratings-1', namespace: 'default', address: '127.0.0.2', ports: [{ port: 50051, protocol: 'grpc' }], labels: { app: 'ratings' } },
  ],
  vips: new Map(),
};

for (const node of [
  { id: 'sidecar', kind: 'sidecar', namespace: 'default', workload: 'reviews-1', upstreams: [{ service: 'db', port: 5432, localPort: 25432 }, { service: 'ratings', port: 50051, localPort: 25051 }] },
  { id: 'grpc', kind: 'proxyless', namespace: 'default' },
] as ProxyNode[]) {
  test(`translate output for a ${node.kind} node packs strictly, is consistent, and parses on the proxy`, () => {
    const out = translate(state, node);
    // The proxyless view warns about the route fields gRPC clients ignore (http-routes.ts), nothing else.
    if (node.kind === 'proxyless') assert.ok(out.warnings.length > 0 && out.warnings.every((w) => w.message.startsWith('proxyless gRPC clients')), JSON.stringify(out.warnings));
    else assert.deepEqual(out.warnings, []);
    const snap = createSnapshot(out);
    assert.ok(snap.ok, JSON.stringify(!snap.ok && snap.errors));
    assert.deepEqual(checkConsistency(snap.snapshot), []);
    if (node.kind === 'proxyless') return; // API listeners are for gRPC clients, not Trellis proxies
    const decode = (url: string): unknown[] => [...snapshotResources(snap.snapshot, url as never).values()].map((r) => unpackAny(r.any));
    const built = buildProxyConfig({
      version: 'v1',
      listeners: decode(TypeUrl.listener),
      routeConfigs: decode(TypeUrl.route),
      clusters: decode(TypeUrl.cluster),
      endpoints: decode(TypeUrl.endpoint),
    }, { references: 'error' });
    assert.ok(built.ok, JSON.stringify(!built.ok && built.errors));
    const cfg = built.config;
    assert.ok(cfg.clusters.has('reviews.default.svc:9080'));
    assert.equal(cfg.clusters.get('ratings.default.svc:50051')?.protocol, 'http2');
    const eps = cfg.endpoints.get('reviews.default.svc:9080');
    assert.equal(eps?.[0]?.endpoints[0]?.port, 15100);
    assert.equal(cfg.listeners.find((l) => l.name === 'inbound|9080')?.direction, 'inbound');
  });
}
