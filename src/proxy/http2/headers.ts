// Header plumbing between node:http2's raw field arrays and the proxy's
// HeaderList. node:http2 hands out `rawHeaders` as a flat `[name, value...]`
// array and accepts the same shape in `request()`/`respond()`, so a field
// list is passed through almost unchanged: only pseudo-headers and the
// connection-specific fields that HTTP/2 forbids (RFC 9113 §8.2.2) are
// filtered, and cookie crumbs are joined (§8.2.3) so an HTTP/1 hop sees one
// `cookie` line.
import type { HeaderList } from '../http/exchange.ts';

/** Fields HTTP/2 forbids; node:http2 throws if asked to send them. */
const CONNECTION_SPECIFIC = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings',
]);

/** Fields node:http2 refuses to send more than once (ERR_HTTP2_HEADER_SINGLE_VALUE). */
const SINGLE_VALUE = new Set([
  'access-control-allow-credentials', 'access-control-max-age', 'access-control-request-method',
  'age', 'authorization', 'content-encoding', 'content-language', 'content-length',
  'content-location', 'content-md5', 'content-range', 'content-type', 'date', 'dnt', 'etag',
  'expires', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-range',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization',
  'range', 'referer', 'retry-after', 'tk', 'upgrade-insecure-requests', 'user-agent',
  'x-content-type-options',
]);

/** Names listed in `connection` tokens are hop-by-hop too (RFC 9110 §7.6.1). */
function connectionTokens(h: HeaderList): Set<string> | null {
  let out: Set<string> | null = null;
  for (let i = 0; i < h.length; i += 2) {
    if (h[i] !== 'connection') continue;
    out ??= new Set();
    for (const t of h[i + 1]!.split(',')) {
      const n = t.trim().toLowerCase();
      if (n) out.add(n);
    }
  }
  return out;
}

export interface FieldFilter {
  /** Keep `te: trailers` (requests); any other `te` is dropped. */
  request: boolean;
  /** Also drop `host` (requests: `:authority` carries it). */
  dropHost: boolean;
}

/** Append the end-to-end fields of `h` to `out` (which may already hold
 * pseudo-headers), in order. Lower-cases names defensively. */
export function appendEndToEnd(out: string[], h: HeaderList, f: FieldFilter): string[] {
  const extra = connectionTokens(h);
  let cookie: string | null = null;
  for (let i = 0; i + 1 < h.length; i += 2) {
    let name = h[i]!;
    const value = h[i + 1]!;
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    if (/[A-Z]/.test(name)) name = name.toLowerCase();
    if (CONNECTION_SPECIFIC.has(name) || extra?.has(name)) continue;
    if (name === 'te') {
      if (f.request && value.trim().toLowerCase() === 'trailers') out.push('te', 'trailers');
      continue;
    }
    if (name === 'host' && f.dropHost) continue;
    if (name === 'cookie' && f.request) {
      cookie = cookie === null ? value : `${cookie}; ${value}`;
      continue;
    }
    out.push(name, value);
  }
  if (cookie !== null) out.push('cookie', cookie);
  return out;
}

/** Keep the first occurrence of each single-value field (a second
 * content-length or content-type from a sloppy HTTP/1 peer would make
 * node:http2 throw). Returns a new list. */
export function dedupeSingleValue(fields: string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!;
    if (SINGLE_VALUE.has(name) || name.charCodeAt(0) === 58) {
      if (seen.has(name)) continue;
      seen.add(name);
    }
    out.push(name, fields[i + 1]!);
  }
  return out;
}

/** Split node's raw header array into pseudo-headers and a HeaderList.
 * Used for responses and trailers from node:http2. */
export function splitRaw(raw: readonly string[]): { pseudo: Map<string, string>; headers: HeaderList } {
  const pseudo = new Map<string, string>();
  const headers: HeaderList = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.charCodeAt(0) === 58) pseudo.set(name, raw[i + 1]!);
    else headers.push(name, raw[i + 1]!);
  }
  return { pseudo, headers };
}

/** Convert node's header object (used where node gives no raw array) to a
 * HeaderList, multi-valued fields as repeated entries. */
export function fromHeaderObject(obj: Record<string, string | string[] | number | undefined>): HeaderList {
  const out: HeaderList = [];
  for (const [name, v] of Object.entries(obj)) {
    if (v === undefined || name.charCodeAt(0) === 58) continue;
    if (Array.isArray(v)) for (const x of v) out.push(name, x);
    else out.push(name, String(v));
  }
  return out;
}

/** Run a node:http2 call that takes a field list; on a duplicated
 * single-value field, retry once with duplicates dropped. */
export function withFields<T>(fields: string[], send: (f: string[]) => T): T {
  try {
    return send(fields);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_HTTP2_HEADER_SINGLE_VALUE') throw err;
    return send(dedupeSingleValue(fields));
  }
}

/** A HeaderList as node's header object, for the calls that take no raw
 * array (`sendTrailers`): repeated names become arrays; a repeated
 * single-value field keeps its first value. */
export function toHeaderObject(fields: HeaderList): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!;
    const value = fields[i + 1]!;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (SINGLE_VALUE.has(name)) continue;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [prev, value];
  }
  return out;
}
