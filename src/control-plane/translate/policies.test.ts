import { test } from 'node:test';
import assert from 'node:assert/strict';
import { translate } from './translate.ts';
import type { HTTPRouteResource, MeshState, ProxyNode, ServiceResource, WorkloadInstance } from './model.ts';
import type { PolicyResource } from './policies.ts';
import { shareBucket } from './policies.ts';
import { buildProxyConfig } from '../../proxy/config/envoy.ts';
import { planResilience } from '../../proxy/config/envoy-resilience.ts';
import { createSnapshot, checkConsistency, snapshotResources } from '../../xds/snapshot.ts';
import { TypeUrl } from '../../xds/protos.ts';
import { unpackAny } from '../../xds/codec.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const svc = (name: string, selector: Record<string, string>): ServiceResource => ({
  metadata: { name, namespace: 'default' },
  spec: { selector, ports: [{ name: 'http', port: 9080, protocol: 'http' }] },
});
const wl = (name: string, labels: Record<string, string>, proxyPort?: number): WorkloadInstance => ({
  name, namespace: 'default', address: '127.0.0.1', labels,
  ports: [{ port: 9080, protocol: 'http', name: 'http', ...(proxyPort ? { proxyPort } : {}) }],
});
const pol = (kind: PolicyResource['kind'], name: string, spec: object, created = '2026-01-01T00:00:00Z'): PolicyResource =>
  ({ kind, metadata: { name, namespace: 'default', creationTimestamp: created }, spec } as PolicyResource);

const route: HTTPRouteResource = {
  metadata: { name: 'reviews', namespace: 'default' },
  spec: {
    parentRefs: [{ kind: 'Service', name: 'reviews', port: 9080 }],
    rules: [{ backendRefs: [{ name: 'reviews-v1', port: 9080, weight: 90 }, { name: 'reviews-v2', port: 9080, weight: 10 }], timeouts: { request: '2s' } }],
  },
};

function state(policies: PolicyResource[], over: Partial<MeshState> = {}): MeshState {
  return {
    services: [svc('reviews', { app: 'reviews' }), svc('reviews-v1', { app: 'reviews', version: 'v1' }), svc('reviews-v2', { app: 'reviews', version: 'v2' }), svc('ratings', { app: 'ratings' })],
    httpRoutes: [], grpcRoutes: [], tcpRoutes: [],
    workloads: [wl('reviews-1', { app: 'reviews', version: 'v1' }, 15101), wl('reviews-2', { app: 'reviews', version: 'v2' }, 15102), wl('ratings-1', { app: 'ratings' }, 15103)],
    vips: new Map(),
    policies,
    ...over,
  };
}

const node: ProxyNode = { id: 'default/ratings-1', kind: 'sidecar', namespace: 'default', workload: 'ratings-1' };

function vhost(out: Json, name: string): Json {
  return (out.routes as Json[]).find((r) => r.name === 'outbound')!.virtualHosts.find((v: Json) => v.name === name);
}
const cluster = (out: Json, name: string): Json => (out.clusters as Json[]).find((c) => c.name === name)!;

