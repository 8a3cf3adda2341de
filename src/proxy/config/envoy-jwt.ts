// envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication (an HCM HTTP
// filter) -> JwtAuthnSpec, read strictly.
//
// Providers: issuer, audiences, localJwks (inlineString | filename) or
// remoteJwks (httpUri.uri fetched by the proxy itself over HTTPS or HTTP;
// `cluster` is accepted and not used), cacheDuration, forward,
// fromHeaders / fromParams (default: `Authorization: Bearer` and the
// `access_token` query parameter), payloadInMetadata, clockSkewSeconds
// (default 60), requireExpiration. Rules: match by path prefix / path /
// safeRegex, requires providerName | requiresAny | requiresAll |
// allowMissing | allowMissingOrFailed.
import type { StringMatch } from './types.ts';
import { FieldReader } from './field-reader.ts';
import { compileRegex } from './envoy-route.ts';

export const JWT_AUTHN_TYPE = 'envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';
export const JWT_AUTHN_FILTER_NAME = 'envoy.filters.http.jwt_authn';
export const DEFAULT_JWKS_CACHE_MS = 5 * 60_000;
export const DEFAULT_JWKS_TIMEOUT_MS = 5_000;
export const DEFAULT_CLOCK_SKEW_S = 60;

export type JwksSourceSpec =
  | { readonly kind: 'inline'; readonly json: string }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'remote'; readonly uri: string; readonly timeoutMs: number; readonly cacheMs: number };

export interface JwtProviderSpec {
  readonly name: string;
  readonly issuer?: string;
  readonly audiences: readonly string[];
  readonly jwks: JwksSourceSpec;
  /** Keep the token header when forwarding (Envoy `forward`, default false: stripped). */
  readonly forward: boolean;
  readonly fromHeaders: readonly { readonly name: string; readonly prefix: string }[];
  readonly fromParams: readonly string[];
  /** Key under which the verified payload goes into the filter's metadata. */
  readonly payloadInMetadata?: string;
  readonly clockSkewSeconds: number;
  readonly requireExpiration: boolean;
}

export type JwtRequirement =
  | { readonly kind: 'provider'; readonly name: string }
  | { readonly kind: 'any' | 'all'; readonly of: readonly JwtRequirement[] }
  | { readonly kind: 'allowMissing' }
  | { readonly kind: 'allowMissingOrFailed' };

export interface JwtRuleSpec {
  readonly match: StringMatch;
  /** Absent: no verification for matching requests. */
  readonly requires?: JwtRequirement;
}

export interface JwtAuthnSpec {
  readonly providers: ReadonlyMap<string, JwtProviderSpec>;
  readonly rules: readonly JwtRuleSpec[];
}

export function readJwtAuthn(r: FieldReader): JwtAuthnSpec | undefined {
  const before = r.issues.errors.length;
  const providers = new Map<string, JwtProviderSpec>();
  const rawProviders = r.struct('providers') ?? {};
  for (const name of Object.keys(rawProviders).sort()) {
    const pr = FieldReader.of(rawProviders[name], `${r.at('providers')}.${name}`, r.issues);
    const p = pr ? readProvider(pr, name) : undefined;
    if (p) providers.set(name, p);
  }
  const rules: JwtRuleSpec[] = [];
  for (const rr of r.objList('rules')) {
    const mr = rr.obj('match', { required: true });
    const match = mr ? readRouteMatch(mr) : undefined;
    let requires: JwtRequirement | undefined;
    const q = rr.obj('requires');
    if (q) requires = readRequirement(q, providers, 0);
    if (rr.has('requirementName')) rr.error('requirementName', 'not supported; use requires');
    rr.ignore('requirementName');
    rr.done();
    if (match) rules.push(requires ? { match, requires } : { match });
  }
  if (r.has('filterStateRules')) r.error('filterStateRules', 'not supported');
  if (r.has('requirementMap')) r.error('requirementMap', 'not supported');
  r.ignore('filterStateRules', 'requirementMap', 'bypassCorsPreflight', 'stripFailureResponse');
  r.done();
  return r.issues.errors.length > before ? undefined : { providers, rules };
}

