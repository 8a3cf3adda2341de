// Strict readers for the resilience fields the route and cluster parsers keep
// verbatim under `extensions` (RouteActionSpec.extensions,
// ClusterSpec.extensions): retry policy, request mirror policies, the
// per-route HTTPFault and LocalRateLimit filter configs
// (typedPerFilterConfig), outlier detection and active health checks.
// Every problem names its field path; unknown fields are errors.
// Semantics and defaults: docs/resilience.md.
import { FieldReader, isPlainObject } from './field-reader.ts';
import { Issues, formatFieldError } from './field-error.ts';
import type { ClusterSpec, ProxyConfig, RouteConfigSpec, RouteSpec } from './types.ts';

export const FAULT_TYPE = 'envoy.extensions.filters.http.fault.v3.HTTPFault';
export const LOCAL_RATE_LIMIT_TYPE = 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

// ---- specs ----

export const RETRY_ON = [
  '5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-4xx', 'refused-stream', 'retriable-status-codes',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
] as const;
export type RetryOn = (typeof RETRY_ON)[number];

export interface RetryPolicySpec {
  readonly retryOn: ReadonlySet<RetryOn>;
  /** Retries after the first attempt (Envoy default 1). */
  readonly numRetries: number;
  /** 0 = none. */
  readonly perTryTimeoutMs: number;
  readonly retriableStatusCodes: ReadonlySet<number>;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
}

export interface MirrorPolicySpec {
  readonly cluster: string;
  /** Fraction of requests mirrored, 0..1 (default 1). */
  readonly fraction: number;
}

export type FaultAbortSpec =
  | { readonly kind: 'http'; readonly status: number; readonly fraction: number }
  | { readonly kind: 'grpc'; readonly code: number; readonly fraction: number };

export interface FaultSpec {
  readonly delay?: { readonly ms: number; readonly fraction: number };
  readonly abort?: FaultAbortSpec;
  /** Concurrent faults allowed (delays in progress); unlimited when absent. */
  readonly maxActiveFaults?: number;
}

export interface TokenBucketSpec {
  readonly maxTokens: number;
  readonly tokensPerFill: number;
  readonly fillIntervalMs: number;
}

/** A per-caller bucket: `caller` "*" gives every caller its own bucket;
 * another value limits that one caller. */
export interface CallerLimitSpec {
  readonly caller: string;
  readonly tokenBucket: TokenBucketSpec;
}

export interface LocalRateLimitSpec {
  readonly statPrefix: string;
  /** Route-wide bucket (absent: only per-caller limits). */
  readonly tokenBucket?: TokenBucketSpec;
  readonly callers: readonly CallerLimitSpec[];
  /** HTTP status of the rejection (default 429). */
  readonly status: number;
  /** Fraction of requests checked (filterEnabled) and enforced (filterEnforced). */
  readonly enabled: number;
  readonly enforced: number;
}

export interface RouteResilience {
  readonly retry?: RetryPolicySpec;
  readonly mirrors: readonly MirrorPolicySpec[];
  readonly fault?: FaultSpec;
  readonly rateLimit?: LocalRateLimitSpec;
}

export interface OutlierDetectionSpec {
  readonly consecutive5xx: number;
  readonly consecutiveGatewayFailure: number;
  /** Percentages 0..100. */
  readonly enforcingConsecutive5xx: number;
  readonly enforcingConsecutiveGatewayFailure: number;
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionTimeMs: number;
  readonly maxEjectionPercent: number;
}

export interface HealthCheckSpec {
  readonly kind: 'http' | 'tcp';
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
  /** HTTP only. */
  readonly path: string;
  readonly host?: string;
  /** Inclusive-exclusive [start, end) ranges; default [200, 201). */
  readonly expectedStatuses: readonly (readonly [number, number])[];
}

export interface ClusterResilience {
  readonly outlier?: OutlierDetectionSpec;
  readonly healthChecks: readonly HealthCheckSpec[];
  /** `metadata.filterMetadata.trellis.retryBudget`: this cluster's budget instead of the proxy's default. */
  readonly retryBudget?: { readonly ratio: number; readonly minRetriesPerSecond: number };
}

