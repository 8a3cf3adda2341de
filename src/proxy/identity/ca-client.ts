// The proxy's side of the identity API: POST /api/v1/identity/csr with the
// join token (Kubernetes mode: the projected ServiceAccount token) as a Bearer credential, GET /api/v1/identity/trust-bundle.
import { readFileSync } from 'node:fs';

export interface IssuedCertificate {
  readonly certificateChain: string;
  readonly trustBundle: string;
  readonly expiresAt: string;
}

export type CaCallResult<T> = { ok: true; value: T } | { ok: false; code: string; message: string; retryable: boolean };

export interface CaClient {
  requestCertificate(csrPem: string): Promise<CaCallResult<IssuedCertificate>>;
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

/** `joinToken` a function: called for every request (a projected token file
 * is re-read, since the kubelet rotates it). */
export function createCaClient(opts: { baseUrl: string; joinToken: string | (() => string); timeoutMs?: number }): CaClient {
  const token = typeof opts.joinToken === 'string' ? () => opts.joinToken as string : opts.joinToken;
  const base = opts.baseUrl.replace(/\/+$/, '');
  const timeoutMs = opts.timeoutMs ?? 10_000;
  async function call<T>(path: string, init: RequestInit, pick: (body: Record<string, unknown>) => T | undefined): Promise<CaCallResult<T>> {
    let res: Response;
    try {
      res = await fetch(base + path, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      return { ok: false, code: 'UNAVAILABLE', message: `${path}: ${(err as Error).message}`, retryable: true };
    }
    let body: Record<string, unknown> = {};
    try {
      body = (await res.json()) as Record<string, unknown>;
    } catch {
      // fall through with an empty body
    }
    if (!res.ok) {
      const e = (body['error'] ?? {}) as { code?: string; message?: string };
      return { ok: false, code: e.code ?? `HTTP_${res.status}`, message: e.message ?? `${path}: HTTP ${res.status}`, retryable: res.status >= 500 || res.status === 429 };
    }
    const v = pick(body);
    if (v === undefined) return { ok: false, code: 'BAD_RESPONSE', message: `${path}: unexpected response shape`, retryable: true };
    return { ok: true, value: v };
  }
  return {
    requestCertificate: (csrPem) => {
      let bearer: string;
      try {
        bearer = token();
      } catch (err) {
        return Promise.resolve({ ok: false, code: 'NO_CREDENTIAL', message: (err as Error).message, retryable: true });
      }
      return call('/api/v1/identity/csr', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
        body: JSON.stringify({ csr: csrPem }),
      }, (b) =>
        typeof b['certificateChain'] === 'string' && typeof b['trustBundle'] === 'string' && typeof b['expiresAt'] === 'string'
          ? { certificateChain: b['certificateChain'], trustBundle: b['trustBundle'], expiresAt: b['expiresAt'] }
          : undefined);
    },
    fetchTrustBundle: () => call('/api/v1/identity/trust-bundle', { method: 'GET' }, (b) => (typeof b['trustBundle'] === 'string' ? b['trustBundle'] : undefined)),
  };
}
