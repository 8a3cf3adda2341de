// The router: the terminal HTTP layer of a listener's stack. It selects the
// route (route-match.ts), answers direct responses and redirects itself,
// otherwise mutates and rewrites the request, picks the weighted cluster,
// annotates the context for the layers below (balancer hash key, route
// extensions for retries/timeouts/mirroring) and hands the request to the
// cluster. Everything except createRouter is pure.
import type { HashPolicySpec, HeaderMutation, RouteActionSpec, RouteMatchSpec, WeightedCluster } from './config/types.ts';
import { ProxyError } from './errors.ts';
import type { Dispatch, ExchangeController, RequestContext, RequestHead, ResponseHandler, ResponseHead, HeaderList } from './http/exchange.ts';
import { applyHeaderMutations } from './header-mutation.ts';
import { headerValue, matchedPrefixLength, portOf, QueryLookup, selectRoute, stripPort, type RouteTable } from './route-match.ts';

/** Implemented by the cluster manager: one dispatch per cluster. */
export interface ClusterLookup {
  get(name: string): { dispatch: Dispatch } | undefined;
}

export interface RouterDeps {
  /** The current compiled route table by name (read per request, so a
   * config swap applies to the next request). */
  routeConfig(name: string): RouteTable | undefined;
  readonly clusters: ClusterLookup;
  /** Uniform [0, 1) source for weighted clusters; Math.random by default. */
  readonly random?: () => number;
  /** On-demand discovery: the request's host matched no virtual host of its
   * own (nothing, or only a catch-all "*"). Returns, when there is something
   * to ask, a promise of the router to continue with (the config in use once
   * the host is known, absent, or a deadline passed); the request waits for it. */
  readonly onDemand?: (routeConfigName: string, authority: string) => Promise<(routeConfigName: string) => Dispatch> | undefined;
}

export const ATTR_HASH_KEY = 'trellis.hashKey';
export const ATTR_ROUTE_SPEC = 'trellis.routeSpec';

type RouteAction = Extract<RouteActionSpec, { kind: 'route' }>;
type RedirectAction = Extract<RouteActionSpec, { kind: 'redirect' }>;
type DirectAction = Extract<RouteActionSpec, { kind: 'direct_response' }>;

export function createRouter(deps: RouterDeps): (routeConfigName: string) => Dispatch {
  const random = deps.random ?? Math.random;
  return (routeConfigName) =>
    function router(req, handler) {
      const table = deps.routeConfig(routeConfigName);
      if (!table) {
        handler.onError(new ProxyError('NO_ROUTE', `route configuration "${routeConfigName}" is not loaded`));
        return;
      }
      const sel = selectRoute(table, req.head);
      if (deps.onDemand !== undefined && (sel === null || sel.vhost === table.any?.spec)) {
        const held = deps.onDemand(routeConfigName, req.head.authority);
        if (held !== undefined) {
          held.then(
            (next) => next(routeConfigName)(req, handler),
            (err: unknown) => handler.onError(new ProxyError('NO_ROUTE', `on-demand discovery of "${req.head.authority}" failed: ${(err as Error).message}`)),
          );
          return;
        }
      }
      if (!sel) {
        // No request data in the message: it becomes the response body.
        handler.onError(new ProxyError('NO_ROUTE'));
        return;
      }
      const { route, compiled } = sel;
      const { ctx } = req;
      ctx.route = compiled.label;
      ctx.virtualHost = sel.vhost.name;
      ctx.attrs.set(ATTR_ROUTE_SPEC, route);
      const action = route.action;
      const respond = compiled.responseMutations.length > 0 ? withResponseMutations(handler, compiled.responseMutations) : handler;

      if (action.kind === 'direct_response') {
        sendLocal(respond, directResponse(action, req.head.authority));
        return;
      }
      if (action.kind === 'redirect') {
        sendLocal(respond, { head: redirectResponse(req.head, action, route.match) });
        return;
      }

      applyHeaderMutations(req.head.headers, compiled.requestMutations);
      rewritePath(req.head, action, route.match);
      const clusterName = pickWeightedCluster(action.clusters, random());
      ctx.cluster = clusterName;
      const key = computeHashKey(action.hashPolicy, req.head, ctx);
      if (key !== undefined) ctx.attrs.set(ATTR_HASH_KEY, key);
      if (action.timeoutMs !== undefined) {
        const d = ctx.startTime + action.timeoutMs;
        if (ctx.deadline === null || d < ctx.deadline) ctx.deadline = d;
      }
      const cluster = deps.clusters.get(clusterName);
      if (!cluster) {
        handler.onError(new ProxyError('NO_CLUSTER', `"${clusterName}"`));
        return;
      }
      cluster.dispatch(req, respond);
    };
}