function readProvider(r: FieldReader, name: string): JwtProviderSpec | undefined {
  const issuer = r.str('issuer', { nonEmpty: true });
  const audiences = r.strList('audiences');
  let jwks: JwksSourceSpec | undefined;
  const which = r.oneOf(['localJwks', 'remoteJwks'], { required: true });
  if (which === 'localJwks') {
    const l = r.obj('localJwks');
    if (l) {
      const w = l.oneOf(['inlineString', 'filename'], { required: true });
      if (w === 'inlineString') {
        const s = l.str('inlineString', { required: true });
        if (s !== undefined) jwks = { kind: 'inline', json: s };
      } else if (w === 'filename') {
        const s = l.str('filename', { required: true });
        if (s !== undefined) jwks = { kind: 'file', path: s };
      }
      if (l.has('inlineBytes') || l.has('environmentVariable')) l.error('inlineBytes', 'only inlineString and filename are supported');
      l.ignore('inlineBytes', 'environmentVariable', 'watchedDirectory');
      l.done();
    }
  } else if (which === 'remoteJwks') {
    const rj = r.obj('remoteJwks');
    if (rj) {
      const hu = rj.obj('httpUri', { required: true });
      let uri: string | undefined;
      let timeoutMs = DEFAULT_JWKS_TIMEOUT_MS;
      if (hu) {
        uri = hu.str('uri', { required: true });
        if (uri !== undefined && !/^https?:\/\/[^/]+/.test(uri)) hu.error('uri', `must be an http:// or https:// URL (got ${JSON.stringify(uri)})`);
        timeoutMs = hu.duration('timeout') ?? DEFAULT_JWKS_TIMEOUT_MS;
        hu.ignore('cluster');
        hu.done();
      }
      const cacheMs = rj.duration('cacheDuration') ?? DEFAULT_JWKS_CACHE_MS;
      rj.ignore('asyncFetch', 'retryPolicy');
      rj.done();
      if (uri !== undefined && /^https?:\/\/[^/]+/.test(uri)) jwks = { kind: 'remote', uri, timeoutMs: timeoutMs > 0 ? timeoutMs : DEFAULT_JWKS_TIMEOUT_MS, cacheMs: cacheMs > 0 ? cacheMs : DEFAULT_JWKS_CACHE_MS };
    }
  }
  const forward = r.bool('forward') ?? false;
  const fromHeaders: { name: string; prefix: string }[] = [];
  for (const h of r.objList('fromHeaders')) {
    const n = h.str('name', { required: true });
    const prefix = h.str('valuePrefix') ?? '';
    h.done();
    if (n !== undefined) fromHeaders.push({ name: n.toLowerCase(), prefix });
  }
  const fromParams = r.strList('fromParams');
  const payloadInMetadata = r.str('payloadInMetadata', { nonEmpty: true });
  const clockSkewSeconds = r.uint('clockSkewSeconds', { max: 3600 }) ?? DEFAULT_CLOCK_SKEW_S;
  const requireExpiration = r.bool('requireExpiration') ?? false;
  if (r.has('fromCookies')) r.error('fromCookies', 'not supported');
  r.ignore('fromCookies', 'forwardPayloadHeader', 'padForwardPayloadHeader', 'headerInMetadata', 'failedStatusInMetadata', 'normalizePayloadInMetadata', 'jwtCacheConfig', 'maxLifetime', 'claimToHeaders', 'clearRouteCache', 'subjects', 'lifetime');
  r.done();
  if (!jwks) return undefined;
  const defaults = fromHeaders.length === 0 && fromParams.length === 0;
  return {
    name,
    ...(issuer !== undefined ? { issuer } : {}),
    audiences,
    jwks,
    forward,
    fromHeaders: defaults ? [{ name: 'authorization', prefix: 'Bearer ' }] : fromHeaders,
    fromParams: defaults ? ['access_token'] : fromParams,
    ...(payloadInMetadata !== undefined ? { payloadInMetadata } : {}),
    clockSkewSeconds,
    requireExpiration,
  };
}

function readRouteMatch(r: FieldReader): StringMatch | undefined {
  const which = r.oneOf(['prefix', 'path', 'safeRegex', 'pathSeparatedPrefix'], { required: true });
  let out: StringMatch | undefined;
  if (which === 'prefix' || which === 'path' || which === 'pathSeparatedPrefix') {
    const v = r.str(which);
    if (v !== undefined) out = which === 'path' ? { kind: 'exact', value: v } : { kind: 'prefix', value: v, ...(which === 'pathSeparatedPrefix' ? { separated: true } : {}) };
  } else if (which === 'safeRegex') {
    const rx = r.obj('safeRegex');
    if (rx) {
      const src = rx.str('regex', { required: true });
      rx.ignore('googleRe2');
      rx.done();
      if (src !== undefined) {
        const regex = compileRegex(rx, 'regex', src, '', true);
        if (regex) out = { kind: 'regex', value: src, regex };
      }
    }
  }
  for (const k of ['headers', 'queryParameters', 'grpc', 'runtimeFraction', 'dynamicMetadata', 'tlsContext', 'connectMatcher', 'pathMatchPolicy']) {
    if (r.has(k)) r.error(k, 'not supported: jwt_authn rules match by path only (prefix, path, pathSeparatedPrefix, safeRegex)');
    r.ignore(k);
  }
  r.ignore('caseSensitive');
  r.done();
  return out;
}

function readRequirement(r: FieldReader, providers: ReadonlyMap<string, JwtProviderSpec>, depth: number): JwtRequirement | undefined {
  const which = r.oneOf(['providerName', 'requiresAny', 'requiresAll', 'allowMissing', 'allowMissingOrFailed', 'providerAndAudiences'], { required: true });
  let out: JwtRequirement | undefined;
  switch (which) {
    case 'providerName': {
      const n = r.str('providerName', { required: true });
      if (n !== undefined && !providers.has(n)) r.error('providerName', `no provider named "${n}" (have: ${[...providers.keys()].join(', ') || 'none'})`);
      else if (n !== undefined) out = { kind: 'provider', name: n };
      break;
    }
    case 'requiresAny':
    case 'requiresAll': {
      const l = r.obj(which);
      if (!l || depth > 8) break;
      const of = l.objList('requirements', { required: true, nonEmpty: true }).map((x) => readRequirement(x, providers, depth + 1));
      l.done();
      if (of.length > 0 && of.every((x) => x)) out = { kind: which === 'requiresAny' ? 'any' : 'all', of: of as JwtRequirement[] };
      break;
    }
    case 'allowMissing':
    case 'allowMissingOrFailed':
      r.struct(which);
      out = { kind: which };
      break;
    case 'providerAndAudiences':
      r.error(which, 'not supported; use providerName (audiences are set on the provider)');
      r.ignore(which);
      break;
  }
  r.done();
  return out;
}
