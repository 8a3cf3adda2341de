// Trellis traffic policies (src/api/policies.ts) -> the Envoy fields the
// proxy enforces (docs/resilience.md, docs/load-balancing.md):
//   route level (caller side, every sidecar's outbound routes for the target):
//     TimeoutPolicy -> route.timeout, retryPolicy.perTryTimeout
//     RetryPolicy -> route.retryPolicy; its budget -> metadata.filterMetadata.trellis.retryBudget
//       of the clusters those routes send to
//     FaultInjectionPolicy -> typedPerFilterConfig HTTPFault (header match: a copy of the route ahead of it)
//     LoadBalancerPolicy.hash -> route.hashPolicy
//   cluster level (the target service's clusters):
//     CircuitBreakerPolicy -> circuitBreakers.thresholds[DEFAULT]
//     OutlierDetectionPolicy -> outlierDetection; HealthCheckPolicy -> healthChecks
//     LoadBalancerPolicy -> metadata.filterMetadata.trellis.lbPolicy, commonLbConfig.zoneAwareLbConfig
//     TimeoutPolicy.idle -> HttpProtocolOptions.commonHttpProtocolOptions.idleTimeout
//   inbound (the target's own sidecars): RateLimitPolicy -> LocalRateLimit on
//     the inbound route; `global` becomes this proxy's share, rate / n, n =
//     the target's meshed workloads whose sidecar is connected now
//     (MeshState.connectedSidecars, from xDS connect/disconnect events;
//     without it, all meshed workloads in the registry).
// Precedence: a policy targeting the HTTPRoute beats one targeting a
// Service port (sectionName/port), which beats one targeting the Service;
// among equals the oldest wins (creationTimestamp, then namespace/name), as
// in Gateway API policy attachment; losers are reported as warnings.
// Pure: results for the shared part are memoised on the shared object.
import type {
  CircuitBreakerPolicySpec, FaultInjectionPolicySpec, HealthCheckPolicySpec, LoadBalancerPolicySpec, OutlierDetectionPolicySpec,
  PolicyKindName, PolicyTarget, RateLimitPolicySpec, RetryPolicySpec, TimeoutPolicySpec,
} from '../../api/policies.ts';
import type { Meta, MeshState, ProxyNode, ServiceResource } from './model.ts';
import { keyOf, nsOf } from './model.ts';
import type { RouteWarning } from './http-routes.ts';
import { gatewayDuration } from './http-routes.ts';
import { findService, isMeshed, nodeWorkload, selects, targetPortOf } from './services.ts';
import type { TranslationParts } from './translate.ts';

export const FAULT_FILTER = 'envoy.filters.http.fault';
export const RATE_LIMIT_FILTER = 'envoy.filters.http.local_ratelimit';
export const FAULT_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
export const LOCAL_RATE_LIMIT_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const HTTP_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

interface SpecOf {
  TimeoutPolicy: TimeoutPolicySpec;
  RetryPolicy: RetryPolicySpec;
  CircuitBreakerPolicy: CircuitBreakerPolicySpec;
  OutlierDetectionPolicy: OutlierDetectionPolicySpec;
  HealthCheckPolicy: HealthCheckPolicySpec;
  LoadBalancerPolicy: LoadBalancerPolicySpec;
  RateLimitPolicy: RateLimitPolicySpec;
  FaultInjectionPolicy: FaultInjectionPolicySpec;
}

export type PolicyResource = { [K in PolicyKindName]: { kind: K; metadata: Meta; spec: SpecOf[K] } }[PolicyKindName];

const KIND_SET: ReadonlySet<string> = new Set<PolicyKindName>([
  'TimeoutPolicy', 'RetryPolicy', 'CircuitBreakerPolicy', 'OutlierDetectionPolicy', 'HealthCheckPolicy', 'LoadBalancerPolicy', 'RateLimitPolicy', 'FaultInjectionPolicy',
]);

export function isPolicyKind(kind: string): kind is PolicyKindName {
  return KIND_SET.has(kind);
}