const NOOP_CONTROLLER: ExchangeController = { resume() {}, abort() {} };

/** Answer from the proxy itself (direct response, redirect). */
function sendLocal(handler: ResponseHandler, res: { head: ResponseHead; body?: Buffer }): void {
  handler.onStart(NOOP_CONTROLLER);
  handler.onHeaders(res.head);
  if (res.body && res.body.length > 0) handler.onData(res.body);
  handler.onEnd(null);
}

function withResponseMutations(handler: ResponseHandler, mutations: readonly HeaderMutation[]): ResponseHandler {
  const wrapped: ResponseHandler = {
    onStart: (c) => handler.onStart(c),
    onHeaders: (head) => {
      applyHeaderMutations(head.headers, mutations);
      return handler.onHeaders(head);
    },
    onData: (chunk) => handler.onData(chunk),
    onEnd: (trailers) => handler.onEnd(trailers),
    onError: (err) => handler.onError(err),
  };
  if (handler.onInformational) wrapped.onInformational = (head) => handler.onInformational!(head);
  if (handler.onUpgrade) wrapped.onUpgrade = (head, upstream, upstreamHead) => handler.onUpgrade!(head, upstream, upstreamHead);
  return wrapped;
}

/** Weighted pick with a uniform `random01` in [0, 1). Zero-weight entries are
 * never picked while another has weight. */
export function pickWeightedCluster(clusters: readonly WeightedCluster[], random01: number): string {
  if (clusters.length === 1) return clusters[0]!.name;
  let total = 0;
  for (const c of clusters) total += c.weight;
  if (total <= 0) return clusters[0]!.name;
  let r = Math.min(Math.max(random01, 0), 0.9999999999) * total;
  for (const c of clusters) {
    if (r < c.weight) return c.name;
    r -= c.weight;
  }
  return clusters[clusters.length - 1]!.name;
}

/** The balancer's hash key: the values of the policies that produced one,
 * in order, joined with "\n"; a terminal policy that produced a value ends
 * the list. Undefined when no policy produced a value. */
export function computeHashKey(policies: readonly HashPolicySpec[], head: RequestHead, ctx: Pick<RequestContext, 'downstream'>): string | undefined {
  if (policies.length === 0) return undefined;
  let key: string | undefined;
  let query: QueryLookup | undefined;
  for (const p of policies) {
    let v: string | undefined;
    switch (p.kind) {
      case 'header':
        v = p.name !== undefined ? headerValue(head, p.name) : undefined;
        break;
      case 'cookie':
        v = p.name !== undefined ? cookieValue(head.headers, p.name) : undefined;
        break;
      case 'source_ip':
        v = ctx.downstream.remoteAddress || undefined;
        break;
      case 'query_parameter': {
        query ??= new QueryLookup(head.path, head.path.indexOf('?'));
        v = p.name !== undefined ? query.get(p.name) : undefined;
        break;
      }
    }
    if (v === undefined) continue;
    key = key === undefined ? v : `${key}\n${v}`;
    if (p.terminal) break;
  }
  return key;
}

export function cookieValue(headers: HeaderList, name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'cookie') continue;
    for (const part of headers[i + 1]!.split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
      const v = part.slice(eq + 1).trim();
      return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
    }
  }
  return undefined;
}

