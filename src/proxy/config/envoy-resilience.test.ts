import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Issues, formatFieldError } from './field-error.ts';
import { FAULT_TYPE, LOCAL_RATE_LIMIT_TYPE, readHealthCheck, readOutlierDetection, readRetryPolicy, readRouteResilience } from './envoy-resilience.ts';

function run<T>(fn: (issues: Issues) => T): { value: T; errors: string[] } {
  const issues = new Issues();
  const value = fn(issues);
  return { value, errors: issues.errors.map(formatFieldError) };
}

test('retry policy: conditions, defaults, backoff; unknown conditions and fields name the path', () => {
  const ok = run((i) => readRetryPolicy({ retryOn: '5xx, unavailable,retriable-status-codes', retriableStatusCodes: [409], perTryTimeout: '0.25s', retryBackOff: { baseInterval: '0.01s' } }, 'r', i));
  assert.deepEqual(ok.errors, []);
  assert.deepEqual([...ok.value!.retryOn], ['5xx', 'unavailable', 'retriable-status-codes']);
  assert.equal(ok.value!.numRetries, 1, 'Envoy default');
  assert.equal(ok.value!.perTryTimeoutMs, 250);
  assert.equal(ok.value!.backoffBaseMs, 10);
  assert.equal(ok.value!.backoffMaxMs, 100, 'max defaults to 10 x base');
  const d = run((i) => readRetryPolicy({ retryOn: 'gateway-error' }, 'r', i));
  assert.equal(d.value!.backoffBaseMs, 25);
  assert.equal(d.value!.backoffMaxMs, 250);
  const bad = run((i) => readRetryPolicy({ retryOn: '5xx,sometimes', numRetrys: 2, retriableStatusCodes: [99], retryBackOff: { baseInterval: '1s', maxInterval: '0.5s' }, retryHostPredicate: [] }, 'route.retryPolicy', i));
  assert.deepEqual(bad.errors, [
    'route.retryPolicy.retryOn: unknown condition "sometimes" (supported: 5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)',
    'route.retryPolicy.retriableStatusCodes[0]: must be an HTTP status 100-599 (got 99)',
    'route.retryPolicy.retryBackOff.maxInterval: must not be less than baseInterval',
    'route.retryPolicy.retryHostPredicate: not supported by Trellis (docs/resilience.md)',
    'route.retryPolicy.numRetrys: unknown field (did you mean "numRetries"?); not in the supported subset (docs/proxy-config.md)',
  ]);
});

test('route resilience: mirrors, HTTPFault and LocalRateLimit from typedPerFilterConfig (by @type)', () => {
  const r = run((i) => readRouteResilience({
    requestMirrorPolicies: [{ cluster: 'shadow', runtimeFraction: { defaultValue: { numerator: 25, denominator: 'HUNDRED' } } }],
    typedPerFilterConfig: {
      fault: { '@type': `type.googleapis.com/${FAULT_TYPE}`, delay: { fixedDelay: '0.1s', percentage: { numerator: 5000, denominator: 'TEN_THOUSAND' } }, abort: { grpcStatus: 14, percentage: { numerator: 1 } } },
      rl: { '@type': `type.googleapis.com/${LOCAL_RATE_LIMIT_TYPE}`, statPrefix: 'x', tokenBucket: { maxTokens: 10, tokensPerFill: 5, fillInterval: '1s' }, descriptors: [{ entries: [{ key: 'trellis.caller', value: 'spiffe://t/ns/a/sa/b' }], tokenBucket: { maxTokens: 1, fillInterval: '60s' } }] },
      cors: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy' },
    },
  }, 'route', i));
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.value.mirrors, [{ cluster: 'shadow', fraction: 0.25 }]);
  assert.deepEqual(r.value.fault, { delay: { ms: 100, fraction: 0.5 }, abort: { kind: 'grpc', code: 14, fraction: 0.01 } });
  assert.deepEqual(r.value.rateLimit, {
    statPrefix: 'x',
    tokenBucket: { maxTokens: 10, tokensPerFill: 5, fillIntervalMs: 1000 },
    callers: [{ caller: 'spiffe://t/ns/a/sa/b', tokenBucket: { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 60_000 } }],
    status: 429,
    enabled: 1,
    enforced: 1,
  });
  const bad = run((i) => readRouteResilience({
    typedPerFilterConfig: {
      f: { '@type': FAULT_TYPE, abort: { headerAbort: {} } },
      rl: { '@type': LOCAL_RATE_LIMIT_TYPE, statPrefix: 'x', descriptors: [{ entries: [{ key: 'path', value: '/' }], tokenBucket: { maxTokens: 1, fillInterval: '1s' } }] },
    },
  }, 'route', i));
  assert.deepEqual(bad.errors, [
    'route.typedPerFilterConfig["f"].abort.headerAbort: not supported (header-controlled faults)',
    'route.typedPerFilterConfig["rl"].descriptors[0].entries[0].key: only "trellis.caller" is supported (a caller\'s identity; value "*" = each caller)',
  ]);
});

