// Route selection, pure: a RouteConfigSpec is compiled once per config into a
// RouteTable (lower-cased domains bucketed by kind, matchers as closures),
// then selectRoute picks the virtual host as Envoy does and the first route
// whose match holds.
import type { HeaderMutation, ProxyConfig, RouteConfigSpec, RouteMatchSpec, RouteSpec, StringMatch, VirtualHostSpec } from './config/types.ts';
import { getHeaderAll, type RequestHead } from './http/exchange.ts';

export interface CompiledRoute {
  readonly spec: RouteSpec;
  /** The route's name, or `<vhost>/<index>` when it has none (logs, metrics). */
  readonly label: string;
  readonly matches: (head: RequestHead, path: string, query: QueryLookup) => boolean;
  /** Route, then virtual host, then route configuration (Envoy's order:
   * the less specific level is applied last, so it wins on overwrite). */
  readonly requestMutations: readonly HeaderMutation[];
  readonly responseMutations: readonly HeaderMutation[];
}

export interface CompiledVirtualHost {
  readonly spec: VirtualHostSpec;
  readonly routes: readonly CompiledRoute[];
}

export interface RouteTable {
  readonly name: string;
  readonly spec: RouteConfigSpec;
  readonly exact: ReadonlyMap<string, CompiledVirtualHost>;
  /** "*.foo.com" as ".foo.com", longest first. */
  readonly suffixes: readonly { readonly suffix: string; readonly vhost: CompiledVirtualHost }[];
  /** "foo.*" as "foo.", longest first. */
  readonly prefixes: readonly { readonly prefix: string; readonly vhost: CompiledVirtualHost }[];
  readonly any: CompiledVirtualHost | undefined;
  /** Some domain names a port: try the authority with its port first. */
  readonly domainsWithPort: boolean;
}

export interface RouteSelection {
  readonly vhost: VirtualHostSpec;
  readonly route: RouteSpec;
  readonly compiled: CompiledRoute;
}

export function compileRouteTable(spec: RouteConfigSpec): RouteTable {
  const exact = new Map<string, CompiledVirtualHost>();
  const suffixes: { suffix: string; vhost: CompiledVirtualHost }[] = [];
  const prefixes: { prefix: string; vhost: CompiledVirtualHost }[] = [];
  let any: CompiledVirtualHost | undefined;
  let domainsWithPort = false;
  for (const vh of spec.virtualHosts) {
    const compiled: CompiledVirtualHost = {
      spec: vh,
      routes: vh.routes.map((r, i) => compileRoute(r, i, vh, spec)),
    };
    for (const raw of vh.domains) {
      const d = raw.toLowerCase();
      if (d === '*') any ??= compiled;
      else if (d.startsWith('*')) suffixes.push({ suffix: d.slice(1), vhost: compiled });
      else if (d.endsWith('*')) prefixes.push({ prefix: d.slice(0, -1), vhost: compiled });
      else if (!exact.has(d)) exact.set(d, compiled);
      if (d !== '*' && hasPort(d)) domainsWithPort = true;
    }
  }
  suffixes.sort((a, b) => b.suffix.length - a.suffix.length);
  prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
  return { name: spec.name, spec, exact, suffixes, prefixes, any, domainsWithPort };
}

/** One RouteTable per route configuration of a config (build at config swap). */
export function compileRouteTables(config: Pick<ProxyConfig, 'routeConfigs'>): Map<string, RouteTable> {
  const out = new Map<string, RouteTable>();
  for (const [name, rc] of config.routeConfigs) out.set(name, compileRouteTable(rc));
  return out;
}

export function selectVirtualHost(table: RouteTable, authority: string): CompiledVirtualHost | undefined {
  const host = authority.toLowerCase();
  if (table.domainsWithPort) {
    const withPort = matchDomain(table, host);
    if (withPort) return withPort;
  }
  return matchDomain(table, stripPort(host)) ?? table.any;
}

