// What a proxyless gRPC client gets: the routes and clusters a Trellis proxy
// would get (http-routes.ts, policies.ts), rewritten into what gRPC's xDS
// clients read (gRFC A27/A28/A31/A42/A44/A50) and validate, per client kind.
// gRPC clients NACK what they cannot parse, so leaving a field in is not
// harmless; and a field a client ignores must not look applied. So, in one
// place:
//
//   Envoy form (Trellis proxy)          proxyless gRPC client
//   match.pathSeparatedPrefix /foo      two routes: path /foo, prefix /foo/
//   match.queryParameters               route left out (a call has no query)
//   route.timeout                       maxStreamDuration.maxStreamDuration
//   retryPolicy                         gRPC codes of retryOn only; no
//                                       perTryTimeout or retriableStatusCodes;
//                                       dropped when no gRPC code is left or
//                                       numRetries is 0 (C-core rejects 0)
//   hashPolicy                          header hashes only
//   header modifiers, mirrors,          removed (gRPC ignores them)
//   rewrites, fault (typedPerFilterConfig)
//   redirect / directResponse           kept: the client fails those calls
//   cluster lbPolicy                    kept where the client kind supports
//                                       it (GRPC_LB_POLICIES), else ROUND_ROBIN
//   healthChecks, zone-aware config     removed (no active health checks,
//                                       no zone awareness in gRPC)
//
// Every change that loses behaviour is a warning naming the route (or
// cluster) and the client kind; warnings reach the route's status and
// `trellis proxy-status` (docs/xds.md, "What gRPC clients read").
import type { GrpcClientKind, MeshState } from './model.ts';
import type { RouteWarning } from './http-routes.ts';

type Obj = Record<string, unknown>;

export interface Resources {
  listeners: object[];
  routes: object[];
  clusters: object[];
  endpoints: object[];
}

/** Cluster lb_policy values each client kind accepts (others are NACKed).
 * LEAST_REQUEST checked against the real clients (test/interop/): grpc-go
 * 1.85 takes it; grpc-js 1.14 ("unsupported lb_policy") and C-core 1.85
 * ("LB policy is not supported") NACK it. grpc-java: from its docs, untested. */
export const GRPC_LB_POLICIES: Readonly<Record<GrpcClientKind, ReadonlySet<string>>> = {
  'grpc-go': new Set(['ROUND_ROBIN', 'RING_HASH', 'LEAST_REQUEST']),
  'grpc-core': new Set(['ROUND_ROBIN', 'RING_HASH']),
  'grpc-js': new Set(['ROUND_ROBIN', 'RING_HASH']),
  'grpc-java': new Set(['ROUND_ROBIN', 'RING_HASH', 'LEAST_REQUEST']),
  grpc: new Set(['ROUND_ROBIN', 'RING_HASH']),
};

export const CLIENT_NAMES: Readonly<Record<GrpcClientKind, string>> = {
  'grpc-go': 'grpc-go', 'grpc-core': 'gRPC C-core', 'grpc-js': 'grpc-js', 'grpc-java': 'grpc-java', grpc: 'gRPC clients',
};

/** The client kind from the xDS node's user agent (`gRPC Go`, `gRPC C-core ...`, `gRPC Node Pure JS`, `gRPC Java`). */
export function grpcClientKind(userAgentName: string): GrpcClientKind {
  const ua = userAgentName.toLowerCase();
  if (ua.includes('grpc go')) return 'grpc-go';
  if (ua.includes('c-core')) return 'grpc-core';
  if (ua.includes('node') || ua.includes('grpc-js')) return 'grpc-js';
  if (ua.includes('java')) return 'grpc-java';
  return 'grpc';
}

const GRPC_RETRY_CODES = new Set(['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable']);
const IGNORED_ROUTE_FIELDS: readonly [string, string][] = [
  ['requestHeadersToAdd', 'request header changes'], ['requestHeadersToRemove', 'request header changes'],
  ['responseHeadersToAdd', 'response header changes'], ['responseHeadersToRemove', 'response header changes'],
];
const IGNORED_ACTION_FIELDS: readonly [string, string][] = [
  ['requestMirrorPolicies', 'RequestMirror'], ['prefixRewrite', 'URLRewrite'], ['regexRewrite', 'URLRewrite'], ['hostRewriteLiteral', 'URLRewrite'],
];

/** "ns/name/rule-0/match-1[/fault]" -> "HTTPRoute ns/name" (or GRPCRoute). */
function routeOwner(state: MeshState, routeName: string, vhost: string): string {
  const m = /^([^/]+)\/([^/]+)\/rule-\d+\/match-\d+/.exec(routeName);
  if (!m) return `Service ${vhost.replace(/^([^.]+)\.([^.]+)\.svc:\d+$/, '$2/$1')}`;
  const grpc = state.grpcRoutes.some((r) => (r.metadata.namespace ?? 'default') === m[1] && r.metadata.name === m[2]);
  return `${grpc ? 'GRPCRoute' : 'HTTPRoute'} ${m[1]}/${m[2]}`;
}

