// The proxy's side of the identity API: POST /api/v1/identity/csr with the
// join token (Kubernetes mode: the projected ServiceAccount token) as a Bearer credential, GET /api/v1/identity/trust-bundle.
//
// Over HTTPS the proxy must know which CA to trust before it sends its
// token, and never learns it on first use silently (docs/security-model.md):
// - a configured bundle (`--ca-file`, TRELLIS_CA_FILE) is trusted as is;
// - else the join token's pin (`tjt_<secret>.<sha256 of the root's SPKI>`):
//   the trust bundle is read once without verification and kept only if
//   one of its roots has that key; every call after verifies the server
//   against it and checks it is the control plane (its SPIFFE ID);
// - neither: refused, with what to do.
// Plain http is for a control plane on loopback.
import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import { sign } from 'node:crypto';
import { tlsFetch, peerUriSans } from '../../lib/tls-fetch.ts';
import { parseJoinToken, rootsMatchingPin } from '../../lib/ca-pin.ts';

export interface IssuedCertificate {
  readonly certificateChain: string;
  readonly trustBundle: string;
  readonly expiresAt: string;
}

export type CaCallResult<T> = { ok: true; value: T } | { ok: false; code: string; message: string; retryable: boolean };

/** The credential a renewal proves: the current chain and its key. */
export interface CurrentCertificate {
  readonly certificateChain: string;
  readonly privateKeyPem: string;
}

export interface CaClient {
  /** With `renewWith`, proven by the current certificate (no join token spent). */
  requestCertificate(csrPem: string, renewWith?: CurrentCertificate): Promise<CaCallResult<IssuedCertificate>>;
  fetchTrustBundle(): Promise<CaCallResult<string>>;
}

/** The join token from, in order: an explicit value, `TRELLIS_JOIN_TOKEN`, or a file (`TRELLIS_JOIN_TOKEN_FILE`). */
export function resolveJoinToken(opts: { token?: string; file?: string; env?: NodeJS.ProcessEnv } = {}): string | undefined {
  const env = opts.env ?? process.env;
  if (opts.token) return opts.token.trim();
  if (env['TRELLIS_JOIN_TOKEN']) return env['TRELLIS_JOIN_TOKEN'].trim();
  const file = opts.file ?? env['TRELLIS_JOIN_TOKEN_FILE'];
  if (file) return readFileSync(file, 'utf8').trim();
  return undefined;
}

/** In Kubernetes mode: the projected ServiceAccount token's file (`TRELLIS_SA_TOKEN_FILE`). */
export function saTokenFile(opts: { file?: string; env?: NodeJS.ProcessEnv } = {}): string | undefined {
  return opts.file || (opts.env ?? process.env)['TRELLIS_SA_TOKEN_FILE'] || undefined;
}

const CONTROL_PLANE_ID = /^spiffe:\/\/[^/]+\/trellis\/control-plane$/;

/** The server must be the control plane, not just anyone the CA signed. */
export function checkControlPlane(_host: string, cert: PeerCertificate): Error | undefined {
  const sans = peerUriSans(cert);
  return sans.some((s) => CONTROL_PLANE_ID.test(s)) ? undefined : new Error(`the server is not the Trellis control plane (its certificate names ${sans.join(', ') || 'no SPIFFE ID'})`);
}

/** The trust bundle of the control plane at `base` (https), kept only if a
 * root matches `pin`; without a pin, refused (no trust on first use). */
export async function discoverTrustBundle(base: string, pin: string | undefined, timeoutMs = 10_000): Promise<CaCallResult<string>> {
  const fail = (code: string, message: string, retryable: boolean): CaCallResult<never> => ({ ok: false, code, message, retryable });
  if (!pin) {
    return fail('NO_TRUSTED_CA', `${base} is HTTPS but there is no CA to trust: the join token carries no CA pin (tjt_<secret>.<hash>; mint one with \`trellis identity token\`), and no --ca-file / TRELLIS_CA_FILE was given`, false);
  }
  let res: Response;
  try {
    res = await tlsFetch(`${base}/api/v1/identity/trust-bundle`, { insecureSkipVerify: true, timeoutMs });
  } catch (err) {
    return fail('UNAVAILABLE', `/api/v1/identity/trust-bundle: ${(err as Error).message}`, true);
  }
  const body = (await res.json().catch(() => ({}))) as { trustBundle?: unknown };
  if (!res.ok || typeof body.trustBundle !== 'string') return fail('BAD_RESPONSE', `/api/v1/identity/trust-bundle: HTTP ${res.status}`, true);
  if (rootsMatchingPin(body.trustBundle, pin).length === 0) {
    return fail('CA_PIN_MISMATCH', `the trust bundle ${base} serves has no root with key ${pin} (the join token's pin): not the control plane the token came from, or someone in between`, false);
  }
  return { ok: true, value: body.trustBundle };
}