function matchDomain(table: RouteTable, host: string): CompiledVirtualHost | undefined {
  const e = table.exact.get(host);
  if (e) return e;
  for (const s of table.suffixes) if (host.length > s.suffix.length && host.endsWith(s.suffix)) return s.vhost;
  for (const p of table.prefixes) if (host.length > p.prefix.length && host.startsWith(p.prefix)) return p.vhost;
  return undefined;
}

export function selectRoute(table: RouteTable, head: RequestHead): RouteSelection | null {
  const vh = selectVirtualHost(table, head.authority);
  if (!vh) return null;
  const full = head.path;
  const q = full.indexOf('?');
  const path = q < 0 ? full : full.slice(0, q);
  const query = new QueryLookup(full, q);
  const routes = vh.routes;
  // CONNECT is matched by connectMatcher routes only, and they by nothing else.
  const connect = head.method === 'CONNECT';
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    if ((r.spec.match.connect === true) !== connect) continue;
    if (r.matches(head, path, query)) return { vhost: vh.spec, route: r.spec, compiled: r };
  }
  return null;
}

// ---- matchers ----

function compileRoute(spec: RouteSpec, index: number, vh: VirtualHostSpec, rc: RouteConfigSpec): CompiledRoute {
  const matches = compileRouteMatch(spec.match);
  const req = [spec.requestHeaders, vh.requestHeaders, rc.requestHeaders].filter(nonEmpty);
  const res = [spec.responseHeaders, vh.responseHeaders, rc.responseHeaders].filter(nonEmpty);
  return { spec, label: spec.name || `${vh.name}/${index}`, matches, requestMutations: req, responseMutations: res };
}

function nonEmpty(m: HeaderMutation | undefined): m is HeaderMutation {
  return m !== undefined && (m.add.length > 0 || m.remove.length > 0);
}

function compileRouteMatch(m: RouteMatchSpec): CompiledRoute['matches'] {
  const path = m.path ? compileStringMatch(m.path) : undefined;
  const method = m.method;
  const headers = m.headers.map((h) => {
    const test = compileStringMatch(h.match);
    const present = h.match.kind === 'present';
    const invert = h.invert === true;
    const read = headerReader(h.name);
    return (head: RequestHead): boolean => {
      const v = read(head);
      // Envoy: a missing header fails every value matcher, inverted or not.
      if (v === undefined && !present) return false;
      return test(v) !== invert;
    };
  });
  const query = m.queryParams.map((p) => {
    const test = compileStringMatch(p.match);
    const name = p.name;
    return (q: QueryLookup): boolean => test(q.get(name));
  });
  const grpc = m.grpc === true;
  const nh = headers.length;
  const nq = query.length;
  // The common shapes get closures without loops.
  if (nh === 0 && nq === 0 && !grpc) {
    if (path && method === undefined) return (_head, p) => path(p);
    if (!path && method === undefined) return () => true;
  }
  return (head, p, q) => {
    if (path !== undefined && !path(p)) return false;
    if (method !== undefined && head.method !== method) return false;
    for (let i = 0; i < nh; i++) if (!headers[i]!(head)) return false;
    for (let i = 0; i < nq; i++) if (!query[i]!(q)) return false;
    if (grpc && !(getHeaderAll(head.headers, 'content-type')[0] ?? '').startsWith('application/grpc')) return false;
    return true;
  };
}

/** A reader for one header name, resolved once: pseudo-headers and `host`
 * read the head, other names scan the list (repeats joined with ","). */
function headerReader(name: string): (head: RequestHead) => string | undefined {
  switch (name) {
    case ':authority':
    case 'host':
      return (head) => head.authority;
    case ':path':
      return (head) => head.path;
    case ':method':
      return (head) => head.method;
    case ':scheme':
      return (head) => head.scheme;
  }
  return (head) => listValue(head.headers, name);
}

function listValue(h: readonly string[], name: string): string | undefined {
  let out: string | undefined;
  for (let i = 0; i < h.length; i += 2) {
    if (h[i] === name) out = out === undefined ? h[i + 1]! : `${out},${h[i + 1]!}`;
  }
  return out;
}

