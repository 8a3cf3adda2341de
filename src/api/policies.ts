// Traffic policies (trellis.dev/v1alpha1): timeouts, retries, circuit
// breaking, outlier detection, health checks, load balancing, rate limits and
// fault injection, attached Gateway-API style with `spec.targetRef` to a
// Service (optionally one port: `sectionName` = port name, or `port`) or, for
// the route-level kinds, to an HTTPRoute. Translation into the Envoy fields
// the proxy enforces: src/control-plane/translate/policies.ts; semantics and
// precedence: docs/policies.md.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Closed, StringEnum, Duration, ObjectName, Group, SectionName, PortNumber, HeaderName, parseDuration } from './schema-common.ts';
import type { KindDef, ObjectRef, Report } from './kinds.ts';
import type { Resource } from './types.ts';
import type { PathSegment } from './schema-check.ts';

export const PolicyTarget = Closed({
  group: Type.Optional(Group),
  kind: StringEnum(['Service', 'HTTPRoute'] as const),
  name: ObjectName,
  /** Service: a port name. */
  sectionName: Type.Optional(SectionName),
  /** Service: a port number (alternative to sectionName). */
  port: Type.Optional(PortNumber),
});
export type PolicyTarget = Static<typeof PolicyTarget>;

const Percent = Type.Number({ minimum: 0, maximum: 100 });
const Count = (max = 1_000_000_000) => Type.Integer({ minimum: 0, maximum: max });

export const TimeoutPolicySpec = Closed({
  targetRef: PolicyTarget,
  /** The whole request, retries included (route `timeout`). */
  request: Type.Optional(Duration),
  /** Each try to a backend (route `retryPolicy.perTryTimeout`). */
  backendRequest: Type.Optional(Duration),
  /** Idle upstream connections are closed after this (cluster `commonHttpProtocolOptions.idleTimeout`). */
  idle: Type.Optional(Duration),
});
export type TimeoutPolicySpec = Static<typeof TimeoutPolicySpec>;

export const RETRY_CONDITIONS = [
  '5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-4xx', 'refused-stream', 'retriable-status-codes',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
] as const;

export const RetryPolicySpec = Closed({
  targetRef: PolicyTarget,
  /** Retries after the first try (Istio `attempts`); 0..10. */
  attempts: Type.Integer({ minimum: 0, maximum: 10 }),
  perTryTimeout: Type.Optional(Duration),
  /** Envoy conditions; gRPC statuses as `unavailable`, `resource-exhausted`, ... Default: 5xx, reset, connect-failure. */
  retryOn: Type.Optional(Type.Array(StringEnum(RETRY_CONDITIONS), { minItems: 1, maxItems: 16 })),
  /** With retryOn `retriable-status-codes`. */
  retriableStatusCodes: Type.Optional(Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), { maxItems: 32 })),
  backoff: Type.Optional(Closed({ baseInterval: Duration, maxInterval: Type.Optional(Duration) })),
  /** Linkerd-style budget for the clusters this policy's routes send to: over
   * 10 s, retries <= ratio x requests + minRetriesPerSecond x 10 (proxy default 0.2 and 10). */
  budget: Type.Optional(Closed({
    ratio: Type.Number({ minimum: 0, maximum: 100 }),
    minRetriesPerSecond: Type.Optional(Type.Number({ minimum: 0, maximum: 1_000_000 })),
  })),
});
export type RetryPolicySpec = Static<typeof RetryPolicySpec>;

export const CircuitBreakerPolicySpec = Closed({
  targetRef: PolicyTarget,
  /** Per endpoint connection pool (docs/load-balancing.md). */
  maxConnections: Type.Optional(Count()),
  maxPendingRequests: Type.Optional(Count()),
  /** In flight to the whole cluster; above it: fast 503 (OVERFLOW). */
  maxRequests: Type.Optional(Count()),
  /** Retries in flight to the cluster. */
  maxRetries: Type.Optional(Count()),
});
export type CircuitBreakerPolicySpec = Static<typeof CircuitBreakerPolicySpec>;