test('outlier detection and health checks: defaults and errors', () => {
  const o = run((i) => readOutlierDetection({ consecutive5xx: 3, baseEjectionTime: '10s' }, 'c.outlierDetection', i));
  assert.deepEqual(o.errors, []);
  assert.equal(o.value!.consecutive5xx, 3);
  assert.equal(o.value!.maxEjectionPercent, 10);
  assert.equal(o.value!.maxEjectionTimeMs, 300_000);
  const ob = run((i) => readOutlierDetection({ successRateStdevFactor: 1900, maxEjectionPercent: 101 }, 'c.outlierDetection', i));
  assert.deepEqual(ob.errors, [
    'c.outlierDetection.maxEjectionPercent: must be between 0 and 100 (got 101)',
    'c.outlierDetection.successRateStdevFactor: not supported by Trellis (consecutive 5xx / gateway failures only; docs/resilience.md)',
  ]);
  const h = run((i) => readHealthCheck({ timeout: '1s', interval: '5s', unhealthyThreshold: 2, healthyThreshold: 1, httpHealthCheck: { path: '/healthz', expectedStatuses: [{ start: 200, end: 300 }] } }, 'hc', i));
  assert.deepEqual(h.errors, []);
  assert.deepEqual(h.value, { kind: 'http', intervalMs: 5000, timeoutMs: 1000, unhealthyThreshold: 2, healthyThreshold: 1, path: '/healthz', expectedStatuses: [[200, 300]] });
  const hb = run((i) => readHealthCheck({ interval: '5s', healthyThreshold: 1, grpcHealthCheck: {} }, 'hc', i));
  assert.deepEqual(hb.errors, ['hc.timeout: required', 'hc.unhealthyThreshold: required', 'hc.grpcHealthCheck: not supported (httpHealthCheck or tcpHealthCheck)']);
});

test('a bad resilience field fails the whole build (so xDS NACKs it), with the resource and field path', async () => {
  const { buildProxyConfig, formatErrors } = await import('./envoy.ts');
  const r = buildProxyConfig({
    version: 'v1',
    listeners: [],
    routeConfigs: [{ name: 'r', virtualHosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c', retryPolicy: { retryOn: 'often' } } }] }] }],
    clusters: [{ name: 'c', type: 'STATIC', connectTimeout: '1s', loadAssignment: { clusterName: 'c', endpoints: [] }, outlierDetection: { consecutive_5xx: 0 } }],
  }, { references: 'warn' });
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.deepEqual(formatErrors(r.errors).split('\n'), [
    'routeConfigs[0] (r): virtualHosts[0].routes[0].route.retryPolicy.retryOn: unknown condition "often" (supported: 5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)',
    'clusters[0] (c): outlierDetection.consecutive5xx: must be between 1 and 4294967295 (got 0)',
  ]);
});
