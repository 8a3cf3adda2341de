// The proxyless view per gRPC client kind (proxyless.ts): Envoy forms gRPC
// clients NACK are rewritten, fields they ignore are removed, and each loss is
// a warning naming the route and the client kind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { translate } from './translate.ts';
import { grpcClientKind } from './proxyless.ts';
import type { GrpcClientKind, HTTPRouteResource, MeshState, ProxyNode, ServiceResource } from './model.ts';
import type { PolicyResource } from './policies.ts';
import { createSnapshot, checkConsistency } from '../../xds/snapshot.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const svc = (name: string, selector: Record<string, string>): ServiceResource => ({ metadata: { name, namespace: 'default' }, spec: { selector, ports: [{ port: 50051, protocol: 'grpc' }] } });
const pol = (kind: PolicyResource['kind'], name: string, spec: object): PolicyResource => ({ kind, metadata: { name, namespace: 'default', creationTimestamp: '2026-01-01T00:00:00Z' }, spec } as PolicyResource);

const route: HTTPRouteResource = {
  metadata: { name: 'r', namespace: 'default' },
  spec: {
    parentRefs: [{ kind: 'Service', name: 'echo', port: 50051 }],
    rules: [
      { matches: [{ path: { type: 'PathPrefix', value: '/echo.Echo/' }, headers: [{ name: 'x-group', value: 'beta' }] }], backendRefs: [{ name: 'echo-v2', port: 50051 }], timeouts: { request: '2s', backendRequest: '1s' } },
      { matches: [{ path: { type: 'PathPrefix', value: '/q' }, queryParams: [{ name: 'a', value: 'b' }] }], backendRefs: [{ name: 'echo', port: 50051 }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/h' } }], backendRefs: [{ name: 'echo', port: 50051 }], filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x', value: 'y' }] } }] },
    ],
  },
};

function state(policies: PolicyResource[] = []): MeshState {
  return {
    services: [svc('echo', { app: 'echo' }), svc('echo-v2', { app: 'echo', version: 'v2' })],
    httpRoutes: [route], grpcRoutes: [], tcpRoutes: [],
    workloads: [{ name: 'e1', namespace: 'default', address: '127.0.0.1', labels: { app: 'echo', version: 'v2' }, ports: [{ port: 50051, protocol: 'grpc' }] }],
    vips: new Map(),
    policies,
  };
}

const node = (client: GrpcClientKind): ProxyNode => ({ id: `g-${client}`, kind: 'proxyless', client, namespace: 'default' });
const vhost = (out: ReturnType<typeof translate>): Json => (out.routes as Json[]).find((r) => r.name === 'echo.default.svc:50051')!.virtualHosts[0];

test('client kinds from the user agents the real clients send', () => {
  assert.equal(grpcClientKind('gRPC Go'), 'grpc-go');
  assert.equal(grpcClientKind('gRPC C-core linux Python C-core'), 'grpc-core');
  assert.equal(grpcClientKind('gRPC Node Pure JS'), 'grpc-js');
  assert.equal(grpcClientKind('gRPC Java'), 'grpc-java');
  assert.equal(grpcClientKind('something'), 'grpc');
});