/** Prefix or regex rewrite of the path (query kept), and host rewrite of
 * the authority, in place. */
export function rewritePath(head: RequestHead, action: RouteAction, match: RouteMatchSpec): void {
  if (action.prefixRewrite !== undefined || action.regexRewrite) {
    const q = head.path.indexOf('?');
    const path = q < 0 ? head.path : head.path.slice(0, q);
    const query = q < 0 ? '' : head.path.slice(q);
    let next = path;
    if (action.prefixRewrite !== undefined) {
      next = action.prefixRewrite + path.slice(matchedPrefixLength(match, path));
    } else if (action.regexRewrite) {
      const { regex, substitution } = action.regexRewrite;
      next = path.replace(regex, (...m: unknown[]) => substituteGroups(substitution, m));
    }
    if (!next.startsWith('/')) next = `/${next}`;
    head.path = next + query;
  }
  if (action.hostRewrite !== undefined) head.authority = action.hostRewrite;
}

/** RE2-style substitution: "\1" is the first capture group, "\\" a backslash. */
function substituteGroups(substitution: string, m: unknown[]): string {
  return substitution.replace(/\\(\d|\\)/g, (_s, d: string) => {
    if (d === '\\') return '\\';
    const g = m[Number(d)];
    return typeof g === 'string' ? g : '';
  });
}

/** The redirect answer, with Location built as Envoy does: scheme, host,
 * port and path each replaced when configured, the query kept unless
 * stripped or replaced by a pathRedirect carrying one. */
export function redirectResponse(head: RequestHead, action: RedirectAction, match?: RouteMatchSpec): ResponseHead {
  const scheme = action.scheme ?? head.scheme;
  let host = action.host ?? head.authority;
  if (action.port !== undefined) {
    host = isDefaultPort(scheme, String(action.port)) ? stripPort(host) : `${stripPort(host)}:${action.port}`;
  } else if (scheme !== head.scheme) {
    const port = portOf(host);
    if (port !== undefined && (port === '80' || port === '443')) host = stripPort(host);
  }
  const q = head.path.indexOf('?');
  const reqPath = q < 0 ? head.path : head.path.slice(0, q);
  let query = q < 0 ? '' : head.path.slice(q);
  let path = reqPath;
  if (action.path !== undefined) {
    const pq = action.path.indexOf('?');
    if (pq >= 0) {
      path = action.path.slice(0, pq);
      query = action.path.slice(pq);
    } else {
      path = action.path;
    }
  } else if (action.prefixRewrite !== undefined) {
    path = action.prefixRewrite + reqPath.slice(match ? matchedPrefixLength(match, reqPath) : 0);
    if (!path.startsWith('/')) path = `/${path}`;
  }
  if (action.stripQuery && !(action.path?.includes('?') ?? false)) query = '';
  return { status: action.status, headers: ['location', `${scheme}://${host}${path}${query}`, 'content-length', '0'] };
}

function isDefaultPort(scheme: string, port: string): boolean {
  return (scheme === 'http' && port === '80') || (scheme === 'https' && port === '443');
}

/** `%REQ(:authority)%` in a direct response's body (Envoy's command
 * operator) becomes the request's authority, so one route can answer
 * "reviews:9999: service reviews has no port 9999" for any port asked. */
export const AUTHORITY_OPERATOR = '%REQ(:authority)%';

export function directResponse(action: DirectAction, authority = ''): { head: ResponseHead; body?: Buffer } {
  if (action.body === undefined) return { head: { status: action.status, headers: ['content-length', '0'] } };
  const text = action.body.includes(AUTHORITY_OPERATOR) ? action.body.split(AUTHORITY_OPERATOR).join(authority.replace(/[^\x21-\x7e]/g, '?').slice(0, 255)) : action.body;
  const body = Buffer.from(text);
  return { head: { status: action.status, headers: ['content-type', 'text/plain', 'content-length', String(body.length)] }, body };
}
