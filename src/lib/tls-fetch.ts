// An HTTPS request with the knobs global fetch() does not have: the roots to
// trust (the mesh CA, not the system store), how to check the server's name
// (a SPIFFE ID instead of a host name), a client certificate. Answers a
// standard Response, its body streamed (server-sent events work), so callers
// treat it like fetch's. The timeout bounds the wait for the response head.
import https from 'node:https';
import { Readable } from 'node:stream';
import type { PeerCertificate } from 'node:tls';

export interface TlsFetchOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** PEM roots; required unless `insecureSkipVerify`. */
  readonly ca?: string;
  /** Replaces the host-name check (e.g. a SPIFFE ID check). */
  readonly checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined;
  /** Skip verification entirely: only to read something verified afterwards by other means (a pinned CA hash). */
  readonly insecureSkipVerify?: boolean;
  readonly cert?: string;
  readonly key?: string;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export function tlsFetch(url: string, opts: TlsFetchOptions = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    if (u.protocol !== 'https:') return reject(new Error(`tlsFetch: ${url} is not https`));
    const req = https.request(u, {
      method: opts.method ?? 'GET',
      headers: { ...opts.headers, ...(opts.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(opts.body)) }) },
      ...(opts.ca === undefined ? {} : { ca: opts.ca }),
      ...(opts.cert === undefined ? {} : { cert: opts.cert, key: opts.key }),
      ...(opts.checkServerIdentity ? { checkServerIdentity: opts.checkServerIdentity } : {}),
      rejectUnauthorized: opts.insecureSkipVerify !== true,
      timeout: opts.timeoutMs ?? 10_000,
      ...(opts.signal ? { signal: opts.signal } : {}),
      agent: false,
    }, (res) => {
      req.setTimeout(0);
      const headers = new Headers();
      for (const [k, v] of Object.entries(res.headers)) {
        if (Array.isArray(v)) for (const x of v) headers.append(k, x);
        else if (v !== undefined) headers.set(k, v);
      }
      const status = res.statusCode ?? 500;
      if (status === 204 || status === 304) {
        res.resume();
        resolve(new Response(null, { status, headers }));
      } else resolve(new Response(Readable.toWeb(res) as ReadableStream<Uint8Array>, { status, headers }));
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${opts.timeoutMs ?? 10_000} ms`)));
    req.on('error', (err) => reject(Object.assign(new Error(err.message), { cause: err })));
    req.end(opts.body);
  });
}

/** The URI SANs of a peer certificate. */
export function peerUriSans(cert: PeerCertificate): string[] {
  return (cert.subjectaltname ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
}