test('route-level policies: retry, timeout, fault (with a header-matched copy), ring-hash key; route-level beats service-level', () => {
  const out = translate(state([
    pol('RetryPolicy', 'svc-retry', { targetRef: { kind: 'Service', name: 'ratings' }, attempts: 2, perTryTimeout: '300ms', retryOn: ['5xx', 'unavailable'], backoff: { baseInterval: '10ms' } }),
    pol('TimeoutPolicy', 'svc-timeout', { targetRef: { kind: 'Service', name: 'ratings' }, request: '1500ms', backendRequest: '1s' }),
    pol('FaultInjectionPolicy', 'chaos', { targetRef: { kind: 'Service', name: 'ratings' }, abort: { httpStatus: 503, percent: 12.5 }, match: { headers: [{ name: 'X-Chaos', value: 'on' }] } }),
    pol('LoadBalancerPolicy', 'sticky', { targetRef: { kind: 'Service', name: 'ratings' }, type: 'ringHash', hash: { header: 'X-User' } }),
  ]) , node) as unknown as Json;
  const all = vhost(out, 'ratings.default.svc:9080').routes as Json[];
  // The CONNECT route comes last and takes no policy (a tunnel is not a request).
  assert.deepEqual(all.at(-1), { name: 'connect', match: { connectMatcher: {} }, route: { cluster: 'ratings.default.svc:9080', upgradeConfigs: [{ upgradeType: 'CONNECT', connectConfig: {} }] } });
  const routes = all.slice(0, -1);
  assert.equal(routes.length, 2);
  assert.equal(routes[0]!.name, 'default/fault');
  assert.deepEqual(routes[0]!.match.headers, [{ name: 'x-chaos', stringMatch: { exact: 'on' } }]);
  assert.deepEqual(routes[0]!.typedPerFilterConfig['envoy.filters.http.fault'].abort, { httpStatus: 503, percentage: { numerator: 125_000, denominator: 'MILLION' } });
  assert.equal(routes[1]!.typedPerFilterConfig, undefined);
  assert.deepEqual(routes[1]!.route, {
    cluster: 'ratings.default.svc:9080',
    timeout: '1.5s',
    retryPolicy: { retryOn: '5xx,unavailable', numRetries: 2, perTryTimeout: '0.3s', retryBackOff: { baseInterval: '0.01s' } },
    hashPolicy: [{ header: { headerName: 'x-user' } }],
  });

  // Route-level (HTTPRoute) over service-level; the HTTPRoute's own timeouts win over a TimeoutPolicy.
  const out2 = translate(state([
    pol('RetryPolicy', 'svc-retry', { targetRef: { kind: 'Service', name: 'reviews' }, attempts: 1 }),
    pol('RetryPolicy', 'route-retry', { targetRef: { kind: 'HTTPRoute', name: 'reviews' }, attempts: 3, retryOn: ['gateway-error'] }, '2026-02-01T00:00:00Z'),
    pol('TimeoutPolicy', 'svc-timeout', { targetRef: { kind: 'Service', name: 'reviews' }, request: '9s', backendRequest: '500ms' }),
  ], { httpRoutes: [route] }), node) as unknown as Json;
  const r = vhost(out2, 'reviews.default.svc:9080').routes[0].route;
  assert.equal(r.timeout, '2s');
  assert.deepEqual(r.retryPolicy, { retryOn: 'gateway-error', numRetries: 3, perTryTimeout: '0.5s' });
  assert.deepEqual(r.weightedClusters.clusters.map((c: Json) => c.weight), [90, 10]);
});

