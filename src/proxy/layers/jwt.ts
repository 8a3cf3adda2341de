// JWT request authentication (Envoy's jwt_authn filter): the first rule whose
// path matches names a requirement; tokens are taken from each provider's
// locations (default `Authorization: Bearer` and `?access_token=`), verified
// against the provider's JWKS (jwks.ts), issuer, audiences, exp / nbf.
//
//   requirement met     -> claims go to ctx.attrs (JWT_METADATA_ATTR, for
//                          RBAC metadata matchers: {<payloadInMetadata>: claims,
//                          principal: "<iss>/<sub>"}); the token header is
//                          removed unless the provider says `forward`
//   requirement not met -> UNAUTHENTICATED (401, gRPC UNAUTHENTICATED) with
//                          `www-authenticate: Bearer ... error="invalid_token"`
//
// `allowMissing` passes a request without a token but fails one whose token
// is invalid; `allowMissingOrFailed` passes both (claims only when valid).
// A request without any token and a requirement that allows that goes on
// synchronously; everything else waits for the key lookup. Tokens whose
// signature verified are remembered (per config, at most TOKEN_CACHE_SIZE,
// oldest dropped first) so a client reusing its token pays only the claims
// checks (exp / nbf are checked again on every request).
import type { JwtAuthnSpec, JwtProviderSpec, JwtRequirement } from '../config/envoy-jwt.ts';
import type { Dispatch, Layer, ProxyRequest, ResponseHandler } from '../http/exchange.ts';
import { getHeaderAll, removeHeader } from '../http/exchange.ts';
import { compileStringMatch } from '../route-match.ts';
import { ProxyError } from '../errors.ts';
import type { JwksStore } from '../jwks.ts';
import { checkClaims, decodeJwt, isSupportedAlg, verifySignature, type JwtFailure } from '../jwt-token.ts';
import type { Counter } from '../stats.ts';

export const JWT_METADATA_ATTR = 'metadata:envoy.filters.http.jwt_authn';
/** The verified claims of the first valid token (ctx.attrs). */
export const JWT_CLAIMS_ATTR = 'jwt.claims';
export const TOKEN_CACHE_SIZE = 1024;

export interface JwtLayerDeps {
  readonly jwks: JwksStore;
  /** trellis_jwt_authn_failures_total{reason} */
  readonly failures?: Counter;
  /** Milliseconds since the epoch (tests). */
  readonly now?: () => number;
}

type Outcome = { ok: true } | { ok: false; code: JwtFailure | 'JWT_MISSING'; detail: string };
type Verified = { ok: true; claims: Record<string, unknown> } | { ok: false; code: JwtFailure; detail: string };

export function jwtAuthnLayer(spec: JwtAuthnSpec, deps: JwtLayerDeps): Layer {
  const rules = spec.rules.map((r) => ({ match: compileStringMatch(r.match), requires: r.requires }));
  const providers = [...spec.providers.values()];
  const sources = new Map(providers.map((p) => [p.name, deps.jwks.source(p.jwks)]));
  const now = deps.now ?? Date.now;
  // provider NUL token -> claims whose signature verified
  const verified = new Map<string, Record<string, unknown>>();
  const verifyCached = async (token: string, p: JwtProviderSpec): Promise<Verified> => {
    const key = `${p.name}\u0000${token}`;
    const nowS = Math.floor(now() / 1000);
    const hit = verified.get(key);
    if (hit) return checkClaims(hit, claimOptions(p, nowS));
    const r = await verifyToken(token, p, sources.get(p.name)!, nowS);
    if (r.signed) {
      if (verified.size >= TOKEN_CACHE_SIZE) verified.delete(verified.keys().next().value!);
      verified.set(key, r.signed);
    }
    return r.result;
  };

  return (next: Dispatch): Dispatch =>
    function jwtAuthn(req, handler) {
      const path = pathOnly(req.head.path);
      const rule = rules.find((r) => r.match(path));
      const requires = rule?.requires;
      if (!requires) return next(req, handler);
      const tokens = new Map<string, string>();
      for (const p of providers) {
        const t = extractToken(req, p);
        if (t !== undefined) tokens.set(p.name, t);
      }
      if (tokens.size === 0) {
        const o = evaluateMissing(requires);
        if (o.ok) return next(req, handler);
        return reject(req, handler, o, deps);
      }
      const memo = new Map<string, Promise<Verified>>();
      const verifyFor = (name: string): Promise<Verified> => {
        let v = memo.get(name);
        if (!v) {
          const p = spec.providers.get(name)!;
          v = verifyCached(tokens.get(name)!, p);
          memo.set(name, v);
        }
        return v;
      };
      void evaluate(requires, tokens, verifyFor, providers).then(
        async (o) => {
          if (!o.ok) return reject(req, handler, o, deps);
          const meta: Record<string, unknown> = {};
          let first: Record<string, unknown> | undefined;
          for (const [name] of tokens) {
            const v = memo.get(name);
            const r = v ? await v : undefined;
            if (!r?.ok) continue;
            const p = spec.providers.get(name)!;
            first ??= r.claims;
            if (p.payloadInMetadata !== undefined) meta[p.payloadInMetadata] = r.claims;
            if (!p.forward) for (const h of p.fromHeaders) removeHeader(req.head.headers, h.name);
          }
          if (first) {
            const iss = typeof first.iss === 'string' ? first.iss : '';
            const sub = typeof first.sub === 'string' ? first.sub : '';
            meta.principal = `${iss}/${sub}`;
            req.ctx.attrs.set(JWT_CLAIMS_ATTR, first);
            req.ctx.attrs.set(JWT_METADATA_ATTR, meta);
          }
          next(req, handler);
        },
      ).catch((err: unknown) => handler.onError(new ProxyError('INTERNAL', `jwt_authn: ${(err as Error).message}`)));
    };
}

