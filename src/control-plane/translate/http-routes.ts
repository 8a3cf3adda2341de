// Gateway API HTTPRoute / GRPCRoute rules -> Envoy v3 Route entries, ordered
// by the Gateway API's precedence (Envoy matches first-to-last):
//   1. Exact path, 2. longest prefix (regex after prefixes: the spec leaves
//   it to implementations), 3. method match, 4. most header matches,
//   5. most query matches; then the oldest route, then namespace/name, then
//   rule and match order.
import type {
  BackendRef, GRPCRouteResource, HeaderModifier, HTTPRouteFilter, HTTPRouteMatch, HTTPRouteResource,
  MeshState, ParentRef, ServiceResource,
} from './model.ts';
import { nsOf } from './model.ts';
import { findService, serviceClusterName } from './services.ts';

export interface RouteWarning {
  route: string;
  message: string;
}

/** Does this parentRef attach the route to (service, port)? */
export function attaches(ref: ParentRef, routeNs: string, svc: ServiceResource, port: number): boolean {
  if ((ref.kind ?? 'Service') !== 'Service') return false;
  if (ref.name !== svc.metadata.name) return false;
  if ((ref.namespace ?? routeNs) !== nsOf(svc.metadata)) return false;
  return ref.port === undefined || ref.port === port;
}

/** Gateway API durations ("10s", "500ms", "1h30m") -> Envoy JSON ("10s"). */
export function gatewayDuration(d: string): string | undefined {
  const re = /(\d+)(h|ms|m|s)/g;
  if (!/^(\d+(h|ms|m|s))+$/.test(d)) return undefined;
  let ms = 0;
  for (const m of d.matchAll(re)) {
    const n = Number(m[1]);
    ms += m[2] === 'h' ? n * 3_600_000 : m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1000 : n;
  }
  return `${ms / 1000}s`;
}

