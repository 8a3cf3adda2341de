import { test } from 'node:test';
import assert from 'node:assert/strict';
import { translate } from './translate.ts';
import { gatewayDuration } from './http-routes.ts';
import type { HTTPRouteResource, MeshState, ProxyNode, ServiceResource, WorkloadInstance } from './model.ts';

const svc = (name: string, selector: Record<string, string>, ports: ServiceResource['spec']['ports']): ServiceResource => ({
  metadata: { name, namespace: 'default' },
  spec: { selector, ports },
});

const wl = (name: string, address: string, labels: Record<string, string>, extra: Partial<WorkloadInstance> = {}): WorkloadInstance => ({
  name,
  namespace: 'default',
  address,
  ports: [{ port: 9080, protocol: 'http', name: 'http', proxyPort: 15100 }],
  labels,
  locality: { region: 'eu', zone: 'eu-1' },
  ...extra,
});

function baseState(over: Partial<MeshState> = {}): MeshState {
  return {
    services: [
      svc('reviews', { app: 'reviews' }, [{ name: 'http', port: 9080, protocol: 'http' }]),
      svc('reviews-v1', { app: 'reviews', version: 'v1' }, [{ port: 9080, protocol: 'http' }]),
      svc('reviews-v2', { app: 'reviews', version: 'v2' }, [{ port: 9080, protocol: 'http' }]),
      svc('ratings', { app: 'ratings' }, [{ port: 50051, protocol: 'grpc' }]),
      svc('db', { app: 'db' }, [{ port: 5432, protocol: 'tcp' }]),
    ],
    httpRoutes: [],
    grpcRoutes: [],
    tcpRoutes: [],
    workloads: [
      wl('reviews-1', '10.0.0.1', { app: 'reviews', version: 'v1' }),
      wl('reviews-2', '10.0.0.2', { app: 'reviews', version: 'v2' }, { locality: { region: 'eu', zone: 'eu-2' }, healthy: false }),
      wl('ratings-1', '10.0.0.3', { app: 'ratings' }, { ports: [{ port: 50051, protocol: 'grpc' }] }),
      wl('db-1', '10.0.0.4', { app: 'db' }, { ports: [{ port: 5432, protocol: 'tcp' }] }),
    ],
    vips: new Map([['default/reviews', '240.240.0.1']]),
    ...over,
  };
}

const sidecar: ProxyNode = { id: 'default/productpage-1', kind: 'sidecar', namespace: 'default', workload: 'reviews-1' };

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

test('every service port gets an EDS cluster and a load assignment grouped by locality', () => {
  const out = translate(baseState(), sidecar);
  const names = (out.clusters as Json[]).map((c) => c.name);
  assert.ok(names.includes('reviews.default.svc:9080'));
  assert.ok(names.includes('ratings.default.svc:50051'));
  assert.ok(names.includes('db.default.svc:5432'));
  const cla = (out.endpoints as Json[]).find((e) => e.clusterName === 'reviews.default.svc:9080')!;
  assert.equal(cla.endpoints.length, 2, 'two localities');
  const eps = cla.endpoints.flatMap((l: Json) => l.lbEndpoints);
  assert.deepEqual(
    eps.map((e: Json) => [e.endpoint.address.socketAddress.address, e.endpoint.address.socketAddress.portValue, e.healthStatus]),
    [
      ['10.0.0.1', 15100, 'HEALTHY'],
      ['10.0.0.2', 15100, 'UNHEALTHY'],
    ],
    'meshed workloads are dialled on their proxy port; health from the registry',
  );
  const grpcCluster = (out.clusters as Json[]).find((c) => c.name === 'ratings.default.svc:50051')!;
  assert.ok(grpcCluster.typedExtensionProtocolOptions, 'gRPC ports get HTTP/2 upstreams');
  // Every EDS cluster has its assignment (snapshot consistency).
  for (const c of out.clusters as Json[]) if (c.type === 'EDS') assert.ok((out.endpoints as Json[]).some((e) => e.clusterName === c.name), c.name);
});

