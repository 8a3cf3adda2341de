// Plugin code from a URL (source.url + sha256): fetched directly from the
// URL by the proxy (not through a mesh cluster: the remote.http_uri.cluster
// the control plane sends is not used), within FETCH_TIMEOUT_MS, at most
// MAX_PLUGIN_CODE_BYTES, no redirects, and kept only if its sha256 matches.
// Verified code is cached by sha256, so the xDS preflight (preflight.ts, which
// holds the ACK until the fetch settles) and the apply step (plugins.ts) fetch
// it once; concurrent asks for the same code share one fetch.
import { createHash } from 'node:crypto';

export const MAX_PLUGIN_CODE_BYTES = 32 * 1024 * 1024;
export const FETCH_TIMEOUT_MS = 10_000;
const MAX_CACHED = 16;

export type CodeResult = { readonly ok: true; readonly bytes: Buffer } | { readonly ok: false; readonly error: string };

const cache = new Map<string, Buffer>();
const inFlight = new Map<string, Promise<CodeResult>>();

/** Verified code for `sha256`, if it has been fetched. */
export function cachedRemoteCode(sha256: string): Buffer | undefined {
  return cache.get(sha256);
}

/** Fetches (or finds in the cache) the code at `uri` whose hash must be `sha256`. */
export function fetchRemoteCode(uri: string, sha256: string): Promise<CodeResult> {
  const hit = cache.get(sha256);
  if (hit !== undefined) return Promise.resolve({ ok: true, bytes: hit });
  const key = `${sha256} ${uri}`;
  let p = inFlight.get(key);
  if (p === undefined) {
    p = download(uri, sha256).finally(() => inFlight.delete(key));
    inFlight.set(key, p);
  }
  return p;
}

/** Drops cached code no longer named (the active config's hashes). */
export function retainRemoteCode(keep: ReadonlySet<string>): void {
  for (const sha of cache.keys()) if (!keep.has(sha)) cache.delete(sha);
}

async function download(uri: string, sha256: string): Promise<CodeResult> {
  let bytes: Buffer;
  try {
    const res = await fetch(uri, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'error' });
    if (!res.ok) return { ok: false, error: `fetching ${uri}: HTTP ${res.status}` };
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > MAX_PLUGIN_CODE_BYTES) return { ok: false, error: `fetching ${uri}: larger than ${MAX_PLUGIN_CODE_BYTES} bytes` };
    bytes = Buffer.from(await res.arrayBuffer());
  } catch (err) {
    const e = err as Error;
    return { ok: false, error: `fetching ${uri}: ${e.name === 'TimeoutError' ? `no complete response within ${FETCH_TIMEOUT_MS} ms` : e.message}` };
  }
  if (bytes.length > MAX_PLUGIN_CODE_BYTES) return { ok: false, error: `fetching ${uri}: larger than ${MAX_PLUGIN_CODE_BYTES} bytes` };
  const got = createHash('sha256').update(bytes).digest('hex');
  if (got !== sha256) return { ok: false, error: `code from ${uri} has sha256 ${got}, expected ${sha256}` };
  if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
  cache.set(sha256, bytes);
  return { ok: true, bytes };
}