export const OutlierDetectionPolicySpec = Closed({
  targetRef: PolicyTarget,
  consecutive5xx: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  /** 502/503/504 and connect failures/resets/timeouts in a row (enforced when set). */
  consecutiveGatewayErrors: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  interval: Type.Optional(Duration),
  baseEjectionTime: Type.Optional(Duration),
  maxEjectionTime: Type.Optional(Duration),
  maxEjectionPercent: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
});
export type OutlierDetectionPolicySpec = Static<typeof OutlierDetectionPolicySpec>;

export const HealthCheckPolicySpec = Closed({
  targetRef: PolicyTarget,
  http: Type.Optional(Closed({
    path: Type.String({ minLength: 1, maxLength: 1024, pattern: '^/' }),
    /** Healthy statuses; default [200]. */
    expectedStatuses: Type.Optional(Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), { minItems: 1, maxItems: 32 })),
  })),
  tcp: Type.Optional(Closed({})),
  interval: Duration,
  timeout: Duration,
  healthyThreshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  unhealthyThreshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
});
export type HealthCheckPolicySpec = Static<typeof HealthCheckPolicySpec>;

export const LB_TYPES = ['peakEwma', 'roundRobin', 'weightedRoundRobin', 'random', 'leastRequest', 'ringHash'] as const;

export const LoadBalancerPolicySpec = Closed({
  targetRef: PolicyTarget,
  type: StringEnum(LB_TYPES),
  /** ringHash: where the key comes from (one of). */
  hash: Type.Optional(Closed({
    header: Type.Optional(HeaderName),
    cookie: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    sourceIP: Type.Optional(Type.Boolean()),
  })),
  locality: Type.Optional(Closed({
    /** Prefer endpoints in the caller's zone, then its region, then elsewhere (spill when < 72% healthy). */
    preferZone: Type.Boolean(),
  })),
});
export type LoadBalancerPolicySpec = Static<typeof LoadBalancerPolicySpec>;

const Bucket = {
  /** Requests admitted per `interval` (tokens per fill). */
  requests: Type.Integer({ minimum: 1, maximum: 1_000_000_000 }),
  interval: Duration,
  /** Bucket size (default: `requests`). */
  burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000_000 })),
};

export const RateLimitPolicySpec = Closed({
  targetRef: PolicyTarget,
  /** Enforced by each of the target's sidecars on its own (inbound). */
  local: Type.Optional(Closed({
    ...Bucket,
    requests: Type.Optional(Bucket.requests),
    interval: Type.Optional(Duration),
    /** Per caller identity (the verified SPIFFE ID with mTLS, else the peer address); "*" = every caller its own bucket. */
    perCaller: Type.Optional(Type.Array(Closed({ caller: Type.String({ minLength: 1, maxLength: 1024 }), ...Bucket }), { maxItems: 64 })),
  })),
  /** Shared by all the target's sidecars: each enforces rate / (number of its meshed workloads). */
  global: Type.Optional(Closed({
    requestsPerSecond: Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000_000 }),
    burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000_000 })),
  })),
});
export type RateLimitPolicySpec = Static<typeof RateLimitPolicySpec>;

export const FaultInjectionPolicySpec = Closed({
  targetRef: PolicyTarget,
  delay: Type.Optional(Closed({ fixed: Duration, percent: Percent })),
  abort: Type.Optional(Closed({
    httpStatus: Type.Optional(Type.Integer({ minimum: 200, maximum: 599 })),
    grpcStatus: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 })),
    percent: Percent,
  })),
  /** Only requests carrying these headers (exact values) get faults. */
  match: Type.Optional(Closed({
    headers: Type.Array(Closed({ name: HeaderName, value: Type.String({ maxLength: 4096 }) }), { minItems: 1, maxItems: 16 }),
  })),
});
export type FaultInjectionPolicySpec = Static<typeof FaultInjectionPolicySpec>;

