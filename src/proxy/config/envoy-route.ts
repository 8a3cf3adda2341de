// route.v3.RouteConfiguration -> RouteConfigSpec: virtual hosts, routes,
// matchers, actions and header mutations (the documented subset).
import type {
  HashPolicySpec,
  HeaderAppendAction,
  HeaderMatchSpec,
  HeaderMutation,
  RouteActionSpec,
  RouteConfigSpec,
  RouteMatchSpec,
  RouteSpec,
  StringMatch,
  VirtualHostSpec,
  WeightedCluster,
} from './types.ts';
import { FieldReader, isPlainObject, describe, camelizeDeep } from './field-reader.ts';
import { parseDuration } from './duration.ts';
import type { Issues } from './field-error.ts';
import { compileLinearRegex, linearRegexError } from '../../lib/linear-regex.ts';

export function readRouteConfiguration(json: unknown, path: string, issues: Issues, opts: { name?: string } = {}): RouteConfigSpec | undefined {
  const r = FieldReader.of(json, path, issues);
  if (!r) return undefined;
  const before = issues.errors.length;
  const written = r.str('name', { required: opts.name === undefined });
  const name = opts.name ?? written ?? '';
  if (name && opts.name === undefined) issues.resource = { path, name };

  const seenDomains = new Map<string, string>();
  const virtualHosts: VirtualHostSpec[] = [];
  for (const v of r.objList('virtualHosts')) {
    const vh = parseVirtualHost(v, seenDomains);
    if (vh) virtualHosts.push(vh);
  }
  const requestHeaders = parseMutation(r, 'request');
  const responseHeaders = parseMutation(r, 'response');
  r.ignore('validateClusters', 'internalOnlyHeaders', 'mostSpecificHeaderMutationsWins', 'maxDirectResponseBodySizeBytes', 'typedPerFilterConfig', 'metadata', 'ignorePortInHostMatching');
  r.done();
  if (issues.errors.length > before) return undefined;
  return {
    name,
    virtualHosts,
    ...(isEmptyMutation(requestHeaders) ? {} : { requestHeaders }),
    ...(isEmptyMutation(responseHeaders) ? {} : { responseHeaders }),
  };
}

function parseVirtualHost(r: FieldReader, seenDomains: Map<string, string>): VirtualHostSpec | undefined {
  const name = r.str('name', { required: true }) ?? '';
  const domains: string[] = [];
  for (const item of r.list('domains', { required: true, nonEmpty: true })) {
    if (typeof item.value !== 'string' || item.value === '') {
      r.issues.error(item.path, `must be a non-empty string (got ${describe(item.value)})`);
      continue;
    }
    const d = item.value.toLowerCase();
    const problem = domainProblem(d);
    if (problem) {
      r.issues.error(item.path, problem);
      continue;
    }
    const other = seenDomains.get(d);
    if (other !== undefined) {
      r.issues.error(item.path, `domain "${d}" is already used by virtual host "${other}"`);
      continue;
    }
    seenDomains.set(d, name);
    domains.push(d);
  }
  // Virtual-host retry and mirror policies apply to routes that set none.
  const vhExt: Record<string, unknown> = {};
  keepExtension(r, 'retryPolicy', vhExt, 'object');
  keepExtension(r, 'requestMirrorPolicies', vhExt, 'list');
  keepExtension(r, 'hedgePolicy', vhExt, 'object');
  // Per-filter configs (fault, local rate limit) apply to every route;
  // a route's own entry for the same filter replaces the virtual host's.
  keepExtension(r, 'typedPerFilterConfig', vhExt, 'object');
  const routes: RouteSpec[] = [];
  for (const rr of r.objList('routes')) {
    const route = parseRoute(rr, vhExt);
    if (route) routes.push(route);
  }
  const requestHeaders = parseMutation(r, 'request');
  const responseHeaders = parseMutation(r, 'response');
  r.ignore('virtualClusters', 'includeRequestAttemptCount', 'includeAttemptCountInResponse', 'metadata', 'perRequestBufferLimitBytes', 'includeIsTimeoutRetryHeader');
  r.done();
  return {
    name,
    domains,
    routes,
    ...(isEmptyMutation(requestHeaders) ? {} : { requestHeaders }),
    ...(isEmptyMutation(responseHeaders) ? {} : { responseHeaders }),
  };
}