/** `joinToken` a function: called for every request (a projected token file
 * is re-read, since the kubelet rotates it). */
export function createCaClient(opts: { baseUrl: string; joinToken: string | (() => string); timeoutMs?: number; caBundle?: string }): CaClient {
  const token = typeof opts.joinToken === 'string' ? () => opts.joinToken as string : opts.joinToken;
  const base = opts.baseUrl.replace(/\/+$/, '');
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const https = base.startsWith('https://');
  // A projected ServiceAccount token (a function) carries no pin: Kubernetes mode trusts --ca-file.
  const pin = typeof opts.joinToken === 'string' ? parseJoinToken(opts.joinToken).caPin : undefined;
  /** The roots the server is verified against (https). */
  let trusted: string | undefined = opts.caBundle;

  const fail = (code: string, message: string, retryable: boolean): CaCallResult<never> => ({ ok: false, code, message, retryable });

  async function discover(): Promise<CaCallResult<string>> {
    if (trusted !== undefined) return { ok: true, value: trusted };
    const r = await discoverTrustBundle(base, pin, timeoutMs);
    if (r.ok) trusted = r.value;
    return r;
  }

  async function call<T>(path: string, init: { method: string; headers?: Record<string, string>; body?: string }, pick: (body: Record<string, unknown>) => T | undefined): Promise<CaCallResult<T>> {
    let res: Response;
    try {
      if (https) {
        const ca = await discover();
        if (!ca.ok) return ca;
        res = await tlsFetch(base + path, { ...init, ca: ca.value, checkServerIdentity: checkControlPlane, timeoutMs });
      } else {
        res = await fetch(base + path, { ...init, signal: AbortSignal.timeout(timeoutMs) });
      }
    } catch (err) {
      return fail('UNAVAILABLE', `${path}: ${(err as Error).message}`, true);
    }
    let body: Record<string, unknown> = {};
    try {
      body = (await res.json()) as Record<string, unknown>;
    } catch {
      // fall through with an empty body
    }
    if (!res.ok) {
      const e = (body['error'] ?? {}) as { code?: string; message?: string };
      return fail(e.code ?? `HTTP_${res.status}`, e.message ?? `${path}: HTTP ${res.status}`, res.status >= 500 || res.status === 429);
    }
    const v = pick(body);
    if (v === undefined) return fail('BAD_RESPONSE', `${path}: unexpected response shape`, true);
    // A rotated bundle, from the verified control plane: trust it from now on.
    if (https && typeof body['trustBundle'] === 'string' && body['trustBundle'] !== '') trusted = body['trustBundle'];
    return { ok: true, value: v };
  }

  return {
    requestCertificate: (csrPem, renewWith) => {
      let init: { method: string; headers: Record<string, string>; body: string };
      if (renewWith) {
        init = {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            csr: csrPem,
            renewal: { certificateChain: renewWith.certificateChain, signature: sign('sha256', Buffer.from(csrPem), renewWith.privateKeyPem).toString('base64') },
          }),
        };
      } else {
        let bearer: string;
        try {
          bearer = token();
        } catch (err) {
          return Promise.resolve({ ok: false, code: 'NO_CREDENTIAL', message: (err as Error).message, retryable: true });
        }
        init = { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` }, body: JSON.stringify({ csr: csrPem }) };
      }
      return call('/api/v1/identity/csr', init, (b) =>
        typeof b['certificateChain'] === 'string' && typeof b['trustBundle'] === 'string' && typeof b['expiresAt'] === 'string'
          ? { certificateChain: b['certificateChain'], trustBundle: b['trustBundle'], expiresAt: b['expiresAt'] }
          : undefined);
    },
    fetchTrustBundle: () => call('/api/v1/identity/trust-bundle', { method: 'GET' }, (b) => (typeof b['trustBundle'] === 'string' ? b['trustBundle'] : undefined)),
  };
}