// ---- cross-field checks ----

type Seg = PathSegment;

function checkTarget(t: PolicyTarget, routeLevel: boolean, report: Report): void {
  const at = (...s: Seg[]): Seg[] => ['spec', 'targetRef', ...s];
  const g = t.group ?? '';
  if (t.kind === 'Service' && !(g === '' || g === 'trellis.dev')) report(at('group'), 'must be "" or "trellis.dev" for a Service');
  if (t.kind === 'HTTPRoute') {
    if (!routeLevel) report(at('kind'), 'must be Service (this policy applies to a service\'s clusters or workloads)');
    if (!(g === '' || g === 'gateway.networking.k8s.io')) report(at('group'), 'must be "gateway.networking.k8s.io" for an HTTPRoute');
    if (t.sectionName !== undefined) report(at('sectionName'), 'is not supported for an HTTPRoute target');
    if (t.port !== undefined) report(at('port'), 'is only valid for a Service target');
  }
  if (t.sectionName !== undefined && t.port !== undefined) report(at('port'), 'cannot be combined with sectionName');
}

function durationCheck(report: Report, path: Seg[], d: string | undefined, positive = true): number | undefined {
  if (d === undefined) return undefined;
  const ms = parseDuration(d);
  if (ms !== undefined && positive && ms <= 0) report(path, 'must be greater than 0');
  return ms;
}

export function checkTimeoutPolicy(s: TimeoutPolicySpec, report: Report): void {
  checkTarget(s.targetRef, true, report);
  if (s.request === undefined && s.backendRequest === undefined && s.idle === undefined) report(['spec'], 'sets no timeout (request, backendRequest or idle)');
  const req = durationCheck(report, ['spec', 'request'], s.request, false);
  const be = durationCheck(report, ['spec', 'backendRequest'], s.backendRequest);
  durationCheck(report, ['spec', 'idle'], s.idle);
  if (req !== undefined && be !== undefined && req > 0 && be > req) report(['spec', 'backendRequest'], 'must not be longer than request');
  if (s.idle !== undefined && s.targetRef.kind === 'HTTPRoute') report(['spec', 'idle'], 'applies to a Service\'s connections: target a Service');
}

export function checkRetryPolicy(s: RetryPolicySpec, report: Report): void {
  checkTarget(s.targetRef, true, report);
  durationCheck(report, ['spec', 'perTryTimeout'], s.perTryTimeout);
  if (s.backoff) {
    const base = durationCheck(report, ['spec', 'backoff', 'baseInterval'], s.backoff.baseInterval);
    const max = durationCheck(report, ['spec', 'backoff', 'maxInterval'], s.backoff.maxInterval);
    if (base !== undefined && max !== undefined && max < base) report(['spec', 'backoff', 'maxInterval'], 'must not be less than baseInterval');
  }
  const on = s.retryOn ?? [];
  if ((s.retriableStatusCodes ?? []).length > 0 && !on.includes('retriable-status-codes')) report(['spec', 'retriableStatusCodes'], 'needs "retriable-status-codes" in retryOn');
  if (on.includes('retriable-status-codes') && (s.retriableStatusCodes ?? []).length === 0) report(['spec', 'retryOn'], '"retriable-status-codes" needs retriableStatusCodes');
}

export function checkCircuitBreakerPolicy(s: CircuitBreakerPolicySpec, report: Report): void {
  checkTarget(s.targetRef, false, report);
  if (s.maxConnections === undefined && s.maxPendingRequests === undefined && s.maxRequests === undefined && s.maxRetries === undefined) {
    report(['spec'], 'sets no limit (maxConnections, maxPendingRequests, maxRequests or maxRetries)');
  }
}