test('the outbound route table answers to every documented service name, default route to the service', () => {
  const out = translate(baseState(), sidecar);
  const rc = (out.routes as Json[]).find((r) => r.name === 'outbound')!;
  const vh = rc.virtualHosts.find((v: Json) => v.name === 'reviews.default.svc:9080');
  assert.deepEqual(vh.domains, [
    'reviews.default.svc.cluster.local:9080', 'reviews.default.svc:9080', 'reviews.default:9080', 'reviews:9080', '240.240.0.1:9080',
  ]);
  assert.deepEqual(vh.routes, [
    { name: 'default', match: { prefix: '/' }, route: { cluster: 'reviews.default.svc:9080' } },
    // HTTPS_PROXY / grpc_proxy clients: CONNECT reviews:9080 tunnels to the service.
    { name: 'connect', match: { connectMatcher: {} }, route: { cluster: 'reviews.default.svc:9080', upgradeConfigs: [{ upgradeType: 'CONNECT', connectConfig: {} }] } },
  ]);
  assert.ok(!rc.virtualHosts.some((v: Json) => v.name.startsWith('db.')), 'TCP ports are not HTTP virtual hosts');
});

test('service host names end in the configured cluster domain, not a hard-coded cluster.local', () => {
  const out = translate(baseState({ clusterDomain: 'mesh.example' }), sidecar);
  const vh = (out.routes as Json[]).find((r) => r.name === 'outbound')!.virtualHosts.find((v: Json) => v.name === 'reviews.default.svc:9080');
  assert.deepEqual(vh.domains, ['reviews.default.svc.mesh.example:9080', 'reviews.default.svc:9080', 'reviews.default:9080', 'reviews:9080', '240.240.0.1:9080']);
});

test('an HTTPRoute canary splits by weight and steers a user group by header, in Gateway API precedence', () => {
  const route: HTTPRouteResource = {
    metadata: { name: 'reviews', namespace: 'default' },
    spec: {
      parentRefs: [{ kind: 'Service', name: 'reviews', port: 9080 }],
      rules: [
        { backendRefs: [{ name: 'reviews-v1', port: 9080, weight: 90 }, { name: 'reviews-v2', port: 9080, weight: 10 }] },
        { matches: [{ headers: [{ name: 'x-user-group', value: 'beta' }] }], backendRefs: [{ name: 'reviews-v2', port: 9080 }] },
        { matches: [{ path: { type: 'Exact', value: '/health' } }], backendRefs: [{ name: 'reviews-v1', port: 9080 }], timeouts: { request: '1500ms' } },
      ],
    },
  };
  const out = translate(baseState({ httpRoutes: [route] }), sidecar);
  const vh = (out.routes as Json[]).find((r) => r.name === 'outbound')!.virtualHosts.find((v: Json) => v.name === 'reviews.default.svc:9080');
  assert.equal(vh.routes.length, 4);
  assert.deepEqual(vh.routes[3].match, { connectMatcher: {} }, 'the CONNECT route last');
  assert.deepEqual(vh.routes[0].match, { path: '/health' }, 'exact path first');
  assert.equal(vh.routes[0].route.timeout, '1.5s');
  assert.deepEqual(vh.routes[1].match, { prefix: '/', headers: [{ name: 'x-user-group', stringMatch: { exact: 'beta' } }] }, 'then more header matches');
  assert.equal(vh.routes[1].route.cluster, 'reviews-v2.default.svc:9080');
  assert.deepEqual(vh.routes[2].route.weightedClusters.clusters, [
    { name: 'reviews-v1.default.svc:9080', weight: 90 },
    { name: 'reviews-v2.default.svc:9080', weight: 10 },
  ]);
  assert.deepEqual(out.warnings, []);
});

