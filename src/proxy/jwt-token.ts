// Decoding and verifying one JWS compact token (RS256 / ES256) with
// node:crypto: signature, issuer, audience, exp / nbf with clock skew.
// Pure apart from the key lookup, which the caller supplies.
import { verify, type KeyObject } from 'node:crypto';

export const SUPPORTED_ALGS = ['RS256', 'ES256'] as const;
export type JwtAlg = (typeof SUPPORTED_ALGS)[number];

export type JwtFailure =
  | 'JWT_MALFORMED'
  | 'JWT_UNSUPPORTED_ALG'
  | 'JWT_UNKNOWN_KID'
  | 'JWT_BAD_SIGNATURE'
  | 'JWT_BAD_ISSUER'
  | 'JWT_BAD_AUDIENCE'
  | 'JWT_EXPIRED'
  | 'JWT_NOT_YET_VALID'
  | 'JWT_NO_EXPIRATION'
  | 'JWKS_UNAVAILABLE';

export type VerifyResult =
  | { ok: true; claims: Record<string, unknown> }
  | { ok: false; code: JwtFailure; detail: string };

export interface DecodedJwt {
  readonly header: { alg: string; kid?: string };
  readonly claims: Record<string, unknown>;
  readonly signingInput: Buffer;
  readonly signature: Buffer;
}

export interface VerifyOptions {
  readonly issuer?: string;
  readonly audiences: readonly string[];
  readonly clockSkewSeconds: number;
  readonly requireExpiration: boolean;
  /** Seconds since the epoch. */
  readonly now: number;
}

const B64URL = /^[A-Za-z0-9_-]*$/;

export function decodeJwt(token: string): DecodedJwt | { error: string } {
  const parts = token.split('.');
  if (parts.length !== 3) return { error: 'a JWT has three dot-separated parts' };
  const [h, p, s] = parts as [string, string, string];
  if (!B64URL.test(h) || !B64URL.test(p) || !B64URL.test(s)) return { error: 'parts must be base64url' };
  let header: unknown;
  let claims: unknown;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  } catch {
    return { error: 'header or payload is not JSON' };
  }
  if (!isObject(header) || typeof header.alg !== 'string') return { error: 'header has no "alg"' };
  if (header.kid !== undefined && typeof header.kid !== 'string') return { error: '"kid" must be a string' };
  if (!isObject(claims)) return { error: 'payload is not a JSON object' };
  return {
    header: { alg: header.alg, ...(typeof header.kid === 'string' ? { kid: header.kid } : {}) },
    claims,
    signingInput: Buffer.from(`${h}.${p}`),
    signature: Buffer.from(s, 'base64url'),
  };
}

export function isSupportedAlg(alg: string): alg is JwtAlg {
  return (SUPPORTED_ALGS as readonly string[]).includes(alg);
}

/** Does the signature verify with `key`? */
export function verifySignature(jwt: DecodedJwt, alg: JwtAlg, key: KeyObject): boolean {
  try {
    if (alg === 'ES256') {
      if (jwt.signature.length !== 64 || key.asymmetricKeyType !== 'ec') return false;
      return verify('sha256', jwt.signingInput, { key, dsaEncoding: 'ieee-p1363' }, jwt.signature);
    }
    if (key.asymmetricKeyType !== 'rsa') return false;
    return verify('sha256', jwt.signingInput, key, jwt.signature);
  } catch {
    return false;
  }
}

/** Claims checks once the signature is good. */
export function checkClaims(claims: Record<string, unknown>, o: VerifyOptions): VerifyResult {
  if (o.issuer !== undefined && claims.iss !== o.issuer) return { ok: false, code: 'JWT_BAD_ISSUER', detail: `issuer ${JSON.stringify(claims.iss)} is not ${JSON.stringify(o.issuer)}` };
  if (o.audiences.length > 0) {
    const aud = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud.filter((a): a is string => typeof a === 'string') : [];
    if (!aud.some((a) => o.audiences.includes(a))) return { ok: false, code: 'JWT_BAD_AUDIENCE', detail: `audience ${JSON.stringify(claims.aud ?? null)} is not allowed` };
  }
  const exp = claims.exp;
  if (exp !== undefined && typeof exp !== 'number') return { ok: false, code: 'JWT_MALFORMED', detail: '"exp" must be a number' };
  if (exp === undefined && o.requireExpiration) return { ok: false, code: 'JWT_NO_EXPIRATION', detail: 'the token has no "exp"' };
  if (typeof exp === 'number' && o.now > exp + o.clockSkewSeconds) return { ok: false, code: 'JWT_EXPIRED', detail: 'the token has expired' };
  const nbf = claims.nbf;
  if (nbf !== undefined && typeof nbf !== 'number') return { ok: false, code: 'JWT_MALFORMED', detail: '"nbf" must be a number' };
  if (typeof nbf === 'number' && o.now < nbf - o.clockSkewSeconds) return { ok: false, code: 'JWT_NOT_YET_VALID', detail: 'the token is not valid yet' };
  return { ok: true, claims };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