function headerOptions(mod: HeaderModifier | undefined): { add: object[]; remove: string[] } {
  const add: object[] = [];
  for (const h of mod?.set ?? []) add.push({ header: { key: h.name.toLowerCase(), value: h.value }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' });
  for (const h of mod?.add ?? []) add.push({ header: { key: h.name.toLowerCase(), value: h.value }, appendAction: 'APPEND_IF_EXISTS_OR_ADD' });
  return { add, remove: (mod?.remove ?? []).map((r) => r.toLowerCase()) };
}

interface Candidate {
  envoy: Record<string, unknown>;
  rank: [number, number, number, number, number];
  created: string;
  key: string;
  order: number;
}

function pathRank(m: HTTPRouteMatch | undefined): [number, number] {
  const p = m?.path;
  const type = p?.type ?? 'PathPrefix';
  const value = p?.value ?? '/';
  if (type === 'Exact') return [3, value.length];
  if (type === 'PathPrefix') return [2, value.length];
  return [1, value.length];
}

function pathMatch(m: HTTPRouteMatch | undefined): Record<string, unknown> {
  const p = m?.path;
  const type = p?.type ?? 'PathPrefix';
  const value = p?.value ?? '/';
  if (type === 'Exact') return { path: value };
  if (type === 'RegularExpression') return { safeRegex: { regex: value } };
  // Gateway API PathPrefix matches whole path elements: /foo matches /foo/bar, not /foobar.
  return value === '/' ? { prefix: '/' } : { pathSeparatedPrefix: value.replace(/\/+$/, '') };
}

function stringMatchers(list: { type?: string; name: string; value: string }[] | undefined, nameKey: 'name'): object[] {
  return (list ?? []).map((h) => ({
    [nameKey]: h.type === undefined || h.type === 'Exact' ? h.name.toLowerCase() : h.name.toLowerCase(),
    stringMatch: h.type === 'RegularExpression' ? { safeRegex: { regex: h.value } } : { exact: h.value },
  }));
}

export interface BackendResolution {
  cluster: string;
  weight: number;
}

function resolveBackend(state: MeshState, ref: BackendRef, routeNs: string, warn: (m: string) => void): BackendResolution | undefined {
  if ((ref.kind ?? 'Service') !== 'Service') {
    warn(`backendRef ${ref.name}: kind ${ref.kind} is not supported`);
    return undefined;
  }
  const ns = ref.namespace ?? routeNs;
  const svc = findService(state, ns, ref.name);
  if (!svc) {
    warn(`backendRef ${ns}/${ref.name}: service not found`);
    return undefined;
  }
  const port = ref.port ?? (svc.spec.ports.length === 1 ? svc.spec.ports[0]!.port : undefined);
  if (port === undefined || !svc.spec.ports.some((p) => p.port === port)) {
    warn(`backendRef ${ns}/${ref.name}: port ${ref.port ?? '(unset)'} is not a port of the service`);
    return undefined;
  }
  return { cluster: serviceClusterName(ns, ref.name, port), weight: ref.weight ?? 1 };
}

/** The Envoy `route` action for a list of backendRefs. */
function routeAction(backends: BackendResolution[]): Record<string, unknown> | undefined {
  const live = backends.filter((b) => b.weight > 0);
  if (live.length === 0) return undefined;
  if (live.length === 1) return { cluster: live[0]!.cluster };
  // totalWeight: gRPC C-core NACKs a split whose weights do not add up to
  // it (its default is 100); Envoy and Trellis proxies take the sum anyway.
  const clusters = live.map((b) => ({ name: b.cluster, weight: b.weight }));
  return { weightedClusters: { clusters, totalWeight: clusters.reduce((n, c) => n + c.weight, 0) } };
}

interface RuleParts {
  matches: HTTPRouteMatch[];
  filters: HTTPRouteFilter[];
  backends: BackendResolution[];
  hadBackendRefs: boolean;
  timeouts?: { request?: string; backendRequest?: string };
  grpc: boolean;
}

function applyFilters(parts: RuleParts, match: HTTPRouteMatch | undefined, state: MeshState, routeNs: string, warn: (m: string) => void): Record<string, unknown> {
  const route: Record<string, unknown> = {};
  const reqAdd: object[] = [];
  const reqRemove: string[] = [];
  const resAdd: object[] = [];
  const resRemove: string[] = [];
  let redirect: Record<string, unknown> | undefined;
  const action: Record<string, unknown> = {};
  const mirrors: object[] = [];
  for (const f of parts.filters) {
    switch (f.type) {
      case 'RequestHeaderModifier': {
        const o = headerOptions(f.requestHeaderModifier);
        reqAdd.push(...o.add);
        reqRemove.push(...o.remove);
        break;
      }
      case 'ResponseHeaderModifier': {
        const o = headerOptions(f.responseHeaderModifier);
        resAdd.push(...o.add);
        resRemove.push(...o.remove);
        break;
      }
      case 'RequestRedirect': {
        const r = f.requestRedirect ?? {};
        redirect = {};
        if (r.scheme) redirect.schemeRedirect = r.scheme;
        if (r.hostname) redirect.hostRedirect = r.hostname;
        if (r.port) redirect.portRedirect = r.port;
        if (r.path?.type === 'ReplaceFullPath') redirect.pathRedirect = r.path.replaceFullPath ?? '/';
        if (r.path?.type === 'ReplacePrefixMatch') redirect.prefixRewrite = r.path.replacePrefixMatch ?? '/';
        const codes: Record<number, string> = { 301: 'MOVED_PERMANENTLY', 302: 'FOUND', 303: 'SEE_OTHER', 307: 'TEMPORARY_REDIRECT', 308: 'PERMANENT_REDIRECT' };
        redirect.responseCode = codes[r.statusCode ?? 302] ?? 'FOUND';
        break;
      }
      case 'URLRewrite': {
        const r = f.urlRewrite ?? {};
        if (r.hostname) action.hostRewriteLiteral = r.hostname;
        if (r.path?.type === 'ReplacePrefixMatch') {
          const prefix = match?.path?.type === 'PathPrefix' || match?.path === undefined;
          if (prefix) action.prefixRewrite = r.path.replacePrefixMatch ?? '/';
          else warn('URLRewrite ReplacePrefixMatch needs a PathPrefix match');
        }
        if (r.path?.type === 'ReplaceFullPath') action.regexRewrite = { pattern: { regex: '^.*$' }, substitution: r.path.replaceFullPath ?? '/' };
        break;
      }
      case 'RequestMirror': {
        const m = f.requestMirror;
        if (!m) break;
        const b = resolveBackend(state, m.backendRef, routeNs, warn);
        if (!b) break;
        let percent = 100;
        if (m.percent !== undefined) percent = m.percent;
        else if (m.fraction) percent = (m.fraction.numerator / (m.fraction.denominator ?? 100)) * 100;
        mirrors.push({ cluster: b.cluster, runtimeFraction: { defaultValue: { numerator: Math.round(percent * 10_000), denominator: 'MILLION' } } });
        break;
      }
      default:
        warn(`filter ${f.type} is not supported`);
    }
  }
  if (reqAdd.length) route.requestHeadersToAdd = reqAdd;
  if (reqRemove.length) route.requestHeadersToRemove = reqRemove;
  if (resAdd.length) route.responseHeadersToAdd = resAdd;
  if (resRemove.length) route.responseHeadersToRemove = resRemove;
  if (redirect) {
    route.redirect = redirect;
    return route;
  }
  const target = routeAction(parts.backends);
  if (!target) {
    // Gateway API: a rule whose backends are all invalid or all weight 0 answers 500.
    route.directResponse = { status: parts.hadBackendRefs ? 500 : 500, body: { inlineString: 'no valid backend for this route\n' } };
    return route;
  }
  Object.assign(action, target);
  if (parts.timeouts?.request) {
    const d = gatewayDuration(parts.timeouts.request);
    if (d) action.timeout = d;
    else warn(`timeouts.request "${parts.timeouts.request}" is not a Gateway API duration`);
  }
  if (parts.timeouts?.backendRequest) {
    const d = gatewayDuration(parts.timeouts.backendRequest);
    if (d) action.retryPolicy = { perTryTimeout: d, numRetries: 0 };
  }
  if (mirrors.length) action.requestMirrorPolicies = mirrors;
  route.route = action;
  return route;
}

/** Envoy routes for one (service, port) virtual host, or undefined when no
 * route attaches (the caller then installs the default route). */
export function routesFor(
  state: MeshState,
  svc: ServiceResource,
  port: number,
  warnings: RouteWarning[],
): object[] | undefined {
  const candidates: Candidate[] = [];
  let attached = false;
  const httpLike: (HTTPRouteResource | GRPCRouteResource)[] = [...state.httpRoutes, ...state.grpcRoutes];
  for (const r of httpLike) {
    const routeNs = nsOf(r.metadata);
    if (!(r.spec.parentRefs ?? []).some((p) => attaches(p, routeNs, svc, port))) continue;
    attached = true;
    const isGrpc = state.grpcRoutes.includes(r as GRPCRouteResource);
    const routeKey = `${isGrpc ? 'GRPCRoute' : 'HTTPRoute'} ${routeNs}/${r.metadata.name}`;
    const warn = (message: string): void => {
      warnings.push({ route: routeKey, message });
    };
    const rules = r.spec.rules ?? [{}];
    rules.forEach((rule, ri) => {
      const backends = (rule.backendRefs ?? []).map((b) => resolveBackend(state, b, routeNs, warn)).filter((b): b is BackendResolution => b !== undefined);
      const matches: HTTPRouteMatch[] = isGrpc ? grpcMatches(rule as { matches?: { method?: { type?: string; service?: string; method?: string }; headers?: { type?: 'Exact' | 'RegularExpression'; name: string; value: string }[] }[] }) : ((rule as { matches?: HTTPRouteMatch[] }).matches ?? [{}]);
      const parts: RuleParts = {
        matches,
        filters: rule.filters ?? [],
        backends,
        hadBackendRefs: (rule.backendRefs ?? []).length > 0,
        timeouts: (rule as { timeouts?: { request?: string; backendRequest?: string } }).timeouts,
        grpc: isGrpc,
      };
      matches.forEach((m, mi) => {
        const match: Record<string, unknown> = pathMatch(m);
        const headers = stringMatchers(m.headers, 'name');
        if (m.method) headers.push({ name: ':method', stringMatch: { exact: m.method } });
        if (headers.length) match.headers = headers;
        const qp = (m.queryParams ?? []).map((q) => ({ name: q.name, stringMatch: q.type === 'RegularExpression' ? { safeRegex: { regex: q.value } } : { exact: q.value } }));
        if (qp.length) match.queryParameters = qp;
        if (isGrpc) match.grpc = {};
        const envoy: Record<string, unknown> = { name: `${routeNs}/${r.metadata.name}/rule-${ri}/match-${mi}`, match, ...applyFilters(parts, m, state, routeNs, warn) };
        const [pk, plen] = pathRank(m);
        candidates.push({
          envoy,
          rank: [pk, plen, m.method ? 1 : 0, (m.headers ?? []).length, (m.queryParams ?? []).length],
          created: r.metadata.creationTimestamp ?? '',
          key: `${routeNs}/${r.metadata.name}`,
          order: ri * 1000 + mi,
        });
      });
    });
  }
  if (!attached) return undefined;
  candidates.sort((a, b) => {
    for (let i = 0; i < 5; i++) if (a.rank[i] !== b.rank[i]) return b.rank[i]! - a.rank[i]!;
    if (a.created !== b.created) return a.created < b.created ? -1 : 1;
    if (a.key !== b.key) return a.key < b.key ? -1 : 1;
    return a.order - b.order;
  });
  return candidates.map((c) => c.envoy);
}

/** GRPCRoute method matches become exact or regex path matches on
 * `/<service>/<method>`. */
function grpcMatches(rule: { matches?: { method?: { type?: string; service?: string; method?: string }; headers?: { type?: 'Exact' | 'RegularExpression'; name: string; value: string }[] }[] }): HTTPRouteMatch[] {
  const ms = rule.matches ?? [{}];
  return ms.map((m) => {
    const out: HTTPRouteMatch = {};
    if (m.headers) out.headers = m.headers;
    const meth = m.method;
    if (meth && (meth.service || meth.method)) {
      if ((meth.type ?? 'Exact') === 'Exact' && meth.service && meth.method) out.path = { type: 'Exact', value: `/${meth.service}/${meth.method}` };
      else if ((meth.type ?? 'Exact') === 'Exact' && meth.service) out.path = { type: 'PathPrefix', value: `/${meth.service}` };
      else {
        const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        const svc = meth.service ? (meth.type === 'RegularExpression' ? meth.service : esc(meth.service)) : '[^/]+';
        const me = meth.method ? (meth.type === 'RegularExpression' ? meth.method : esc(meth.method)) : '[^/]+';
        out.path = { type: 'RegularExpression', value: `/${svc}/${me}` };
      }
    }
    return out;
  });
}

/** The route for a service port with no HTTPRoute attached: everything to the service itself. */
/** A CONNECT to the service port (HTTPS_PROXY / grpc_proxy clients): a TCP
 * tunnel to the service's endpoints, through the sidecars like any call. */
export function connectRoute(svc: ServiceResource, port: number): object {
  return {
    name: 'connect',
    match: { connectMatcher: {} },
    route: { cluster: serviceClusterName(nsOf(svc.metadata), svc.metadata.name, port), upgradeConfigs: [{ upgradeType: 'CONNECT', connectConfig: {} }] },
  };
}

export function defaultRoutes(svc: ServiceResource, port: number): object[] {
  return [{ name: 'default', match: { prefix: '/' }, route: { cluster: serviceClusterName(nsOf(svc.metadata), svc.metadata.name, port) } }];
}