/** A StringMatch as a predicate; `undefined` input means "absent". */
export function compileStringMatch(m: StringMatch): (v: string | undefined) => boolean {
  switch (m.kind) {
    case 'present':
      return (v) => (v !== undefined) === m.present;
    case 'regex': {
      const re = m.regex;
      return (v) => v !== undefined && re.test(v);
    }
    case 'exact':
    case 'prefix':
    case 'suffix':
    case 'contains': {
      // Specialised closures: this runs for every route tried on every request.
      const want = m.value;
      if (m.ignoreCase === true) {
        const lw = want.toLowerCase();
        if (m.kind === 'exact') return (v) => v !== undefined && v.length === lw.length && v.toLowerCase() === lw;
        if (m.kind === 'suffix') return (v) => v !== undefined && v.toLowerCase().endsWith(lw);
        if (m.kind === 'contains') return (v) => v !== undefined && v.toLowerCase().includes(lw);
        if (m.separated) return (v) => v !== undefined && separatedPrefix(v.toLowerCase(), lw);
        return (v) => v !== undefined && v.length >= lw.length && v.slice(0, lw.length).toLowerCase() === lw;
      }
      if (m.kind === 'exact') return (v) => v === want;
      if (m.kind === 'suffix') return (v) => v !== undefined && v.endsWith(want);
      if (m.kind === 'contains') return (v) => v !== undefined && v.includes(want);
      if (m.separated) return (v) => v !== undefined && separatedPrefix(v, want);
      return (v) => v !== undefined && v.startsWith(want);
    }
  }
}

function separatedPrefix(v: string, prefix: string): boolean {
  return v.startsWith(prefix) && (v.length === prefix.length || v.charCodeAt(prefix.length) === 47 /* / */);
}

export function matchString(m: StringMatch, v: string | undefined): boolean {
  return compileStringMatch(m)(v);
}

/** A request header for matching and hashing: pseudo-headers and `host`
 * read the head; repeated headers are joined with "," as Envoy does. */
export function headerValue(head: RequestHead, name: string): string | undefined {
  switch (name) {
    case ':authority':
    case 'host':
      return head.authority;
    case ':path':
      return head.path;
    case ':method':
      return head.method;
    case ':scheme':
      return head.scheme;
  }
  return listValue(head.headers, name);
}

/** Query parameters, parsed on first use. Values are matched as sent (not
 * percent-decoded), first occurrence wins, as Envoy does. */
export class QueryLookup {
  private readonly path: string;
  private readonly at: number;
  private parsed: Map<string, string> | undefined;

  /** `path` is the request target; `at` the index of its "?" (or -1). */
  constructor(path: string, at: number) {
    this.path = path;
    this.at = at;
  }

  get(name: string): string | undefined {
    if (this.parsed === undefined) {
      this.parsed = new Map();
      if (this.at < 0) return undefined;
      for (const part of this.path.slice(this.at + 1).split('&')) {
        if (part === '') continue;
        const eq = part.indexOf('=');
        const k = eq < 0 ? part : part.slice(0, eq);
        if (!this.parsed.has(k)) this.parsed.set(k, eq < 0 ? '' : part.slice(eq + 1));
      }
    }
    return this.parsed.get(name);
  }
}

export function hasPort(host: string): boolean {
  if (host.startsWith('[')) return host.includes(']:');
  return host.includes(':');
}

export function stripPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end < 0 ? host : host.slice(0, end + 1);
  }
  const c = host.lastIndexOf(':');
  return c < 0 ? host : host.slice(0, c);
}

/** The port in an authority, or undefined. */
export function portOf(host: string): string | undefined {
  if (!hasPort(host)) return undefined;
  return host.slice(host.lastIndexOf(':') + 1);
}

/** How many leading characters of `path` the route's path match consumed
 * (for prefix rewrites): the prefix for prefix matches, all of it for exact. */
export function matchedPrefixLength(match: RouteMatchSpec, path: string): number {
  const m = match.path;
  if (!m) return 0;
  if (m.kind === 'prefix') return Math.min(m.value.length, path.length);
  if (m.kind === 'exact') return path.length;
  return 0;
}
