// One fetch for every CLI call to the control plane's API: the connection's
// bearer token in the Authorization header (contexts.ts resolves it).
import { authHeaders, type Connection } from './contexts.ts';

/** `pathOrUrl`: a path on the connection's server ("/api/v1/..."), or a full URL on it. */
export function apiFetch(conn: Connection, pathOrUrl: string, init: RequestInit = {}): Promise<Response> {
  const url = /^https?:\/\//.test(pathOrUrl) ? pathOrUrl : `${conn.server}${pathOrUrl}`;
  const headers = new Headers(init.headers);
  for (const [k, v] of Object.entries(authHeaders(conn))) if (!headers.has(k)) headers.set(k, v);
  return fetch(url, { ...init, headers });
}