function reject(req: ProxyRequest, handler: ResponseHandler, o: Extract<Outcome, { ok: false }>, deps: JwtLayerDeps): void {
  deps.failures?.labels(o.code).inc();
  const err = o.code === 'JWT_MISSING' ? 'Jwt is missing' : `Jwt verification fails (${o.code})`;
  handler.onError(new ProxyError('UNAUTHENTICATED', `${err}: ${o.detail}`, {
    headers: ['www-authenticate', `Bearer realm="${req.head.scheme}://${req.head.authority}${pathOnly(req.head.path)}", error="invalid_token"`],
  }));
}

function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

export function extractToken(req: ProxyRequest, p: JwtProviderSpec): string | undefined {
  for (const h of p.fromHeaders) {
    for (const v of getHeaderAll(req.head.headers, h.name)) {
      if (h.prefix === '') return v.trim();
      if (v.length > h.prefix.length && v.slice(0, h.prefix.length).toLowerCase() === h.prefix.toLowerCase()) return v.slice(h.prefix.length).trim();
    }
  }
  if (p.fromParams.length > 0) {
    const q = req.head.path.indexOf('?');
    if (q >= 0) {
      const params = new URLSearchParams(req.head.path.slice(q + 1));
      for (const name of p.fromParams) {
        const v = params.get(name);
        if (v) return v;
      }
    }
  }
  return undefined;
}

/** The outcome when no provider found a token. */
function evaluateMissing(r: JwtRequirement): Outcome {
  switch (r.kind) {
    case 'provider':
      return { ok: false, code: 'JWT_MISSING', detail: `provider ${r.name} requires a token` };
    case 'allowMissing':
    case 'allowMissingOrFailed':
      return { ok: true };
    case 'any': {
      const all = r.of.map(evaluateMissing);
      return all.find((o) => o.ok) ?? all[0]!;
    }
    case 'all':
      return r.of.map(evaluateMissing).find((o) => !o.ok) ?? { ok: true };
  }
}

async function evaluate(r: JwtRequirement, tokens: ReadonlyMap<string, string>, verifyFor: (name: string) => Promise<Verified>, providers: readonly JwtProviderSpec[]): Promise<Outcome> {
  switch (r.kind) {
    case 'provider': {
      if (!tokens.has(r.name)) return { ok: false, code: 'JWT_MISSING', detail: `provider ${r.name} requires a token` };
      const v = await verifyFor(r.name);
      return v.ok ? { ok: true } : v;
    }
    case 'allowMissing': {
      for (const p of providers) {
        if (!tokens.has(p.name)) continue;
        const v = await verifyFor(p.name);
        if (!v.ok) return v;
      }
      return { ok: true };
    }
    case 'allowMissingOrFailed':
      for (const p of providers) if (tokens.has(p.name)) await verifyFor(p.name);
      return { ok: true };
    case 'any': {
      const all = await Promise.all(r.of.map((x) => evaluate(x, tokens, verifyFor, providers)));
      if (all.some((o) => o.ok)) return { ok: true };
      // The most telling failure: a verification error over "missing".
      return all.find((o) => !o.ok && o.code !== 'JWT_MISSING') ?? all[0]!;
    }
    case 'all': {
      for (const x of r.of) {
        const o = await evaluate(x, tokens, verifyFor, providers);
        if (!o.ok) return o;
      }
      return { ok: true };
    }
  }
}

function claimOptions(p: JwtProviderSpec, nowS: number): Parameters<typeof checkClaims>[1] {
  return {
    ...(p.issuer !== undefined ? { issuer: p.issuer } : {}),
    audiences: p.audiences,
    clockSkewSeconds: p.clockSkewSeconds,
    requireExpiration: p.requireExpiration,
    now: nowS,
  };
}

/** The verification result, and the claims when the signature verified. */
async function verifyToken(token: string, p: JwtProviderSpec, source: ReturnType<JwksStore['source']>, nowS: number): Promise<{ result: Verified; signed?: Record<string, unknown> }> {
  const jwt = decodeJwt(token);
  if ('error' in jwt) return { result: { ok: false, code: 'JWT_MALFORMED', detail: jwt.error } };
  const alg = jwt.header.alg;
  if (!isSupportedAlg(alg)) return { result: { ok: false, code: 'JWT_UNSUPPORTED_ALG', detail: `alg ${JSON.stringify(alg)} (supported: RS256, ES256)` } };
  // Issuer first: a token meant for another provider is not this one's.
  if (p.issuer !== undefined && jwt.claims.iss !== p.issuer) return { result: { ok: false, code: 'JWT_BAD_ISSUER', detail: `issuer ${JSON.stringify(jwt.claims.iss ?? null)} is not ${JSON.stringify(p.issuer)}` } };
  const found = await source.find(jwt.header.kid);
  if (!found.ok) return { result: found };
  const good = found.keys.some((k) => (k.alg === undefined || k.alg === alg) && verifySignature(jwt, alg, k.key));
  if (!good) return { result: { ok: false, code: 'JWT_BAD_SIGNATURE', detail: 'the signature does not verify' } };
  return { result: checkClaims(jwt.claims, claimOptions(p, nowS)), signed: jwt.claims };
}