test('filters: header modifiers, rewrite, redirect, mirror; a dangling backend is a warning and a 500', () => {
  const route: HTTPRouteResource = {
    metadata: { name: 'r', namespace: 'default' },
    spec: {
      parentRefs: [{ name: 'reviews' }],
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: '/api' } }],
          filters: [
            { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Env', value: 'prod' }], remove: ['X-Debug'] } },
            { type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' }, hostname: 'internal' } },
            { type: 'RequestMirror', requestMirror: { backendRef: { name: 'reviews-v2', port: 9080 }, percent: 25 } },
          ],
          backendRefs: [{ name: 'reviews-v1', port: 9080 }],
        },
        { matches: [{ path: { type: 'Exact', value: '/old' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplaceFullPath', replaceFullPath: '/new' }, statusCode: 301 } }] },
        { matches: [{ path: { type: 'PathPrefix', value: '/ghost' } }], backendRefs: [{ name: 'nope', port: 1 }] },
      ],
    },
  };
  const out = translate(baseState({ httpRoutes: [route] }), sidecar);
  const vh = (out.routes as Json[]).find((r) => r.name === 'outbound')!.virtualHosts.find((v: Json) => v.name === 'reviews.default.svc:9080');
  const [old, ghost, api] = vh.routes;
  assert.deepEqual(old.redirect, { pathRedirect: '/new', responseCode: 'MOVED_PERMANENTLY' });
  assert.equal(ghost.directResponse.status, 500);
  assert.deepEqual(api.match, { pathSeparatedPrefix: '/api' });
  assert.deepEqual(api.requestHeadersToAdd, [{ header: { key: 'x-env', value: 'prod' }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' }]);
  assert.deepEqual(api.requestHeadersToRemove, ['x-debug']);
  assert.equal(api.route.prefixRewrite, '/v2');
  assert.equal(api.route.hostRewriteLiteral, 'internal');
  assert.deepEqual(api.route.requestMirrorPolicies, [{ cluster: 'reviews-v2.default.svc:9080', runtimeFraction: { defaultValue: { numerator: 250000, denominator: 'MILLION' } } }]);
  assert.deepEqual(out.warnings, [{ route: 'HTTPRoute default/r', message: 'backendRef default/nope: service not found' }]);
});

test('the sidecar gets inbound listeners for its own workload and local upstream listeners', () => {
  const node: ProxyNode = { ...sidecar, upstreams: [{ service: 'db', port: 5432, localPort: 25432 }, { service: 'ratings', port: 50051, localPort: 25051 }] };
  const out = translate(baseState(), node);
  const ls = out.listeners as Json[];
  const inbound = ls.find((l) => l.name === 'inbound|9080')!;
  assert.equal(inbound.address.socketAddress.portValue, 15100);
  assert.equal(inbound.trafficDirection, 'INBOUND');
  assert.ok((out.clusters as Json[]).some((c) => c.name === 'inbound|9080' && c.loadAssignment.endpoints[0].lbEndpoints[0].endpoint.address.socketAddress.address === '127.0.0.1'));
  const db = ls.find((l) => l.name === 'upstream|25432')!;
  assert.equal(db.filterChains[0].filters[0].typedConfig.cluster, 'db.default.svc:5432');
  const ratings = ls.find((l) => l.name === 'upstream|25051')!;
  assert.equal(ratings.filterChains[0].filters[0].typedConfig.rds.routeConfigName, 'upstream|25051');
});

test('proxyless gRPC clients get an API listener per service port named as their xds:/// target', () => {
  const out = translate(baseState(), { id: 'grpc-client', kind: 'proxyless', namespace: 'default' });
  const names = (out.listeners as Json[]).map((l) => l.name);
  assert.ok(names.includes('ratings.default.svc:50051'));
  assert.ok(!names.some((n) => n.startsWith('db.')), 'no TCP services for gRPC clients');
  const l = (out.listeners as Json[]).find((x) => x.name === 'ratings.default.svc:50051')!;
  assert.equal(l.apiListener.apiListener.rds.routeConfigName, 'ratings.default.svc:50051');
  for (const c of out.clusters as Json[]) assert.equal(c.lbPolicy, 'ROUND_ROBIN');
});

test('a weighted split states its totalWeight (gRPC C-core NACKs weights that do not sum to its default of 100)', () => {
  const route: HTTPRouteResource = {
    metadata: { name: 'reviews', namespace: 'default' },
    spec: { parentRefs: [{ kind: 'Service', name: 'reviews', port: 9080 }], rules: [{ backendRefs: [{ name: 'reviews-v1', port: 9080, weight: 9 }, { name: 'reviews-v2', port: 9080, weight: 1 }] }] },
  };
  for (const node of [sidecar, { id: 'g', kind: 'proxyless', namespace: 'default' } as ProxyNode]) {
    const out = translate(baseState({ httpRoutes: [route] }), node);
    const wc = (out.routes as Json[]).flatMap((r) => r.virtualHosts).find((v: Json) => v.name === 'reviews.default.svc:9080').routes[0].route.weightedClusters;
    assert.deepEqual(wc, { clusters: [{ name: 'reviews-v1.default.svc:9080', weight: 9 }, { name: 'reviews-v2.default.svc:9080', weight: 1 }], totalWeight: 10 }, node.kind);
  }
});

test('translation is deterministic whatever the input order', () => {
  const a = baseState();
  const b = baseState({ services: [...a.services].reverse(), workloads: [...a.workloads].reverse() });
  assert.deepEqual(translate(a, sidecar), translate(b, sidecar));
});

test('Gateway API durations', () => {
  assert.equal(gatewayDuration('10s'), '10s');
  assert.equal(gatewayDuration('1h30m'), '5400s');
  assert.equal(gatewayDuration('250ms'), '0.25s');
  assert.equal(gatewayDuration('ten'), undefined);
});