export function checkOutlierDetectionPolicy(s: OutlierDetectionPolicySpec, report: Report): void {
  checkTarget(s.targetRef, false, report);
  durationCheck(report, ['spec', 'interval'], s.interval);
  const base = durationCheck(report, ['spec', 'baseEjectionTime'], s.baseEjectionTime);
  const max = durationCheck(report, ['spec', 'maxEjectionTime'], s.maxEjectionTime);
  if (max !== undefined && max < (base ?? 30_000)) report(['spec', 'maxEjectionTime'], `must not be less than baseEjectionTime (${s.baseEjectionTime ?? '30s, the default'})`);
}

export function checkHealthCheckPolicy(s: HealthCheckPolicySpec, report: Report): void {
  checkTarget(s.targetRef, false, report);
  if ((s.http === undefined) === (s.tcp === undefined)) report(['spec', 'http'], 'exactly one of http or tcp is required');
  const iv = durationCheck(report, ['spec', 'interval'], s.interval);
  const to = durationCheck(report, ['spec', 'timeout'], s.timeout);
  if (iv !== undefined && to !== undefined && to > iv) report(['spec', 'timeout'], 'must not be longer than interval');
}

export function checkLoadBalancerPolicy(s: LoadBalancerPolicySpec, report: Report): void {
  checkTarget(s.targetRef, false, report);
  if (s.hash) {
    const n = [s.hash.header, s.hash.cookie, s.hash.sourceIP === true ? true : undefined].filter((x) => x !== undefined).length;
    if (n !== 1) report(['spec', 'hash'], 'exactly one of header, cookie or sourceIP: true is required');
    if (s.type !== 'ringHash') report(['spec', 'hash'], 'is only used with type ringHash');
  }
}

export function checkRateLimitPolicy(s: RateLimitPolicySpec, report: Report): void {
  checkTarget(s.targetRef, false, report);
  if (!s.local && !s.global) report(['spec'], 'sets no limit (local or global)');
  const l = s.local;
  if (l) {
    if ((l.requests === undefined) !== (l.interval === undefined)) report(['spec', 'local', l.requests === undefined ? 'requests' : 'interval'], 'requests and interval go together');
    if (l.requests === undefined && (l.perCaller ?? []).length === 0) report(['spec', 'local'], 'needs requests + interval or perCaller');
    durationCheck(report, ['spec', 'local', 'interval'], l.interval);
    const seen = new Set<string>();
    (l.perCaller ?? []).forEach((c, i) => {
      durationCheck(report, ['spec', 'local', 'perCaller', i, 'interval'], c.interval);
      if (seen.has(c.caller)) report(['spec', 'local', 'perCaller', i, 'caller'], `duplicate caller "${c.caller}"`);
      seen.add(c.caller);
    });
  }
}

export function checkFaultInjectionPolicy(s: FaultInjectionPolicySpec, report: Report): void {
  checkTarget(s.targetRef, true, report);
  if (!s.delay && !s.abort) report(['spec'], 'injects nothing (delay or abort)');
  if (s.abort && (s.abort.httpStatus === undefined) === (s.abort.grpcStatus === undefined)) report(['spec', 'abort'], 'exactly one of httpStatus or grpcStatus is required');
  if (s.delay) durationCheck(report, ['spec', 'delay', 'fixed'], s.delay.fixed);
}

// ---- registry entries (spread into KINDS in kinds.ts) ----

export const POLICY_KIND_NAMES = [
  'TimeoutPolicy', 'RetryPolicy', 'CircuitBreakerPolicy', 'OutlierDetectionPolicy', 'HealthCheckPolicy', 'LoadBalancerPolicy', 'RateLimitPolicy', 'FaultInjectionPolicy',
] as const;
export type PolicyKindName = (typeof POLICY_KIND_NAMES)[number];

function targetRefs(res: Resource): ObjectRef[] {
  const t = (res.spec as { targetRef?: PolicyTarget }).targetRef;
  if (!t) return [];
  return [{ role: 'targetRef', kind: t.kind, namespace: res.metadata.namespace ?? 'default', name: t.name, path: 'spec.targetRef' }];
}