test('Gateway API forms gRPC rejects or ignores: PathPrefix as path + prefix, timeouts as maxStreamDuration, no query matches, no header changes', () => {
  const proxy = translate(state(), { id: 's', kind: 'sidecar', namespace: 'default' });
  const pvh = (proxy.routes as Json[])[0]!.virtualHosts.find((v: Json) => v.name === 'echo.default.svc:50051');
  assert.deepEqual(pvh.routes[0].match, { pathSeparatedPrefix: '/echo.Echo', headers: [{ name: 'x-group', stringMatch: { exact: 'beta' } }] }, 'Trellis proxies keep the precise form');
  assert.equal(pvh.routes[0].route.timeout, '2s');

  const out = translate(state(), node('grpc-go'));
  const vh = vhost(out);
  assert.deepEqual(vh.routes.map((r: Json) => [r.name, r.match]), [
    ['default/r/rule-0/match-0', { path: '/echo.Echo', headers: [{ name: 'x-group', stringMatch: { exact: 'beta' } }] }],
    ['default/r/rule-0/match-0/1', { prefix: '/echo.Echo/', headers: [{ name: 'x-group', stringMatch: { exact: 'beta' } }] }],
    ['default/r/rule-2/match-0', { path: '/h' }],
    ['default/r/rule-2/match-0/1', { prefix: '/h/' }],
  ], 'the query-parameter match is left out: a gRPC call has none');
  assert.deepEqual(vh.routes[0].route, { cluster: 'echo-v2.default.svc:50051', maxStreamDuration: { maxStreamDuration: '2s' } }, 'no numRetries-0 retry policy (C-core rejects it), no per-try timeout');
  assert.equal(vh.routes[2].requestHeadersToAdd, undefined);
  assert.deepEqual(out.warnings.map((w) => `${w.route}: ${w.message}`).sort(), [
    'HTTPRoute default/r: proxyless grpc-go: cannot match query parameters (a gRPC call has none): the match is left out of their routes',
    'HTTPRoute default/r: proxyless grpc-go: ignore per-try timeouts (timeouts.backendRequest, RetryPolicy perTryTimeout): gRPC has none',
    'HTTPRoute default/r: proxyless grpc-go: ignore request header changes',
  ]);
  const snap = createSnapshot(out);
  assert.ok(snap.ok, JSON.stringify(!snap.ok && snap.errors));
  assert.deepEqual(checkConsistency(snap.snapshot), []);
});

test('traffic policies reach proxyless clients in gRPC terms: retries on gRPC codes, header hashes, ring hash; the rest is said', () => {
  const policies = [
    pol('RetryPolicy', 'retry', { targetRef: { kind: 'Service', name: 'echo' }, attempts: 2, perTryTimeout: '300ms', retryOn: ['5xx', 'unavailable'], backoff: { baseInterval: '10ms' } }),
    pol('TimeoutPolicy', 'to', { targetRef: { kind: 'Service', name: 'echo-v2' }, request: '5s' }),
    pol('LoadBalancerPolicy', 'lb', { targetRef: { kind: 'Service', name: 'echo-v2' }, type: 'ringHash', hash: { header: 'x-user' } }),
    pol('LoadBalancerPolicy', 'lb2', { targetRef: { kind: 'Service', name: 'echo' }, type: 'leastRequest' }),
    pol('HealthCheckPolicy', 'hc', { targetRef: { kind: 'Service', name: 'echo' }, interval: '1s', timeout: '1s', http: { path: '/healthz' } }),
  ];
  for (const client of ['grpc-go', 'grpc-js'] as const) {
    const out = translate(state(policies), node(client));
    const vh = vhost(out);
    const beta = vh.routes[0].route;
    assert.deepEqual(beta.hashPolicy, [{ header: { headerName: 'x-user' } }]);
    assert.deepEqual(beta.maxStreamDuration, { maxStreamDuration: '2s' }, 'the HTTPRoute timeout wins over the TimeoutPolicy');
    const h = vh.routes[2].route;
    assert.deepEqual(h.retryPolicy, { retryOn: 'unavailable', numRetries: 2, retryBackOff: { baseInterval: '0.01s' } });
    const clusters = new Map((out.clusters as Json[]).map((c) => [c.name, c]));
    assert.equal(clusters.get('echo-v2.default.svc:50051')!.lbPolicy, 'RING_HASH');
    assert.equal(clusters.get('echo.default.svc:50051')!.lbPolicy, client === 'grpc-go' ? 'LEAST_REQUEST' : 'ROUND_ROBIN', `${client}: least request where the client has it`);
    assert.equal(clusters.get('echo.default.svc:50051')!.healthChecks, undefined);
    const msgs = out.warnings.map((w) => `${w.route}: ${w.message}`);
    const name = client === 'grpc-go' ? 'grpc-go' : 'grpc-js';
    assert.ok(msgs.includes(`HTTPRoute default/r: proxyless ${name}: retry on unavailable only, not on 5xx`), msgs.join('\n'));
    assert.ok(msgs.includes(`cluster echo.default.svc:50051: proxyless ${name}: ignore HealthCheckPolicy (no active health checks in gRPC)`), msgs.join('\n'));
    assert.equal(msgs.includes(`cluster echo.default.svc:50051: proxyless ${name}: do not support lbPolicy LEAST_REQUEST: round robin instead`), client === 'grpc-js', msgs.join('\n'));
  }
});