const LB_NAMES: Record<LoadBalancerPolicySpec['type'], string> = {
  peakEwma: 'peak_ewma', roundRobin: 'round_robin', weightedRoundRobin: 'weighted_round_robin', random: 'random', leastRequest: 'least_request', ringHash: 'ring_hash',
};

/** Envoy JSON duration from a Gateway API one ("500ms" -> "0.5s"). */
function dur(d: string): string {
  return gatewayDuration(d) ?? '0s';
}

// ---- selection ----

interface Index {
  /** "ns/name" of a Service or HTTPRoute -> its policies, oldest first. */
  services: Map<string, PolicyResource[]>;
  routes: Map<string, PolicyResource[]>;
}

const indexes = new WeakMap<MeshState, Index>();

function order(a: PolicyResource, b: PolicyResource): number {
  const ca = a.metadata.creationTimestamp ?? '';
  const cb = b.metadata.creationTimestamp ?? '';
  if (ca !== cb) return ca < cb ? -1 : 1;
  return keyOf(a.metadata).localeCompare(keyOf(b.metadata));
}

function indexOf(state: MeshState): Index {
  let ix = indexes.get(state);
  if (ix) return ix;
  ix = { services: new Map(), routes: new Map() };
  for (const p of [...(state.policies ?? [])].sort(order)) {
    const t = p.spec.targetRef as PolicyTarget;
    const m = t.kind === 'HTTPRoute' ? ix.routes : ix.services;
    const k = `${nsOf(p.metadata)}/${t.name}`;
    const list = m.get(k);
    if (list) list.push(p);
    else m.set(k, [p]);
  }
  indexes.set(state, ix);
  return ix;
}

/** Where a policy would apply: a service port, and the HTTPRoute a route came from. */
interface Site {
  svc: ServiceResource;
  port: number;
  routeKey?: string;
}

function portMatches(t: PolicyTarget, svc: ServiceResource, port: number): 0 | 1 | 2 {
  if (t.port !== undefined) return t.port === port ? 2 : 0;
  if (t.sectionName !== undefined) return svc.spec.ports.some((p) => p.port === port && p.name === t.sectionName) ? 2 : 0;
  return 1;
}

/** The winning policy of `kind` for a site (see the precedence at the top). */
function pick<K extends PolicyKindName>(state: MeshState, kind: K, site: Site, warn?: (m: string) => void): SpecOf[K] | undefined {
  const ix = indexOf(state);
  const candidates: PolicyResource[] = [];
  if (site.routeKey) candidates.push(...(ix.routes.get(site.routeKey) ?? []).filter((p) => p.kind === kind));
  if (candidates.length === 0) {
    const all = (ix.services.get(keyOf(site.svc.metadata)) ?? []).filter((p) => p.kind === kind);
    const specific = all.filter((p) => portMatches(p.spec.targetRef as PolicyTarget, site.svc, site.port) === 2);
    candidates.push(...(specific.length > 0 ? specific : all.filter((p) => portMatches(p.spec.targetRef as PolicyTarget, site.svc, site.port) === 1)));
  }
  const [win, ...rest] = candidates;
  if (win && warn) for (const r of rest) warn(`${kind} ${keyOf(r.metadata)} conflicts with the older ${keyOf(win.metadata)} and is not applied here`);
  return win?.spec as SpecOf[K] | undefined;
}

/** `name.ns.svc:port` -> the service and port. */
function serviceOfCluster(state: MeshState, cluster: string): { svc: ServiceResource; port: number } | undefined {
  const m = /^([^.]+)\.([^.]+)\.svc:(\d+)$/.exec(cluster);
  if (!m) return undefined;
  const svc = findService(state, m[2]!, m[1]!);
  return svc ? { svc, port: Number(m[3]) } : undefined;
}

// ---- cluster level ----

type Obj = Record<string, unknown>;