const targetCol = {
  header: 'TARGET',
  value: (r: Resource) => {
    const t = (r.spec as { targetRef: PolicyTarget }).targetRef;
    return `${t.kind}/${t.name}${t.sectionName ? `:${t.sectionName}` : t.port ? `:${t.port}` : ''}`;
  },
};

function entry<S>(kind: PolicyKindName, plural: string, shortNames: string[], specSchema: TSchema, check: (s: S, report: Report) => void, routeLevel: boolean, extra: KindDef['columns'] = []): KindDef {
  return {
    kind, group: 'trellis.dev', version: 'v1alpha1', apiVersion: 'trellis.dev/v1alpha1', plural, shortNames, specSchema, nameRule: 'dns1123-subdomain',
    check: check as (spec: never, report: Report) => void,
    references: targetRefs,
    refersTo: routeLevel ? ['Service', 'HTTPRoute'] : ['Service'],
    role: 'policy',
    columns: [targetCol, ...extra],
  };
}

export const POLICY_KINDS: readonly KindDef[] = [
  entry<TimeoutPolicySpec>('TimeoutPolicy', 'timeoutpolicies', ['tp', 'timeoutpolicy'], TimeoutPolicySpec, checkTimeoutPolicy, true, [
    { header: 'REQUEST', value: (r) => (r.spec as TimeoutPolicySpec).request ?? '-' },
    { header: 'BACKEND', value: (r) => (r.spec as TimeoutPolicySpec).backendRequest ?? '-' },
  ]),
  entry<RetryPolicySpec>('RetryPolicy', 'retrypolicies', ['rp', 'retrypolicy'], RetryPolicySpec, checkRetryPolicy, true, [
    { header: 'ATTEMPTS', value: (r) => String((r.spec as RetryPolicySpec).attempts) },
    { header: 'RETRY-ON', wide: true, value: (r) => ((r.spec as RetryPolicySpec).retryOn ?? ['5xx', 'reset', 'connect-failure']).join(',') },
  ]),
  entry<CircuitBreakerPolicySpec>('CircuitBreakerPolicy', 'circuitbreakerpolicies', ['cbp', 'circuitbreakerpolicy'], CircuitBreakerPolicySpec, checkCircuitBreakerPolicy, false, [
    { header: 'MAX-REQUESTS', value: (r) => String((r.spec as CircuitBreakerPolicySpec).maxRequests ?? '-') },
  ]),
  entry<OutlierDetectionPolicySpec>('OutlierDetectionPolicy', 'outlierdetectionpolicies', ['odp', 'outlierdetectionpolicy'], OutlierDetectionPolicySpec, checkOutlierDetectionPolicy, false),
  entry<HealthCheckPolicySpec>('HealthCheckPolicy', 'healthcheckpolicies', ['hcp', 'healthcheckpolicy'], HealthCheckPolicySpec, checkHealthCheckPolicy, false, [
    { header: 'CHECK', value: (r) => { const s = r.spec as HealthCheckPolicySpec; return s.http ? `http ${s.http.path}` : 'tcp'; } },
  ]),
  entry<LoadBalancerPolicySpec>('LoadBalancerPolicy', 'loadbalancerpolicies', ['lbp', 'loadbalancerpolicy'], LoadBalancerPolicySpec, checkLoadBalancerPolicy, false, [
    { header: 'TYPE', value: (r) => (r.spec as LoadBalancerPolicySpec).type },
  ]),
  entry<RateLimitPolicySpec>('RateLimitPolicy', 'ratelimitpolicies', ['rlp', 'ratelimitpolicy'], RateLimitPolicySpec, checkRateLimitPolicy, false, [
    { header: 'GLOBAL-RPS', value: (r) => String((r.spec as RateLimitPolicySpec).global?.requestsPerSecond ?? '-') },
  ]),
  entry<FaultInjectionPolicySpec>('FaultInjectionPolicy', 'faultinjectionpolicies', ['fip', 'faultinjectionpolicy', 'faultpolicy'], FaultInjectionPolicySpec, checkFaultInjectionPolicy, true),
];