export const DEFAULT_RETRY_BACKOFF = { baseMs: 25, maxMs: 250 } as const;

export const DEFAULT_OUTLIER: OutlierDetectionSpec = {
  consecutive5xx: 5,
  consecutiveGatewayFailure: 5,
  enforcingConsecutive5xx: 100,
  enforcingConsecutiveGatewayFailure: 0,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionPercent: 10,
};

// ---- readers ----

/** A known field Trellis does not implement: an error, not "unknown field". */
function unsupported(r: FieldReader, key: string, message: string): void {
  r.error(key, message);
  r.ignore(key);
}

/** route.v3.RetryPolicy. */
export function readRetryPolicy(json: unknown, path: string, issues: Issues): RetryPolicySpec | undefined {
  const r = FieldReader.of(json, path, issues);
  if (!r) return undefined;
  const before = issues.errors.length;
  const retryOn = new Set<RetryOn>();
  // Optional, as in Envoy: a policy with only perTryTimeout bounds attempts
  // without retrying.
  const on = r.str('retryOn');
  if (on !== undefined && on.trim() !== '') {
    for (const raw of on.split(',')) {
      const c = raw.trim();
      if (c === '') continue;
      if ((RETRY_ON as readonly string[]).includes(c)) retryOn.add(c as RetryOn);
      else r.error('retryOn', `unknown condition "${c}" (supported: ${RETRY_ON.join(', ')})`);
    }
    if (retryOn.size === 0 && issues.errors.length === before) r.error('retryOn', 'names no condition');
  }
  const numRetries = r.uint('numRetries', { max: 10 }) ?? 1;
  const perTryTimeoutMs = r.duration('perTryTimeout') ?? 0;
  const codes = new Set<number>();
  for (const item of r.list('retriableStatusCodes')) {
    const v = item.value;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 100 || v > 599) issues.error(item.path, `must be an HTTP status 100-599 (got ${JSON.stringify(v)})`);
    else codes.add(v);
  }
  let backoffBaseMs: number = DEFAULT_RETRY_BACKOFF.baseMs;
  let backoffMaxMs: number | undefined;
  const b = r.obj('retryBackOff');
  if (b) {
    const base = b.duration('baseInterval');
    if (base === undefined) b.error('baseInterval', 'required');
    else if (base <= 0) b.error('baseInterval', 'must be greater than 0');
    else backoffBaseMs = base;
    backoffMaxMs = b.duration('maxInterval');
    if (backoffMaxMs !== undefined && backoffMaxMs < backoffBaseMs) b.error('maxInterval', 'must not be less than baseInterval');
    b.done();
  }
  if (b) backoffMaxMs ??= backoffBaseMs * 10;
  for (const k of ['retryPriority', 'retryHostPredicate', 'retriableHeaders', 'retriableRequestHeaders', 'rateLimitedRetryBackOff', 'retryOptionsPredicates', 'perTryIdleTimeout']) {
    if (r.has(k)) unsupported(r, k, 'not supported by Trellis (docs/resilience.md)');
  }
  r.ignore('hostSelectionRetryMaxAttempts');
  r.done();
  if (issues.errors.length > before) return undefined;
  return {
    retryOn,
    numRetries,
    perTryTimeoutMs,
    retriableStatusCodes: codes,
    backoffBaseMs,
    backoffMaxMs: backoffMaxMs ?? DEFAULT_RETRY_BACKOFF.maxMs,
  };
}

/** type.v3.FractionalPercent {numerator, denominator} as a fraction 0..1. */
function readFraction(r: FieldReader, key: string): number | undefined {
  const p = r.obj(key);
  if (!p) return undefined;
  const num = p.uint('numerator') ?? 0;
  const den = p.enumOf('denominator', { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 } as const, ['HUNDRED', 'TEN_THOUSAND', 'MILLION']) ?? 100;
  p.done();
  return Math.min(1, num / den);
}