/** Envoy's rules: "*" alone, a suffix wildcard "*.foo.com" / "*-bar.com", or
 * a prefix wildcard "foo.*"; no other "*". */
function domainProblem(d: string): string | undefined {
  if (d === '*') return undefined;
  const stars = d.split('*').length - 1;
  if (stars === 0) return undefined;
  if (stars === 1 && (d.startsWith('*') || d.endsWith('*'))) return undefined;
  return 'a wildcard is only allowed as "*", at the start ("*.foo.com") or at the end ("foo.*")';
}

function parseRoute(r: FieldReader, vhExt: Record<string, unknown>): RouteSpec | undefined {
  const name = r.str('name') ?? '';
  const mr = r.obj('match', { required: true });
  const match = mr ? parseRouteMatch(mr) : undefined;
  let action: RouteActionSpec | undefined;
  const which = r.oneOf(['route', 'redirect', 'directResponse'], { required: true });
  if (which === 'route') {
    const ar = r.obj('route');
    if (ar) action = parseRouteAction(ar, match, withRouteFilterConfigs(r, vhExt));
  } else if (which === 'redirect') {
    const ar = r.obj('redirect');
    if (ar) action = parseRedirect(ar, match);
  } else if (which === 'directResponse') {
    const ar = r.obj('directResponse');
    if (ar) action = parseDirectResponse(ar);
  }
  const requestHeaders = parseMutation(r, 'request');
  const responseHeaders = parseMutation(r, 'response');
  r.ignore('metadata', 'decorator', 'typedPerFilterConfig', 'tracing', 'statPrefix', 'perRequestBufferLimitBytes');
  r.done();
  if (!match || !action) return undefined;
  return { name, match, action, requestHeaders, responseHeaders };
}

// ---- match ----