function clusterWithPolicies(state: MeshState, cluster: Obj, warnings: RouteWarning[], budgets: ReadonlyMap<string, Obj>): Obj {
  const budget = budgets.get(String(cluster.name));
  const site = serviceOfCluster(state, String(cluster.name));
  if (!site) return cluster;
  const warn = (message: string): void => {
    warnings.push({ route: `cluster ${String(cluster.name)}`, message });
  };
  const cb = pick(state, 'CircuitBreakerPolicy', site, warn);
  const od = pick(state, 'OutlierDetectionPolicy', site, warn);
  const hc = pick(state, 'HealthCheckPolicy', site, warn);
  const lb = pick(state, 'LoadBalancerPolicy', site, warn);
  const to = pick(state, 'TimeoutPolicy', site);
  if (!cb && !od && !hc && !lb && !to?.idle && !budget) return cluster;
  const out: Obj = { ...cluster };
  if (cb) {
    const t: Obj = { priority: 'DEFAULT' };
    for (const k of ['maxConnections', 'maxPendingRequests', 'maxRequests', 'maxRetries'] as const) if (cb[k] !== undefined) t[k] = cb[k];
    out.circuitBreakers = { thresholds: [t] };
  }
  if (od) {
    const o: Obj = {};
    if (od.consecutive5xx !== undefined) o.consecutive5xx = od.consecutive5xx;
    if (od.consecutiveGatewayErrors !== undefined) {
      o.consecutiveGatewayFailure = od.consecutiveGatewayErrors;
      o.enforcingConsecutiveGatewayFailure = 100;
    }
    if (od.interval) o.interval = dur(od.interval);
    if (od.baseEjectionTime) o.baseEjectionTime = dur(od.baseEjectionTime);
    if (od.maxEjectionTime) o.maxEjectionTime = dur(od.maxEjectionTime);
    if (od.maxEjectionPercent !== undefined) o.maxEjectionPercent = od.maxEjectionPercent;
    out.outlierDetection = o;
  }
  if (hc) {
    out.healthChecks = [{
      timeout: dur(hc.timeout),
      interval: dur(hc.interval),
      unhealthyThreshold: hc.unhealthyThreshold ?? 2,
      healthyThreshold: hc.healthyThreshold ?? 2,
      ...(hc.http
        ? { httpHealthCheck: { path: hc.http.path, expectedStatuses: (hc.http.expectedStatuses ?? [200]).map((s) => ({ start: s, end: s + 1 })) } }
        : { tcpHealthCheck: {} }),
    }];
  }
  if (lb || budget) {
    const md = (cluster.metadata as { filterMetadata?: Record<string, Obj> } | undefined) ?? {};
    const trellis = { ...(md.filterMetadata?.trellis ?? {}), ...(lb ? { lbPolicy: LB_NAMES[lb.type] } : {}), ...(budget ? { retryBudget: budget } : {}) };
    out.metadata = { ...md, filterMetadata: { ...(md.filterMetadata ?? {}), trellis } };
  }
  if (lb) {
    if (lb.type === 'ringHash') out.lbPolicy = 'RING_HASH';
    else if (lb.type === 'leastRequest') out.lbPolicy = 'LEAST_REQUEST';
    else if (lb.type === 'random') out.lbPolicy = 'RANDOM';
    if (lb.locality?.preferZone) out.commonLbConfig = { zoneAwareLbConfig: {} };
  }
  if (to?.idle) {
    const opts = (cluster.typedExtensionProtocolOptions as Record<string, Obj> | undefined) ?? {};
    const cur = opts[HTTP_OPTIONS] ?? { '@type': `type.googleapis.com/${HTTP_OPTIONS}`, explicitHttpConfig: { httpProtocolOptions: {} } };
    out.typedExtensionProtocolOptions = { ...opts, [HTTP_OPTIONS]: { ...cur, commonHttpProtocolOptions: { idleTimeout: dur(to.idle) } } };
  }
  return out;
}

// ---- route level ----

function clustersOf(action: Obj): string[] {
  if (typeof action.cluster === 'string') return [action.cluster];
  const wc = action.weightedClusters as { clusters?: { name: string }[] } | undefined;
  return (wc?.clusters ?? []).map((c) => c.name);
}

