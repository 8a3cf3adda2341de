// One fetch for every CLI call to the control plane's API: the connection's
// bearer token in the Authorization header (contexts.ts resolves it), and
// over HTTPS the context's CA (the mesh CA `trellis login` pinned) as the
// only roots trusted, with the usual host-name check.
import { authHeaders, type Connection } from './contexts.ts';
import { tlsFetch } from '../lib/tls-fetch.ts';

/** `pathOrUrl`: a path on the connection's server ("/api/v1/..."), or a full URL on it. */
export async function apiFetch(conn: Connection, pathOrUrl: string, init: RequestInit = {}): Promise<Response> {
  const url = /^https?:\/\//.test(pathOrUrl) ? pathOrUrl : `${conn.server}${pathOrUrl}`;
  const headers = new Headers(init.headers);
  for (const [k, v] of Object.entries(authHeaders(conn))) if (!headers.has(k)) headers.set(k, v);
  if (url.startsWith('https://') && conn.ca) {
    return tlsFetch(url, {
      method: init.method ?? 'GET',
      headers: headerRecord(headers),
      ...(typeof init.body === 'string' ? { body: init.body } : {}),
      ca: conn.ca,
      ...(init.signal ? { signal: init.signal } : {}),
    });
  }
  return fetch(url, { ...init, headers });
}

function headerRecord(h: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  h.forEach((v, k) => {
    out[k] = v;
  });
  return out;
}