function parseRouteMatch(r: FieldReader): RouteMatchSpec | undefined {
  const caseSensitive = r.bool('caseSensitive') ?? true;
  const ignoreCase = !caseSensitive;
  let path: StringMatch | undefined;
  const which = r.oneOf(['prefix', 'path', 'safeRegex', 'pathSeparatedPrefix', 'connectMatcher'], { required: true });
  let connect = false;
  if (which === 'connectMatcher') {
    r.obj('connectMatcher')?.done();
    connect = true;
  } else if (which === 'prefix') {
    const v = r.str('prefix');
    if (v !== undefined) path = { kind: 'prefix', value: v, ...(ignoreCase ? { ignoreCase } : {}) };
  } else if (which === 'path') {
    const v = r.str('path');
    if (v !== undefined) path = { kind: 'exact', value: v, ...(ignoreCase ? { ignoreCase } : {}) };
  } else if (which === 'pathSeparatedPrefix') {
    const v = r.str('pathSeparatedPrefix', { nonEmpty: true });
    if (v !== undefined) {
      if (/[?#]/.test(v) || v.endsWith('/')) r.error('pathSeparatedPrefix', 'must not contain "?" or "#" nor end with "/"');
      else path = { kind: 'prefix', value: v, separated: true, ...(ignoreCase ? { ignoreCase } : {}) };
    }
  } else if (which === 'safeRegex') {
    const rx = r.obj('safeRegex');
    if (rx) {
      // caseSensitive does not apply to regexes (as in Envoy).
      const m = parseRegexMatcher(rx);
      if (m) path = m;
    }
  }
  let method: string | undefined;
  const headers: HeaderMatchSpec[] = [];
  for (const h of r.objList('headers')) {
    const hm = parseHeaderMatcher(h);
    if (!hm) continue;
    // An exact, non-inverted ":method" match becomes the explicit method.
    if (hm.name === ':method' && hm.match.kind === 'exact' && !hm.invert && !hm.match.ignoreCase && method === undefined) {
      method = hm.match.value;
      continue;
    }
    headers.push(hm);
  }
  const queryParams: { name: string; match: StringMatch }[] = [];
  for (const q of r.objList('queryParameters')) {
    const name = q.str('name', { required: true });
    const w = q.oneOf(['stringMatch', 'presentMatch']);
    let match: StringMatch | undefined = { kind: 'present', present: true };
    if (w === 'stringMatch') {
      const sm = q.obj('stringMatch');
      match = sm ? parseStringMatcher(sm) : undefined;
    } else if (w === 'presentMatch') {
      const p = q.bool('presentMatch');
      if (p === false) q.error('presentMatch', 'must be true when set (Envoy has no "absent" query match)');
    }
    q.done();
    if (name !== undefined && match) queryParams.push({ name, match });
  }
  let grpc: boolean | undefined;
  const g = r.obj('grpc');
  if (g) {
    g.done();
    grpc = true;
  }
  r.done();
  if (!path && !connect) return undefined;
  return { ...(path ? { path } : {}), headers, queryParams, ...(method !== undefined ? { method } : {}), ...(grpc ? { grpc } : {}), ...(connect ? { connect } : {}) };
}

const HEADER_NAME_RE = /^:?[!#$%&'*+\-.^_`|~0-9a-z]+$/;

export function parseHeaderMatcher(r: FieldReader): HeaderMatchSpec | undefined {
  const rawName = r.str('name', { required: true });
  const name = rawName?.toLowerCase();
  if (name !== undefined && !HEADER_NAME_RE.test(name)) r.error('name', `is not a valid header name: ${JSON.stringify(rawName)}`);
  const invert = r.bool('invertMatch') ?? false;
  const which = r.oneOf(['exactMatch', 'safeRegexMatch', 'presentMatch', 'prefixMatch', 'suffixMatch', 'containsMatch', 'stringMatch']);
  let match: StringMatch | undefined;
  switch (which) {
    case undefined:
      match = { kind: 'present', present: true };
      break;
    case 'exactMatch':
    case 'prefixMatch':
    case 'suffixMatch':
    case 'containsMatch': {
      const v = r.str(which);
      const kind = which === 'exactMatch' ? 'exact' : which === 'prefixMatch' ? 'prefix' : which === 'suffixMatch' ? 'suffix' : 'contains';
      if (v !== undefined) match = { kind, value: v };
      break;
    }
    case 'presentMatch': {
      const p = r.bool('presentMatch');
      if (p !== undefined) match = { kind: 'present', present: p };
      break;
    }
    case 'safeRegexMatch': {
      const rx = r.obj('safeRegexMatch');
      if (rx) match = parseRegexMatcher(rx);
      break;
    }
    case 'stringMatch': {
      const sm = r.obj('stringMatch');
      if (sm) match = parseStringMatcher(sm);
      break;
    }
  }
  r.done();
  if (name === undefined || !match) return undefined;
  return invert ? { name, match, invert } : { name, match };
}

/** type.matcher.v3.StringMatcher. */
export function parseStringMatcher(r: FieldReader): StringMatch | undefined {
  const ignoreCase = r.bool('ignoreCase') ?? false;
  const which = r.oneOf(['exact', 'prefix', 'suffix', 'safeRegex', 'contains'], { required: true });
  let out: StringMatch | undefined;
  if (which === 'safeRegex') {
    const rx = r.obj('safeRegex');
    if (rx) out = parseRegexMatcher(rx);
  } else if (which !== undefined) {
    const v = r.str(which);
    if (v !== undefined) {
      if (which !== 'exact' && v === '') r.error(which, 'must not be empty');
      else out = { kind: which as 'exact' | 'prefix' | 'suffix' | 'contains', value: v, ...(ignoreCase ? { ignoreCase } : {}) };
    }
  }
  r.done();
  return out;
}

/** type.matcher.v3.RegexMatcher; the regex must match the whole input (RE2
 * semantics), compiled as an ECMAScript RegExp the linear-time engine can
 * run (src/lib/linear-regex.ts). */
function parseRegexMatcher(r: FieldReader): StringMatch | undefined {
  const src = r.str('regex', { required: true });
  r.ignore('googleRe2');
  r.done();
  if (src === undefined) return undefined;
  const regex = compileRegex(r, 'regex', src, '', true);
  return regex ? { kind: 'regex', value: src, regex } : undefined;
}

/** `src` checked for the linear engine (errors name the field), then
 * compiled, anchored to the whole input when `whole`. */
export function compileRegex(r: FieldReader, key: string, src: string, flags: string, whole: boolean): RegExp | undefined {
  const e = linearRegexError(src, flags);
  if (e !== null) {
    r.error(key, e);
    return undefined;
  }
  const c = compileLinearRegex(whole ? `^(?:${src})$` : src, flags);
  if (typeof c === 'string') {
    r.error(key, c);
    return undefined;
  }
  return c;
}

// ---- actions ----

function parseRouteAction(r: FieldReader, match: RouteMatchSpec | undefined, vhExt: Record<string, unknown>): RouteActionSpec | undefined {
  let clusters: WeightedCluster[] | undefined;
  const which = r.oneOf(['cluster', 'weightedClusters'], { required: true });
  if (which === 'cluster') {
    const c = r.str('cluster', { required: true });
    if (c !== undefined) clusters = [{ name: c, weight: 1 }];
  } else if (which === 'weightedClusters') {
    const w = r.obj('weightedClusters');
    if (w) clusters = parseWeightedClusters(w, 'clusters');
  }
  const timeout = r.duration('timeout');
  const prefixRewrite = r.str('prefixRewrite');
  let regexRewrite: { regex: RegExp; substitution: string } | undefined;
  const rr = r.obj('regexRewrite');
  if (rr) regexRewrite = parseRegexRewrite(rr);
  if (prefixRewrite !== undefined && rr) r.error('regexRewrite', 'cannot be combined with prefixRewrite');
  if (prefixRewrite !== undefined && match && match.path?.kind === 'regex') r.error('prefixRewrite', 'requires a prefix, path or pathSeparatedPrefix match (use regexRewrite with safeRegex)');
  const hostRewrite = r.str('hostRewriteLiteral', { nonEmpty: true });
  const hashPolicy: HashPolicySpec[] = [];
  for (const h of r.objList('hashPolicy')) {
    const hp = parseHashPolicy(h);
    if (hp) hashPolicy.push(hp);
  }
  const extensions: Record<string, unknown> = {};
  keepExtension(r, 'retryPolicy', extensions, 'object');
  keepExtension(r, 'requestMirrorPolicies', extensions, 'list');
  keepExtension(r, 'maxStreamDuration', extensions, 'object');
  keepExtension(r, 'hedgePolicy', extensions, 'object');
  keepExtension(r, 'idleTimeout', extensions, 'duration');
  keepExtension(r, 'maxGrpcTimeout', extensions, 'duration');
  keepExtension(r, 'grpcTimeoutOffset', extensions, 'duration');
  keepExtension(r, 'rateLimits', extensions, 'list');
  for (const [k, v] of Object.entries(vhExt)) if (!(k in extensions)) extensions[k] = v;
  r.ignore('upgradeConfigs', 'priority', 'clusterNotFoundResponseCode', 'includeVhRateLimits', 'appendXForwardedHost', 'cors');
  r.done();
  if (!clusters) return undefined;
  return {
    kind: 'route',
    clusters,
    ...(timeout !== undefined && timeout > 0 ? { timeoutMs: timeout } : {}),
    hashPolicy,
    ...(prefixRewrite !== undefined ? { prefixRewrite } : {}),
    ...(regexRewrite ? { regexRewrite } : {}),
    ...(hostRewrite !== undefined ? { hostRewrite } : {}),
    ...(Object.keys(extensions).length > 0 ? { extensions } : {}),
  };
}

/** route.v3.WeightedCluster / tcp_proxy's WeightedCluster: names and
 * non-negative integer weights summing to more than zero. */
export function parseWeightedClusters(r: FieldReader, key: string): WeightedCluster[] | undefined {
  const out: WeightedCluster[] = [];
  let total = 0;
  const items = r.objList(key, { required: true, nonEmpty: true });
  for (const c of items) {
    const name = c.str('name', { required: true });
    const weight = c.uint('weight', { required: true });
    c.ignore('metadataMatch');
    c.done();
    if (name !== undefined && weight !== undefined) {
      out.push({ name, weight });
      total += weight;
    }
  }
  r.ignore('totalWeight', 'runtimeKeyPrefix');
  r.done();
  if (out.length !== items.length) return undefined;
  if (out.length > 0 && total === 0) {
    r.error(key, 'the weights must not all be zero');
    return undefined;
  }
  return out.length > 0 ? out : undefined;
}

function parseRegexRewrite(r: FieldReader): { regex: RegExp; substitution: string } | undefined {
  const p = r.obj('pattern', { required: true });
  let regex: RegExp | undefined;
  if (p) {
    const src = p.str('regex', { required: true });
    p.ignore('googleRe2');
    p.done();
    if (src !== undefined) regex = compileRegex(p, 'regex', src, 'g', false);
  }
  const substitution = r.str('substitution');
  if (substitution === undefined && !r.has('substitution')) r.error('substitution', 'required');
  r.done();
  return regex ? { regex, substitution: substitution ?? '' } : undefined;
}

function parseHashPolicy(r: FieldReader): HashPolicySpec | undefined {
  const terminal = r.bool('terminal') ?? false;
  const which = r.oneOf(['header', 'cookie', 'connectionProperties', 'queryParameter'], { required: true });
  let out: HashPolicySpec | undefined;
  const t = terminal ? { terminal } : {};
  if (which === 'header') {
    const h = r.obj('header');
    const n = h?.str('headerName', { required: true });
    h?.done();
    if (n !== undefined) out = { kind: 'header', name: n.toLowerCase(), ...t };
  } else if (which === 'cookie') {
    const c = r.obj('cookie');
    const n = c?.str('name', { required: true });
    if (c?.has('ttl')) c.error('ttl', 'generating cookies is not supported; hash only on an existing cookie');
    c?.ignore('path');
    c?.done();
    if (n !== undefined) out = { kind: 'cookie', name: n, ...t };
  } else if (which === 'connectionProperties') {
    const c = r.obj('connectionProperties');
    const s = c?.bool('sourceIp');
    c?.done();
    if (c && s !== true) c.error('sourceIp', 'must be true');
    else if (c) out = { kind: 'source_ip', ...t };
  } else if (which === 'queryParameter') {
    const q = r.obj('queryParameter');
    const n = q?.str('name', { required: true });
    q?.done();
    if (n !== undefined) out = { kind: 'query_parameter', name: n, ...t };
  }
  r.done();
  return out;
}

const REDIRECT_CODES: Record<string, number> = { MOVED_PERMANENTLY: 301, FOUND: 302, SEE_OTHER: 303, TEMPORARY_REDIRECT: 307, PERMANENT_REDIRECT: 308 };
const REDIRECT_NUMBERS = ['MOVED_PERMANENTLY', 'FOUND', 'SEE_OTHER', 'TEMPORARY_REDIRECT', 'PERMANENT_REDIRECT'];

function parseRedirect(r: FieldReader, match: RouteMatchSpec | undefined): RouteActionSpec | undefined {
  let scheme: string | undefined;
  const sw = r.oneOf(['httpsRedirect', 'schemeRedirect']);
  if (sw === 'httpsRedirect') {
    if (r.bool('httpsRedirect')) scheme = 'https';
  } else if (sw === 'schemeRedirect') {
    const s = r.str('schemeRedirect', { nonEmpty: true });
    if (s !== undefined) scheme = s.toLowerCase();
  }
  const host = r.str('hostRedirect', { nonEmpty: true });
  const port = r.uint('portRedirect', { max: 65535 });
  let path: string | undefined;
  let prefixRewrite: string | undefined;
  const pw = r.oneOf(['pathRedirect', 'prefixRewrite']);
  if (pw === 'pathRedirect') {
    path = r.str('pathRedirect');
    if (path !== undefined && !path.startsWith('/')) r.error('pathRedirect', 'must start with "/"');
  } else if (pw === 'prefixRewrite') {
    prefixRewrite = r.str('prefixRewrite');
    if (match?.path?.kind === 'regex') r.error('prefixRewrite', 'requires a prefix, path or pathSeparatedPrefix match');
  }
  const status = r.enumOf('responseCode', REDIRECT_CODES, REDIRECT_NUMBERS) ?? 301;
  const stripQuery = r.bool('stripQuery') ?? false;
  r.done();
  return {
    kind: 'redirect',
    status,
    ...(scheme !== undefined ? { scheme } : {}),
    ...(host !== undefined ? { host } : {}),
    ...(port !== undefined && port > 0 ? { port } : {}),
    ...(path !== undefined ? { path } : {}),
    ...(prefixRewrite !== undefined ? { prefixRewrite } : {}),
    ...(stripQuery ? { stripQuery } : {}),
  };
}

function parseDirectResponse(r: FieldReader): RouteActionSpec | undefined {
  const status = r.uint('status', { required: true, min: 200, max: 599 });
  let body: string | undefined;
  const b = r.obj('body');
  if (b) {
    const which = b.oneOf(['inlineString', 'inlineBytes'], { required: true });
    if (which === 'inlineString') body = b.str('inlineString');
    else if (which === 'inlineBytes') {
      const s = b.str('inlineBytes');
      if (s !== undefined) {
        if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(s)) b.error('inlineBytes', 'must be base64');
        else body = Buffer.from(s, 'base64').toString('utf8');
      }
    }
    b.done();
  }
  r.done();
  if (status === undefined) return undefined;
  return body !== undefined ? { kind: 'direct_response', status, body } : { kind: 'direct_response', status };
}

// ---- header mutations ----

const APPEND_ACTIONS: Record<string, HeaderAppendAction> = {
  APPEND_IF_EXISTS_OR_ADD: 'append_if_exists_or_add',
  ADD_IF_ABSENT: 'add_if_absent',
  OVERWRITE_IF_EXISTS_OR_ADD: 'overwrite_if_exists_or_add',
  OVERWRITE_IF_EXISTS: 'overwrite_if_exists',
};
const APPEND_NUMBERS = ['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS'];

/** `<dir>HeadersToAdd` and `<dir>HeadersToRemove` of a route, virtual host
 * or route configuration. */
function parseMutation(r: FieldReader, dir: 'request' | 'response'): HeaderMutation {
  const add: { name: string; value: string; append: boolean; action?: HeaderAppendAction }[] = [];
  for (const o of r.objList(`${dir}HeadersToAdd`)) {
    const h = o.obj('header', { required: true });
    let name: string | undefined;
    let value: string | undefined;
    if (h) {
      const key = h.str('key', { required: true });
      if (key !== undefined) name = checkMutableHeader(h, 'key', key);
      const v = h.str('value') ?? '';
      value = unescapeValue(h, 'value', v);
      if (h.has('rawValue')) h.error('rawValue', 'not supported; use value');
      h.done();
    }
    const w = o.oneOf(['append', 'appendAction']);
    let action: HeaderAppendAction = 'append_if_exists_or_add';
    if (w === 'append') action = o.bool('append') === false ? 'overwrite_if_exists_or_add' : 'append_if_exists_or_add';
    else if (w === 'appendAction') action = o.enumOf('appendAction', APPEND_ACTIONS, APPEND_NUMBERS) ?? action;
    o.ignore('keepEmptyValue');
    o.done();
    if (name !== undefined && value !== undefined) {
      const append = action === 'append_if_exists_or_add';
      add.push(action === 'append_if_exists_or_add' || action === 'overwrite_if_exists_or_add' ? { name, value, append } : { name, value, append, action });
    }
  }
  const remove: string[] = [];
  for (const item of r.list(`${dir}HeadersToRemove`)) {
    if (typeof item.value !== 'string' || item.value === '') {
      r.issues.error(item.path, `must be a non-empty string (got ${describe(item.value)})`);
      continue;
    }
    const n = item.value.toLowerCase();
    if (n.startsWith(':') || n === 'host') r.issues.error(item.path, `cannot remove ${JSON.stringify(n)}`);
    else remove.push(n);
  }
  return { add, remove };
}

function checkMutableHeader(r: FieldReader, key: string, name: string): string | undefined {
  const n = name.toLowerCase();
  if (!HEADER_NAME_RE.test(n) || n.startsWith(':')) {
    r.error(key, `is not a header name that can be set: ${JSON.stringify(name)}`);
    return undefined;
  }
  if (n === 'host') {
    r.error(key, 'cannot set "host" here; use route.hostRewriteLiteral');
    return undefined;
  }
  return n;
}

/** Envoy header values may hold %COMMAND% substitutions; Trellis supports
 * none, so a lone "%" is an error and "%%" is a literal "%". */
function unescapeValue(r: FieldReader, key: string, v: string): string | undefined {
  if (!v.includes('%')) return v;
  if (/%(?!%)/.test(v.replace(/%%/g, ''))) {
    r.error(key, 'substitution commands (%...%) are not supported; write "%%" for a literal "%"');
    return undefined;
  }
  return v.replace(/%%/g, '%');
}

export function isEmptyMutation(m: HeaderMutation | undefined): boolean {
  return m === undefined || (m.add.length === 0 && m.remove.length === 0);
}

// ---- extensions kept for later layers ----

/** The virtual host's inherited extensions with the route's own
 * `typedPerFilterConfig` entries laid over (read by envoy-resilience.ts). */
function withRouteFilterConfigs(r: FieldReader, vhExt: Record<string, unknown>): Record<string, unknown> {
  const own: Record<string, unknown> = {};
  keepExtension(r, 'typedPerFilterConfig', own, 'object');
  if (own.typedPerFilterConfig === undefined) return vhExt;
  const inherited = isPlainObject(vhExt.typedPerFilterConfig) ? vhExt.typedPerFilterConfig : {};
  return { ...vhExt, typedPerFilterConfig: { ...inherited, ...(own.typedPerFilterConfig as Record<string, unknown>) } };
}

/** Keep `key` verbatim for later layers (resilience work), field names
 * normalised to lowerCamelCase, after checking its shape. */
function keepExtension(r: FieldReader, key: string, into: Record<string, unknown>, shape: 'object' | 'list' | 'duration'): void {
  const v = r.raw(key);
  if (v === undefined) return;
  if (shape === 'object' && !isPlainObject(v)) {
    r.error(key, `must be an object (got ${describe(v)})`);
    return;
  }
  if (shape === 'list') {
    if (!Array.isArray(v)) {
      r.error(key, `must be a list (got ${describe(v)})`);
      return;
    }
    let ok = true;
    v.forEach((item, i) => {
      if (!isPlainObject(item)) {
        r.issues.error(`${r.at(key)}[${i}]`, `must be an object (got ${describe(item)})`);
        ok = false;
      }
    });
    if (!ok) return;
  }
  if (shape === 'duration') {
    const d = parseDuration(v);
    if (!d.ok) {
      r.error(key, d.message);
      return;
    }
  }
  into[key] = camelizeDeep(v);
}