function faultConfig(f: FaultInjectionPolicySpec): Obj {
  const pct = (p: number): Obj => ({ numerator: Math.round(p * 10_000), denominator: 'MILLION' });
  const out: Obj = { '@type': FAULT_TYPE_URL };
  if (f.delay) out.delay = { fixedDelay: dur(f.delay.fixed), percentage: pct(f.delay.percent) };
  if (f.abort) {
    out.abort = f.abort.grpcStatus !== undefined
      ? { grpcStatus: f.abort.grpcStatus, percentage: pct(f.abort.percent) }
      : { httpStatus: f.abort.httpStatus, percentage: pct(f.abort.percent) };
  }
  return out;
}

/** One Envoy route with the route-level policies of its site; a fault with a
 * header match yields a copy of the route (with the match) ahead of it. */
function routeWithPolicies(state: MeshState, route: Obj, vhostSite: Site | undefined, warnings: RouteWarning[], budgets: Map<string, Obj>): Obj[] {
  const action = route.route as Obj | undefined;
  if (!action) return [route];
  const name = typeof route.name === 'string' ? route.name : '';
  const rm = /^([^/]+\/[^/]+)\/rule-\d+\/match-\d+$/.exec(name);
  const routeKey = rm?.[1];
  const backendSites = clustersOf(action).map((c) => serviceOfCluster(state, c)).filter((s): s is { svc: ServiceResource; port: number } => s !== undefined);
  const site: Site | undefined = vhostSite ? { ...vhostSite, ...(routeKey ? { routeKey } : {}) } : backendSites[0] ? { ...backendSites[0], ...(routeKey ? { routeKey } : {}) } : undefined;
  if (!site) return [route];
  const warn = (message: string): void => {
    warnings.push({ route: routeKey ? `HTTPRoute ${routeKey}` : `Service ${keyOf(site.svc.metadata)}`, message });
  };
  const to = pick(state, 'TimeoutPolicy', site, warn);
  const rp = pick(state, 'RetryPolicy', site, warn);
  const fp = pick(state, 'FaultInjectionPolicy', site, warn);
  let hash: LoadBalancerPolicySpec['hash'];
  for (const b of backendSites) {
    const lb = pick(state, 'LoadBalancerPolicy', b);
    if (lb?.type === 'ringHash' && lb.hash) {
      hash = lb.hash;
      break;
    }
  }
  if (!to && !rp && !fp && !hash) return [route];
  const a: Obj = { ...action };
  // The HTTPRoute's own `timeouts` (already in the action) win over a TimeoutPolicy.
  if (to?.request && a.timeout === undefined) a.timeout = dur(to.request);
  const existing = a.retryPolicy as Obj | undefined;
  const perTry = rp?.perTryTimeout ? dur(rp.perTryTimeout) : (existing?.perTryTimeout as string | undefined) ?? (to?.backendRequest ? dur(to.backendRequest) : undefined);
  if (rp?.budget) {
    const b = { ratio: rp.budget.ratio, ...(rp.budget.minRetriesPerSecond !== undefined ? { minRetriesPerSecond: rp.budget.minRetriesPerSecond } : {}) };
    for (const c of clustersOf(a)) if (!budgets.has(c)) budgets.set(c, b);
  }
  if (rp) {
    a.retryPolicy = {
      retryOn: (rp.retryOn ?? ['5xx', 'reset', 'connect-failure']).join(','),
      numRetries: rp.attempts,
      ...(perTry ? { perTryTimeout: perTry } : {}),
      ...(rp.backoff ? { retryBackOff: { baseInterval: dur(rp.backoff.baseInterval), ...(rp.backoff.maxInterval ? { maxInterval: dur(rp.backoff.maxInterval) } : {}) } } : {}),
      ...(rp.retriableStatusCodes?.length ? { retriableStatusCodes: rp.retriableStatusCodes } : {}),
    };
  } else if (perTry && !existing) {
    a.retryPolicy = { perTryTimeout: perTry, numRetries: 0 };
  }
  if (hash) {
    a.hashPolicy = [hash.header ? { header: { headerName: hash.header.toLowerCase() } } : hash.cookie ? { cookie: { name: hash.cookie } } : { connectionProperties: { sourceIp: true } }];
  }
  const base: Obj = { ...route, route: a };
  if (!fp) return [base];
  const tpfc = { ...((route.typedPerFilterConfig as Obj | undefined) ?? {}), [FAULT_FILTER]: faultConfig(fp) };
  if (!fp.match) return [{ ...base, typedPerFilterConfig: tpfc }];
  const match = { ...(route.match as Obj) };
  match.headers = [...((match.headers as object[] | undefined) ?? []), ...fp.match.headers.map((h) => ({ name: h.name.toLowerCase(), stringMatch: { exact: h.value } }))];
  return [{ ...base, name: `${name || 'route'}/fault`, match, typedPerFilterConfig: tpfc }, base];
}