function adaptAction(a: Obj, warn: (m: string) => void): Obj {
  const out: Obj = { ...a };
  if (typeof out.timeout === 'string') {
    if (out.timeout !== '0s') out.maxStreamDuration = { maxStreamDuration: out.timeout };
    delete out.timeout;
  }
  const rp = out.retryPolicy as Obj | undefined;
  if (rp) {
    delete out.retryPolicy;
    const asked = String(rp.retryOn ?? '').split(',').filter((s) => s !== '');
    const codes = asked.filter((c) => GRPC_RETRY_CODES.has(c));
    const retries = typeof rp.numRetries === 'number' ? rp.numRetries : 1;
    if (rp.perTryTimeout !== undefined) warn('ignore per-try timeouts (timeouts.backendRequest, RetryPolicy perTryTimeout): gRPC has none');
    if (retries > 0 && codes.length === 0) warn(`do not retry on ${asked.join(', ') || 'these conditions'}: gRPC retries on status codes only (cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)`);
    else if (retries > 0) {
      const dropped = asked.filter((c) => !GRPC_RETRY_CODES.has(c));
      if (dropped.length > 0) warn(`retry on ${codes.join(', ')} only, not on ${dropped.join(', ')}`);
      out.retryPolicy = { retryOn: codes.join(','), numRetries: retries, ...(rp.retryBackOff ? { retryBackOff: rp.retryBackOff } : {}) };
    }
  }
  const hp = out.hashPolicy as Obj[] | undefined;
  if (hp) {
    const kept = hp.filter((h) => h.header !== undefined);
    if (kept.length < hp.length) warn('hash on headers only: cookie and source-address hashes fall back to a random ring position');
    if (kept.length > 0) out.hashPolicy = kept;
    else delete out.hashPolicy;
  }
  for (const [k, what] of IGNORED_ACTION_FIELDS) {
    if (out[k] === undefined) continue;
    delete out[k];
    warn(`ignore ${what}`);
  }
  return out;
}

function adaptRoute(r: Obj, warn: (m: string) => void): Obj[] {
  const match = (r.match as Obj | undefined) ?? {};
  if (match.queryParameters !== undefined) {
    warn('cannot match query parameters (a gRPC call has none): the match is left out of their routes');
    return [];
  }
  const out: Obj = { ...r };
  for (const [k, what] of IGNORED_ROUTE_FIELDS) {
    if (out[k] === undefined) continue;
    delete out[k];
    warn(`ignore ${what}`);
  }
  if (out.typedPerFilterConfig !== undefined) {
    delete out.typedPerFilterConfig;
    warn('ignore FaultInjectionPolicy and other per-route filter settings');
  }
  if (out.redirect !== undefined || out.directResponse !== undefined) warn('fail calls on a route that redirects or answers directly (UNAVAILABLE)');
  if (out.route) out.route = adaptAction(out.route as Obj, warn);
  if (typeof match.pathSeparatedPrefix === 'string') {
    const { pathSeparatedPrefix: p, ...rest } = match;
    return [{ ...out, match: { ...rest, path: p } }, { ...out, name: `${String(r.name)}/1`, match: { ...rest, prefix: `${String(p)}/` } }];
  }
  return [out];
}

function adaptCluster(c: Obj, client: GrpcClientKind, warn: (m: string) => void): Obj {
  const out: Obj = { ...c };
  const lb = typeof out.lbPolicy === 'string' ? out.lbPolicy : 'ROUND_ROBIN';
  if (!GRPC_LB_POLICIES[client].has(lb)) {
    out.lbPolicy = 'ROUND_ROBIN';
    warn(`do not support lbPolicy ${lb}: round robin instead`);
  }
  if (out.healthChecks !== undefined) {
    delete out.healthChecks;
    warn('ignore HealthCheckPolicy (no active health checks in gRPC)');
  }
  if (out.commonLbConfig !== undefined) {
    delete out.commonLbConfig;
    warn('ignore locality.preferZone (no zone-aware balancing in gRPC; localities are weighted)');
  }
  return out;
}

/** The proxyless resources for one client kind, and the warnings for what it loses. */
export function forGrpcClient(state: MeshState, r: Resources, client: GrpcClientKind): { resources: Resources; warnings: RouteWarning[] } {
  const warnings: RouteWarning[] = [];
  const seen = new Set<string>();
  const warner = (route: string) => (m: string): void => {
    const message = `proxyless ${CLIENT_NAMES[client]}: ${m}`;
    const k = `${route}\u0000${message}`;
    if (seen.has(k)) return;
    seen.add(k);
    warnings.push({ route, message });
  };
  const routes = (r.routes as Obj[]).map((rc) => ({
    ...rc,
    virtualHosts: ((rc.virtualHosts as Obj[] | undefined) ?? []).map((vh) => ({
      ...vh,
      routes: ((vh.routes as Obj[] | undefined) ?? []).flatMap((route) => adaptRoute(route, warner(routeOwner(state, String(route.name ?? ''), String(vh.name))))),
    })),
  }));
  const clusters = (r.clusters as Obj[]).map((c) => adaptCluster(c, client, warner(`cluster ${String(c.name)}`)));
  return { resources: { ...r, routes, clusters }, warnings };
}