test('cluster-level policies: breaker, outlier detection, health check, lb policy and locality, idle timeout; oldest wins with a warning', () => {
  const out = translate(state([
    pol('CircuitBreakerPolicy', 'b-young', { targetRef: { kind: 'Service', name: 'ratings' }, maxRequests: 99 }, '2026-03-01T00:00:00Z'),
    pol('CircuitBreakerPolicy', 'b-old', { targetRef: { kind: 'Service', name: 'ratings' }, maxRequests: 5, maxRetries: 50 }),
    pol('OutlierDetectionPolicy', 'od', { targetRef: { kind: 'Service', name: 'ratings', sectionName: 'http' }, consecutiveGatewayErrors: 2, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 50 }),
    pol('HealthCheckPolicy', 'hc', { targetRef: { kind: 'Service', name: 'ratings', port: 9080 }, http: { path: '/healthz' }, interval: '1s', timeout: '500ms' }),
    pol('LoadBalancerPolicy', 'lb', { targetRef: { kind: 'Service', name: 'ratings' }, type: 'leastRequest', locality: { preferZone: true } }),
    pol('TimeoutPolicy', 'idle', { targetRef: { kind: 'Service', name: 'ratings' }, idle: '30s' }),
    pol('OutlierDetectionPolicy', 'other-port', { targetRef: { kind: 'Service', name: 'ratings', port: 1234 }, consecutive5xx: 1 }),
  ]), node) as unknown as Json;
  const c = cluster(out, 'ratings.default.svc:9080');
  assert.deepEqual(c.circuitBreakers, { thresholds: [{ priority: 'DEFAULT', maxRequests: 5, maxRetries: 50 }] });
  assert.deepEqual(c.outlierDetection, { consecutiveGatewayFailure: 2, enforcingConsecutiveGatewayFailure: 100, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 50 });
  assert.deepEqual(c.healthChecks, [{ timeout: '0.5s', interval: '1s', unhealthyThreshold: 2, healthyThreshold: 2, httpHealthCheck: { path: '/healthz', expectedStatuses: [{ start: 200, end: 201 }] } }]);
  assert.equal(c.metadata.filterMetadata.trellis.lbPolicy, 'least_request');
  assert.deepEqual(c.commonLbConfig, { zoneAwareLbConfig: {} });
  assert.equal(c.typedExtensionProtocolOptions['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].commonHttpProtocolOptions.idleTimeout, '30s');
  assert.ok((out.warnings as { message: string }[]).some((w) => /b-young conflicts with the older default\/b-old/.test(w.message)));
  assert.equal(cluster(out, 'reviews.default.svc:9080').circuitBreakers, undefined);

});

test('rate limits land on the target workloads\' inbound route; a global rate is split among the meshed workloads', () => {
  const rl = pol('RateLimitPolicy', 'rl', { targetRef: { kind: 'Service', name: 'reviews' }, global: { requestsPerSecond: 60 }, local: { perCaller: [{ caller: '*', requests: 5, interval: '1s' }] } });
  const me: ProxyNode = { id: 'default/reviews-1', kind: 'sidecar', namespace: 'default', workload: 'reviews-1' };
  const out = translate(state([rl]), me) as unknown as Json;
  const inbound = (out.listeners as Json[]).find((l) => l.name === 'inbound|9080')!;
  const r = inbound.filterChains[0].filters[0].typedConfig.routeConfig.virtualHosts[0].routes[0];
  const cfg = r.typedPerFilterConfig['envoy.filters.http.local_ratelimit'];
  assert.deepEqual(cfg.tokenBucket, shareBucket(60, undefined, 2));
  assert.deepEqual(cfg.tokenBucket, { maxTokens: 3, tokensPerFill: 1, fillInterval: '0.033s' });
  assert.deepEqual(cfg.descriptors, [{ entries: [{ key: 'trellis.caller', value: '*' }], tokenBucket: { maxTokens: 5, tokensPerFill: 5, fillInterval: '1s' } }]);
  // A third reviews workload registers: the share drops to 20/s.
  const three = translate(state([rl], { workloads: [...state([]).workloads, wl('reviews-3', { app: 'reviews', version: 'v1' }, 15104)] }), me) as unknown as Json;
  const cfg3 = (three.listeners as Json[]).find((l) => l.name === 'inbound|9080')!.filterChains[0].filters[0].typedConfig.routeConfig.virtualHosts[0].routes[0].typedPerFilterConfig['envoy.filters.http.local_ratelimit'];
  assert.equal(cfg3.tokenBucket.fillInterval, '0.05s');
  // With the control plane's view of connections, only connected sidecars count.
  const one = translate(state([rl], { connectedSidecars: new Set(['default/reviews-1']) }), me) as unknown as Json;
  const cfg1 = (one.listeners as Json[]).find((l) => l.name === 'inbound|9080')!.filterChains[0].filters[0].typedConfig.routeConfig.virtualHosts[0].routes[0].typedPerFilterConfig['envoy.filters.http.local_ratelimit'];
  assert.deepEqual(cfg1.tokenBucket, shareBucket(60, undefined, 1));
  // Callers of reviews get no limit of their own.
  const caller = translate(state([rl]), node) as unknown as Json;
  assert.ok(!JSON.stringify(caller.listeners).includes('local_ratelimit'));
  // Transparent capture: the limit lands on the `inbound|9080` chain of the one inbound listener.
  const pod = translate(state([rl]), { ...me, capture: 'transparent' }) as unknown as Json;
  const chain = ((pod.listeners as Json[]).find((l) => l.name === 'inbound')!.filterChains as Json[]).find((c) => c.name === 'inbound|9080')!;
  assert.deepEqual(chain.filters[0].typedConfig.routeConfig.virtualHosts[0].routes[0].typedPerFilterConfig['envoy.filters.http.local_ratelimit'].tokenBucket, shareBucket(60, undefined, 2));
});

test('every policy survives protobuf packing and the proxy\'s strict readers', () => {
  const all = [
    pol('RetryPolicy', 'r', { targetRef: { kind: 'Service', name: 'reviews' }, attempts: 2, perTryTimeout: '300ms', retryOn: ['5xx', 'retriable-status-codes', 'unavailable'], retriableStatusCodes: [409], backoff: { baseInterval: '10ms', maxInterval: '100ms' }, budget: { ratio: 0.1, minRetriesPerSecond: 2 } }),
    pol('TimeoutPolicy', 't', { targetRef: { kind: 'Service', name: 'reviews' }, request: '1s', backendRequest: '500ms', idle: '30s' }),
    pol('FaultInjectionPolicy', 'f', { targetRef: { kind: 'Service', name: 'reviews' }, delay: { fixed: '10ms', percent: 50 }, abort: { grpcStatus: 14, percent: 1 }, match: { headers: [{ name: 'x-chaos', value: 'on' }] } }),
    pol('LoadBalancerPolicy', 'l', { targetRef: { kind: 'Service', name: 'reviews' }, type: 'ringHash', hash: { cookie: 'session' }, locality: { preferZone: true } }),
    pol('CircuitBreakerPolicy', 'c', { targetRef: { kind: 'Service', name: 'reviews' }, maxConnections: 10, maxPendingRequests: 10, maxRequests: 10, maxRetries: 10 }),
    pol('OutlierDetectionPolicy', 'o', { targetRef: { kind: 'Service', name: 'reviews' }, consecutive5xx: 3, consecutiveGatewayErrors: 2, interval: '1s', baseEjectionTime: '5s', maxEjectionTime: '50s', maxEjectionPercent: 34 }),
    pol('HealthCheckPolicy', 'h', { targetRef: { kind: 'Service', name: 'reviews' }, tcp: {}, interval: '1s', timeout: '500ms' }),
    pol('RateLimitPolicy', 'rl', { targetRef: { kind: 'Service', name: 'reviews' }, local: { requests: 10, interval: '1s', burst: 20, perCaller: [{ caller: 'spiffe://x/ns/a/sa/b', requests: 1, interval: '1s' }] } }),
  ];
  const out = translate(state(all, { httpRoutes: [route] }), { id: 'r', kind: 'sidecar', namespace: 'default', workload: 'reviews-1' });
  assert.deepEqual(out.warnings, []);
  const snap = createSnapshot(out);
  assert.ok(snap.ok, JSON.stringify(!snap.ok && snap.errors));
  assert.deepEqual(checkConsistency(snap.snapshot), []);
  const decode = (url: string): unknown[] => [...snapshotResources(snap.snapshot, url as never).values()].map((r) => unpackAny(r.any));
  const built = buildProxyConfig({
    version: 'v1', listeners: decode(TypeUrl.listener), routeConfigs: decode(TypeUrl.route), clusters: decode(TypeUrl.cluster), endpoints: decode(TypeUrl.endpoint),
  }, { references: 'error' });
  assert.ok(built.ok, JSON.stringify(!built.ok && built.errors));
  const plan = planResilience(built.config) as Json;
  assert.equal(plan.ok, true, JSON.stringify(plan.errors ?? plan).slice(0, 800));
  const c = built.config.clusters.get('reviews.default.svc:9080') as Json;
  assert.equal(c.lbPolicy, 'ring_hash');
  assert.equal(c.localityAware, true);
  assert.equal(c.circuitBreakers.maxRequests, 10);
  // The retry budget lands on the clusters the retried routes send to (the HTTPRoute's backends).
  assert.deepEqual(plan.plan.clusters.get('reviews-v1.default.svc:9080').retryBudget, { ratio: 0.1, minRetriesPerSecond: 2 });
  assert.deepEqual(plan.plan.clusters.get('reviews-v2.default.svc:9080').retryBudget, { ratio: 0.1, minRetriesPerSecond: 2 });
  assert.equal(plan.plan.clusters.get('ratings.default.svc:9080').retryBudget, undefined);
});