function routeConfigWithPolicies(state: MeshState, rc: Obj, warnings: RouteWarning[], budgets: Map<string, Obj>): Obj {
  const vhosts = (rc.virtualHosts as Obj[] | undefined) ?? [];
  let changed = false;
  const out = vhosts.map((vh) => {
    const s = serviceOfCluster(state, String(vh.name));
    const routes = (vh.routes as Obj[] | undefined) ?? [];
    // A CONNECT tunnel is not a request: retry, timeout and fault policies stay off it.
    const next = routes.flatMap((r) => ((r.match as Obj | undefined)?.connectMatcher ? [r] : routeWithPolicies(state, r, s, warnings, budgets)));
    if (next.length === routes.length && next.every((r, i) => r === routes[i])) return vh;
    changed = true;
    return { ...vh, routes: next };
  });
  return changed ? { ...rc, virtualHosts: out } : rc;
}

// ---- inbound rate limits ----

function bucket(requests: number, interval: string, burst: number | undefined): Obj {
  return { maxTokens: burst ?? requests, tokensPerFill: requests, fillInterval: dur(interval) };
}

/** A proxy's share of a global rate: a bucket refilled smoothly (docs/policies.md). */
export function shareBucket(requestsPerSecond: number, burst: number | undefined, proxies: number): Obj {
  const n = Math.max(1, proxies);
  const share = requestsPerSecond / n;
  const maxTokens = Math.max(1, Math.ceil((burst ?? Math.max(1, requestsPerSecond / 10)) / n));
  if (share <= 1000) return { maxTokens, tokensPerFill: 1, fillInterval: `${Math.max(1, Math.round(1000 / share)) / 1000}s` };
  return { maxTokens: Math.max(maxTokens, Math.ceil(share / 1000)), tokensPerFill: Math.round(share / 1000), fillInterval: '0.001s' };
}

function rateLimitConfig(state: MeshState, svc: ServiceResource, rl: RateLimitPolicySpec): Obj | undefined {
  const out: Obj = { '@type': LOCAL_RATE_LIMIT_TYPE_URL, statPrefix: `${svc.metadata.name}.${nsOf(svc.metadata)}` };
  const l = rl.local;
  if (rl.global) {
    // The target's meshed workloads; with the control plane's view of
    // connections, only those whose sidecar is connected now.
    const conn = state.connectedSidecars;
    const n = state.workloads.filter((w) => w.healthy !== false && selects(svc, w) && isMeshed(w)
      && (conn === undefined || conn.has(`${w.namespace}/${w.name}`))).length;
    out.tokenBucket = shareBucket(rl.global.requestsPerSecond, rl.global.burst, n);
  } else if (l?.requests !== undefined && l.interval) {
    out.tokenBucket = bucket(l.requests, l.interval, l.burst);
  }
  const callers = l?.perCaller ?? [];
  if (callers.length > 0) {
    out.descriptors = callers.map((c) => ({ entries: [{ key: 'trellis.caller', value: c.caller }], tokenBucket: bucket(c.requests, c.interval, c.burst) }));
  }
  return out.tokenBucket || out.descriptors ? out : undefined;
}

/** The inbound HTTP route of one chain with the rate limit on it. */
function chainWithRateLimit(fc: Obj, rlCfg: Obj): Obj {
  return {
    ...fc,
    filters: ((fc.filters as Obj[] | undefined) ?? []).map((f) => {
      const tc = f.typedConfig as Obj | undefined;
      const rc = tc?.routeConfig as Obj | undefined;
      if (!tc || !rc) return f;
      const vhs = ((rc.virtualHosts as Obj[] | undefined) ?? []).map((vh) => ({
        ...vh,
        routes: ((vh.routes as Obj[] | undefined) ?? []).map((r) => ({ ...r, typedPerFilterConfig: { ...((r.typedPerFilterConfig as Obj | undefined) ?? {}), [RATE_LIMIT_FILTER]: rlCfg } })),
      }));
      return { ...f, typedConfig: { ...tc, routeConfig: { ...rc, virtualHosts: vhs } } };
    }),
  };
}