/** core.v3.RuntimeFractionalPercent: only the default value is used. */
function readRuntimeFraction(r: FieldReader, key: string): number | undefined {
  const p = r.obj(key);
  if (!p) return undefined;
  const f = readFraction(p, 'defaultValue');
  p.ignore('runtimeKey');
  p.done();
  return f ?? 0;
}

export function readMirrorPolicy(json: unknown, path: string, issues: Issues): MirrorPolicySpec | undefined {
  const r = FieldReader.of(json, path, issues);
  if (!r) return undefined;
  const cluster = r.str('cluster', { required: true });
  const fraction = readRuntimeFraction(r, 'runtimeFraction') ?? 1;
  if (r.has('clusterHeader')) unsupported(r, 'clusterHeader', 'not supported (name the cluster)');
  r.ignore('traceSampled', 'disableShadowHostSuffixAppend');
  r.done();
  return cluster === undefined ? undefined : { cluster, fraction };
}

/** The `@type` of an Any, without the type.googleapis.com/ prefix. */
function anyTypeOf(v: Record<string, unknown>): string | undefined {
  const t = v['@type'];
  return typeof t === 'string' ? t.replace(/^type\.googleapis\.com\//, '') : undefined;
}

/** extensions.filters.http.fault.v3.HTTPFault. */
export function readHttpFault(json: unknown, path: string, issues: Issues): FaultSpec | undefined {
  const r = FieldReader.of(json, path, issues);
  if (!r) return undefined;
  const before = issues.errors.length;
  r.ignore('@type');
  let delay: FaultSpec['delay'];
  const d = r.obj('delay');
  if (d) {
    const which = d.oneOf(['fixedDelay', 'headerDelay'], { required: true });
    if (which === 'headerDelay') unsupported(d, 'headerDelay', 'not supported (header-controlled faults)');
    const ms = d.duration('fixedDelay');
    const fraction = readFraction(d, 'percentage') ?? 1;
    d.done();
    if (ms !== undefined) delay = { ms, fraction };
  }
  let abort: FaultAbortSpec | undefined;
  const a = r.obj('abort');
  if (a) {
    const which = a.oneOf(['httpStatus', 'grpcStatus', 'headerAbort'], { required: true });
    const fraction = readFraction(a, 'percentage') ?? 1;
    if (which === 'httpStatus') {
      const status = a.uint('httpStatus', { min: 200, max: 599 });
      if (status !== undefined) abort = { kind: 'http', status, fraction };
    } else if (which === 'grpcStatus') {
      const code = a.uint('grpcStatus', { min: 1, max: 16 });
      if (code !== undefined) abort = { kind: 'grpc', code, fraction };
    } else if (which === 'headerAbort') {
      unsupported(a, 'headerAbort', 'not supported (header-controlled faults)');
    }
    a.done();
  }
  const maxActiveFaults = r.uint('maxActiveFaults');
  for (const k of ['upstreamCluster', 'headers', 'downstreamNodes', 'responseRateLimit', 'delayPercentRuntime', 'abortPercentRuntime', 'delayDurationRuntime', 'abortHttpStatusRuntime', 'maxActiveFaultsRuntime', 'responseRateLimitPercentRuntime', 'abortGrpcStatusRuntime', 'filterMetadata']) {
    if (r.has(k)) unsupported(r, k, 'not supported by Trellis (docs/resilience.md)');
  }
  r.ignore('disableDownstreamClusterStats');
  r.done();
  if (issues.errors.length > before) return undefined;
  return { ...(delay ? { delay } : {}), ...(abort ? { abort } : {}), ...(maxActiveFaults !== undefined ? { maxActiveFaults } : {}) };
}

function readTokenBucket(r: FieldReader, key: string, required: boolean): TokenBucketSpec | undefined {
  const b = r.obj(key, { required });
  if (!b) return undefined;
  const maxTokens = b.uint('maxTokens', { required: true, min: 1 });
  const tokensPerFill = b.uint('tokensPerFill', { min: 1 }) ?? 1;
  const fill = b.duration('fillInterval');
  if (fill === undefined) b.error('fillInterval', 'required');
  else if (fill < 1) b.error('fillInterval', 'must be at least 1ms');
  b.done();
  if (maxTokens === undefined || fill === undefined || fill < 1) return undefined;
  return { maxTokens, tokensPerFill, fillIntervalMs: fill };
}

/** The caller descriptor key: see docs/resilience.md. */
export const CALLER_DESCRIPTOR_KEY = 'trellis.caller';

/** extensions.filters.http.local_ratelimit.v3.LocalRateLimit (subset). */
export function readLocalRateLimit(json: unknown, path: string, issues: Issues): LocalRateLimitSpec | undefined {
  const r = FieldReader.of(json, path, issues);
  if (!r) return undefined;
  const before = issues.errors.length;
  r.ignore('@type');
  const statPrefix = r.str('statPrefix', { required: true }) ?? '';
  const tokenBucket = readTokenBucket(r, 'tokenBucket', false);
  const callers: CallerLimitSpec[] = [];
  for (const d of r.objList('descriptors')) {
    const entries = d.objList('entries', { required: true, nonEmpty: true });
    let caller: string | undefined;
    entries.forEach((e) => {
      const key = e.str('key', { required: true });
      const value = e.str('value') ?? '';
      e.done();
      if (key !== undefined && key !== CALLER_DESCRIPTOR_KEY) e.error('key', `only "${CALLER_DESCRIPTOR_KEY}" is supported (a caller's identity; value "*" = each caller)`);
      else caller = value === '' ? '*' : value;
    });
    if (entries.length > 1) d.error('entries', 'exactly one entry is supported');
    const tb = readTokenBucket(d, 'tokenBucket', true);
    d.done();
    if (caller !== undefined && tb) callers.push({ caller, tokenBucket: tb });
  }
  let status = 429;
  const s = r.obj('status');
  if (s) {
    status = s.uint('code', { required: true, min: 400, max: 599 }) ?? 429;
    s.done();
  }
  const enabled = readRuntimeFraction(r, 'filterEnabled');
  const enforced = readRuntimeFraction(r, 'filterEnforced');
  for (const k of ['requestHeadersToAddWhenNotEnforced', 'responseHeadersToAdd', 'stage', 'localRateLimitPerDownstreamConnection', 'rateLimitedAsResourceExhausted', 'localClusterRateLimit', 'vhRateLimits', 'alwaysConsumeDefaultTokenBucket']) {
    if (r.has(k)) unsupported(r, k, 'not supported by Trellis (docs/resilience.md)');
  }
  r.ignore('enableXRatelimitHeaders');
  r.done();
  if (!tokenBucket && callers.length === 0 && issues.errors.length === before) r.error('tokenBucket', 'required (or descriptors with a per-caller bucket)');
  if (issues.errors.length > before) return undefined;
  return {
    statPrefix,
    ...(tokenBucket ? { tokenBucket } : {}),
    callers,
    status,
    // Envoy: a route config without filterEnabled is not enabled; Trellis
    // enables and enforces by default (a config that names a bucket means it).
    enabled: enabled ?? 1,
    enforced: enforced ?? 1,
  };
}

/** The resilience fields of a route's extensions. `extensions.typedPerFilterConfig`
 * is a map<filter name, Any>; filters are recognised by `@type`. */
export function readRouteResilience(ext: Readonly<Record<string, unknown>> | undefined, path: string, issues: Issues): RouteResilience {
  if (!ext) return { mirrors: [] };
  let retry: RetryPolicySpec | undefined;
  if (ext.retryPolicy !== undefined) retry = readRetryPolicy(ext.retryPolicy, `${path}.retryPolicy`, issues);
  const mirrors: MirrorPolicySpec[] = [];
  if (Array.isArray(ext.requestMirrorPolicies)) {
    ext.requestMirrorPolicies.forEach((m, i) => {
      const spec = readMirrorPolicy(m, `${path}.requestMirrorPolicies[${i}]`, issues);
      if (spec) mirrors.push(spec);
    });
  }
  let fault: FaultSpec | undefined;
  let rateLimit: LocalRateLimitSpec | undefined;
  const tpfc = ext.typedPerFilterConfig;
  if (tpfc !== undefined) {
    if (!isPlainObject(tpfc)) issues.error(`${path}.typedPerFilterConfig`, 'must be a map of filter name to config');
    else {
      for (const [name, cfg] of Object.entries(tpfc)) {
        const at = `${path}.typedPerFilterConfig["${name}"]`;
        if (!isPlainObject(cfg)) {
          issues.error(at, 'must be an object with an @type');
          continue;
        }
        const t = anyTypeOf(cfg);
        if (t === FAULT_TYPE) fault = readHttpFault(cfg, at, issues);
        else if (t === LOCAL_RATE_LIMIT_TYPE) rateLimit = readLocalRateLimit(cfg, at, issues);
        else issues.warn(at, `filter config of type "${t ?? '(none)'}" is ignored (Trellis applies ${FAULT_TYPE} and ${LOCAL_RATE_LIMIT_TYPE} per route)`);
      }
    }
  }
  return { ...(retry ? { retry } : {}), mirrors, ...(fault ? { fault } : {}), ...(rateLimit ? { rateLimit } : {}) };
}

/** cluster.v3.OutlierDetection (consecutive 5xx and gateway failures). */
export function readOutlierDetection(json: unknown, path: string, issues: Issues): OutlierDetectionSpec | undefined {
  const r = FieldReader.of(json, path, issues);
  if (!r) return undefined;
  const before = issues.errors.length;
  const d = DEFAULT_OUTLIER;
  const spec: OutlierDetectionSpec = {
    consecutive5xx: r.uint('consecutive5xx', { min: 1 }) ?? d.consecutive5xx,
    consecutiveGatewayFailure: r.uint('consecutiveGatewayFailure', { min: 1 }) ?? d.consecutiveGatewayFailure,
    enforcingConsecutive5xx: r.uint('enforcingConsecutive5xx', { max: 100 }) ?? d.enforcingConsecutive5xx,
    enforcingConsecutiveGatewayFailure: r.uint('enforcingConsecutiveGatewayFailure', { max: 100 }) ?? d.enforcingConsecutiveGatewayFailure,
    intervalMs: r.duration('interval') ?? d.intervalMs,
    baseEjectionTimeMs: r.duration('baseEjectionTime') ?? d.baseEjectionTimeMs,
    maxEjectionTimeMs: 0,
    maxEjectionPercent: r.uint('maxEjectionPercent', { max: 100 }) ?? d.maxEjectionPercent,
  };
  const maxT = r.duration('maxEjectionTime') ?? Math.max(d.maxEjectionTimeMs, spec.baseEjectionTimeMs);
  if (maxT < spec.baseEjectionTimeMs) r.error('maxEjectionTime', 'must not be less than baseEjectionTime');
  if (spec.baseEjectionTimeMs <= 0) r.error('baseEjectionTime', 'must be greater than 0');
  // Success-rate and failure-percentage ejection are not implemented: say so
  // rather than silently not ejecting.
  for (const k of ['successRateMinimumHosts', 'successRateRequestVolume', 'successRateStdevFactor', 'enforcingSuccessRate',
    'failurePercentageThreshold', 'enforcingFailurePercentage', 'enforcingFailurePercentageLocalOrigin', 'failurePercentageMinimumHosts',
    'failurePercentageRequestVolume', 'splitExternalLocalOriginErrors', 'consecutiveLocalOriginFailure', 'enforcingConsecutiveLocalOriginFailure',
    'enforcingLocalOriginSuccessRate', 'maxEjectionTimeJitter', 'successfulActiveHealthCheckUnejectHost', 'monitors', 'alwaysEjectOneHost',
    'detectDegradedHosts']) {
    if (r.has(k)) unsupported(r, k, 'not supported by Trellis (consecutive 5xx / gateway failures only; docs/resilience.md)');
  }
  r.done();
  if (issues.errors.length > before) return undefined;
  return { ...spec, maxEjectionTimeMs: maxT };
}

/** core.v3.HealthCheck (HTTP and TCP checkers). */
export function readHealthCheck(json: unknown, path: string, issues: Issues): HealthCheckSpec | undefined {
  const r = FieldReader.of(json, path, issues);
  if (!r) return undefined;
  const before = issues.errors.length;
  const timeoutMs = r.duration('timeout');
  if (timeoutMs === undefined) r.error('timeout', 'required');
  const intervalMs = r.duration('interval');
  if (intervalMs === undefined) r.error('interval', 'required');
  else if (intervalMs < 1) r.error('interval', 'must be at least 1ms');
  const unhealthyThreshold = r.uint('unhealthyThreshold', { required: true, min: 1 });
  const healthyThreshold = r.uint('healthyThreshold', { required: true, min: 1 });
  const which = r.oneOf(['httpHealthCheck', 'tcpHealthCheck', 'grpcHealthCheck', 'customHealthCheck'], { required: true });
  let kind: 'http' | 'tcp' = 'tcp';
  let hcPath = '/';
  let host: string | undefined;
  const expected: [number, number][] = [];
  if (which === 'httpHealthCheck') {
    kind = 'http';
    const h = r.obj('httpHealthCheck');
    if (h) {
      hcPath = h.str('path', { required: true }) ?? '/';
      if (!hcPath.startsWith('/')) h.error('path', 'must start with "/"');
      host = h.str('host');
      for (const e of h.objList('expectedStatuses')) {
        const start = e.uint('start', { required: true, min: 100, max: 599 });
        const end = e.uint('end', { required: true, min: 101, max: 600 });
        e.done();
        if (start !== undefined && end !== undefined) {
          if (end <= start) e.error('end', 'must be greater than start');
          else expected.push([start, end]);
        }
      }
      for (const k of ['send', 'receive', 'requestHeadersToAdd', 'requestHeadersToRemove', 'retriableStatuses', 'responseBufferSize', 'method', 'codecClientType']) {
        if (h.has(k)) unsupported(h, k, 'not supported by Trellis (GET of path with expectedStatuses)');
      }
      h.ignore('serviceNameMatcher');
      h.done();
    }
  } else if (which === 'tcpHealthCheck') {
    const t = r.obj('tcpHealthCheck');
    if (t) {
      for (const k of ['send', 'receive']) if (t.has(k)) unsupported(t, k, 'not supported (TCP connect checks only)');
      t.done();
    }
  } else if (which) {
    unsupported(r, which, 'not supported (httpHealthCheck or tcpHealthCheck)');
  }
  r.ignore('intervalJitter', 'intervalJitterPercent', 'initialJitter', 'reuseConnection', 'noTrafficInterval', 'noTrafficHealthyInterval', 'unhealthyInterval', 'unhealthyEdgeInterval', 'healthyEdgeInterval', 'eventLogPath', 'alwaysLogHealthCheckFailures', 'alwaysLogHealthCheckSuccess', 'tlsOptions', 'transportSocketMatchCriteria', 'altPort', 'eventLogger', 'eventService');
  r.done();
  if (issues.errors.length > before) return undefined;
  return {
    kind,
    intervalMs: intervalMs!,
    timeoutMs: timeoutMs!,
    unhealthyThreshold: unhealthyThreshold!,
    healthyThreshold: healthyThreshold!,
    path: hcPath,
    ...(host !== undefined ? { host } : {}),
    expectedStatuses: expected.length > 0 ? expected : [[200, 201]],
  };
}

export function readClusterResilience(ext: Readonly<Record<string, unknown>> | undefined, path: string, issues: Issues): ClusterResilience {
  if (!ext) return { healthChecks: [] };
  const outlier = ext.outlierDetection === undefined ? undefined : readOutlierDetection(ext.outlierDetection, `${path}.outlierDetection`, issues);
  const healthChecks: HealthCheckSpec[] = [];
  if (Array.isArray(ext.healthChecks)) {
    ext.healthChecks.forEach((h, i) => {
      const spec = readHealthCheck(h, `${path}.healthChecks[${i}]`, issues);
      if (spec) healthChecks.push(spec);
    });
  }
  let retryBudget: ClusterResilience['retryBudget'];
  if (ext.trellisRetryBudget !== undefined) retryBudget = readRetryBudget(ext.trellisRetryBudget, `${path}.metadata.filterMetadata.trellis.retryBudget`, issues);
  return { ...(outlier ? { outlier } : {}), healthChecks, ...(retryBudget ? { retryBudget } : {}) };
}

/** {ratio, minRetriesPerSecond} (docs/resilience.md, "Retry budget"). */
function readRetryBudget(json: unknown, path: string, issues: Issues): ClusterResilience['retryBudget'] {
  if (!isPlainObject(json)) {
    issues.error(path, 'must be an object {ratio, minRetriesPerSecond}');
    return undefined;
  }
  const before = issues.errors.length;
  const num = (k: string, max: number): number | undefined => {
    const v = json[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > max) issues.error(`${path}.${k}`, `must be a number between 0 and ${max}`);
    else return v;
    return undefined;
  };
  const ratio = num('ratio', 100);
  const minRetriesPerSecond = num('minRetriesPerSecond', 1_000_000);
  for (const k of Object.keys(json)) if (k !== 'ratio' && k !== 'minRetriesPerSecond') issues.error(`${path}.${k}`, 'unknown field (supported: ratio, minRetriesPerSecond)');
  if (issues.errors.length > before) return undefined;
  return { ratio: ratio ?? 0.2, minRetriesPerSecond: minRetriesPerSecond ?? 10 };
}

/** Everything resilience-related in one config, read strictly. */
export interface ResiliencePlan {
  /** By RouteSpec identity (route specs are immutable and per config). */
  readonly routes: WeakMap<RouteSpec, RouteResilience>;
  readonly clusters: ReadonlyMap<string, ClusterResilience>;
  /** Whether any route of the config has each feature: a layer whose
   * feature no route uses is left out of the stack (no per-request work). */
  readonly uses: { readonly rateLimit: boolean; readonly fault: boolean; readonly mirror: boolean };
}

export type PlanResult = { ok: true; plan: ResiliencePlan; warnings: string[] } | { ok: false; errors: string[]; warnings: string[] };

/** Read every route's resilience fields of one route configuration
 * (`path` is the configuration's); a mirror naming an unknown cluster is a
 * warning (it may arrive later; such mirrors are dropped). */
export function readRouteConfigResilience(
  rc: RouteConfigSpec,
  path: string,
  clusters: ReadonlyMap<string, ClusterSpec>,
  issues: Issues,
  into?: WeakMap<RouteSpec, RouteResilience>,
): void {
  rc.virtualHosts.forEach((vh, v) => {
    vh.routes.forEach((route, i) => {
      if (route.action.kind !== 'route') return;
      const at = `${path}.virtualHosts[${v}].routes[${i}].route`;
      const rr = readRouteResilience(route.action.extensions, at, issues);
      for (const m of rr.mirrors) if (!clusters.has(m.cluster)) issues.warn(`${at}.requestMirrorPolicies`, `mirror cluster "${m.cluster}" is not defined; requests are not mirrored`);
      into?.set(route, rr);
    });
  });
}

export function planResilience(config: ProxyConfig): PlanResult {
  const issues = new Issues();
  const routes = new WeakMap<RouteSpec, RouteResilience>();
  for (const [name, rc] of config.routeConfigs) readRouteConfigResilience(rc, `routeConfigs["${name}"]`, config.clusters, issues, routes);
  const clusters = new Map<string, ClusterResilience>();
  for (const [name, spec] of config.clusters) clusters.set(name, readClusterResilience(spec.extensions, `clusters["${name}"]`, issues));
  if (issues.errors.length > 0) return { ok: false, errors: issues.errors.map(formatFieldError), warnings: issues.warnings };
  const uses = { rateLimit: false, fault: false, mirror: false };
  for (const rc of config.routeConfigs.values()) {
    for (const vh of rc.virtualHosts) {
      for (const route of vh.routes) {
        const rr = routes.get(route);
        if (rr === undefined) continue;
        if (rr.rateLimit) uses.rateLimit = true;
        if (rr.fault) uses.fault = true;
        if (rr.mirrors.length > 0) uses.mirror = true;
      }
    }
  }
  return { ok: true, plan: { routes, clusters, uses }, warnings: issues.warnings };
}