const INBOUND_PORT = /^inbound\|(\d+)$/;

/** Explicit mode: a listener `inbound|<port>` per app port. Transparent
 * capture: one `inbound` listener with a chain `inbound|<port>` per port. */
function inboundWithRateLimits(state: MeshState, node: ProxyNode, listeners: object[], warnings: RouteWarning[]): object[] {
  const me = nodeWorkload(state, node);
  if (!me || !(state.policies ?? []).some((p) => p.kind === 'RateLimitPolicy')) return listeners;
  const cache = new Map<number, Obj | undefined>();
  const configFor = (appPort: number): Obj | undefined => {
    if (cache.has(appPort)) return cache.get(appPort);
    let cfg: Obj | undefined;
    for (const svc of state.services) {
      if (!selects(svc, me)) continue;
      for (const sp of svc.spec.ports) {
        if (targetPortOf(sp, me)?.port !== appPort) continue;
        const rl = pick(state, 'RateLimitPolicy', { svc, port: sp.port }, (message) => warnings.push({ route: `Service ${keyOf(svc.metadata)}`, message }));
        if (rl && !cfg) cfg = rateLimitConfig(state, svc, rl);
      }
    }
    cache.set(appPort, cfg);
    return cfg;
  };
  return listeners.map((l) => {
    const lo = l as Obj;
    const chains = (lo.filterChains as Obj[] | undefined) ?? [];
    const m = INBOUND_PORT.exec(String(lo.name));
    if (m) {
      const cfg = configFor(Number(m[1]));
      return cfg ? { ...lo, filterChains: chains.map((fc) => chainWithRateLimit(fc, cfg)) } : l;
    }
    if (lo.trafficDirection !== 'INBOUND') return l;
    let changed = false;
    const next = chains.map((fc) => {
      const cm = INBOUND_PORT.exec(String(fc.name));
      const cfg = cm ? configFor(Number(cm[1])) : undefined;
      if (!cfg) return fc;
      changed = true;
      return chainWithRateLimit(fc, cfg);
    });
    return changed ? { ...lo, filterChains: next } : l;
  });
}

// ---- entry point ----

/** Does the state hold a global rate limit (whose shares follow connected sidecars)? */
export function needsConnectedSidecars(state: MeshState): boolean {
  return (state.policies ?? []).some((p) => p.kind === 'RateLimitPolicy' && p.spec.global !== undefined);
}

type Resources = TranslationParts['shared'];

const sharedDone = new WeakMap<Resources, { value: Resources; warnings: RouteWarning[] }>();

function withPolicies(state: MeshState, r: Resources, warnings: RouteWarning[]): Resources {
  // Routes first: a RetryPolicy's budget goes to the clusters its routes send to.
  const budgets = new Map<string, Obj>();
  const routes = r.routes.map((rc) => routeConfigWithPolicies(state, rc as Obj, warnings, budgets));
  return { ...r, routes, clusters: r.clusters.map((c) => clusterWithPolicies(state, c as Obj, warnings, budgets)) };
}

/** The translation with every traffic policy of the mesh state applied. */
export function applyPolicies(parts: TranslationParts, state: MeshState, node: ProxyNode): TranslationParts {
  if ((state.policies ?? []).length === 0) return parts;
  let hit = sharedDone.get(parts.shared);
  if (!hit) {
    const w: RouteWarning[] = [];
    hit = { value: withPolicies(state, parts.shared, w), warnings: w };
    sharedDone.set(parts.shared, hit);
  }
  const warnings = [...parts.warnings, ...hit.warnings];
  const own = withPolicies(state, parts.own, warnings);
  own.listeners = inboundWithRateLimits(state, node, own.listeners, warnings);
  return { ...parts, shared: hit.value, own, warnings };
}
