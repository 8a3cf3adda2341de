// Request path normalization, pure: what Envoy's HttpConnectionManager does
// with `normalize_path`, `merge_slashes` and `path_with_escaped_slashes_action`
// before routing and RBAC, so that a policy on `/admin` cannot be walked
// around with `/public/../admin`, `/%61dmin`, `//admin` or `/admin;x`, and the
// backend is sent the path that was authorized (docs/security.md).
//
// Steps, in Envoy's order, on the path without its query:
//  1. escaped slashes (%2F, %5C, any case): keep, reject, or unescape (then
//     forward, or redirect the client to the normalized path);
//  2. normalize: percent-encoded unreserved characters decoded (RFC 3986
//     2.3), other escapes upper-cased, malformed escapes refused, bytes that
//     may not appear in a path percent-encoded, `\` read as `/`, `;` path
//     parameters removed from every segment (servlet containers route
//     `/admin;x` to `/admin`), dot segments removed (RFC 3986 5.2.4);
//  3. merge slashes: runs of `/` become one.
// Case is kept: paths are case-sensitive (RFC 3986 6.2.2.1).

export type EscapedSlashesAction = 'keep' | 'reject' | 'unescape-and-forward' | 'unescape-and-redirect';

export interface PathNormalization {
  /** Step 2 (Envoy `normalize_path`). */
  readonly normalize: boolean;
  /** Step 3 (Envoy `merge_slashes`). */
  readonly mergeSlashes: boolean;
  /** Step 1 (Envoy `path_with_escaped_slashes_action`). */
  readonly escapedSlashes: EscapedSlashesAction;
}

/** What the proxy does when a listener's HttpConnectionManager says
 * nothing: `normalize_path` (a BoolValue) absent means on and the action's
 * IMPLEMENTATION_SPECIFIC_DEFAULT means reject (Envoy's own defaults are off
 * and keep). `merge_slashes` is a plain bool that xDS cannot tell from
 * false when absent, so it stays off unless set; the control plane sets it. */
export const DEFAULT_PATH_NORMALIZATION: PathNormalization = { normalize: true, mergeSlashes: false, escapedSlashes: 'reject' };

export type NormalizedPath =
  | { readonly kind: 'ok'; readonly path: string }
  | { readonly kind: 'reject'; readonly reason: string }
  | { readonly kind: 'redirect'; readonly path: string };

const ESCAPED_SLASH = /%(2f|5c)/i;

// RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~".
function unreserved(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
}

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

const HEX = '0123456789ABCDEF';
const pct = (b: number): string => `%${HEX[b >> 4]}${HEX[b & 15]}`;

/** Normalize `target` (origin-form path with optional query). Targets that
 * are not origin-form (`*`, CONNECT's empty path) are returned unchanged. */
export function normalizeRequestPath(target: string, opts: PathNormalization): NormalizedPath {
  if (target.charCodeAt(0) !== 0x2f /* / */) return { kind: 'ok', path: target };
  const q = target.indexOf('?');
  let path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q);
  let unescaped = false;
  if (opts.escapedSlashes !== 'keep' && ESCAPED_SLASH.test(path)) {
    if (opts.escapedSlashes === 'reject') return { kind: 'reject', reason: 'escaped slash (%2F or %5C) in the path' };
    path = path.replace(/%2f/gi, '/').replace(/%5c/gi, '\\');
    unescaped = true;
  }
  if (opts.normalize) {
    const p = canonical(path);
    if (p === null) return { kind: 'reject', reason: 'malformed percent-encoding in the path' };
    path = removeDotSegments(p);
  }
  if (opts.mergeSlashes && path.includes('//')) path = path.replace(/\/{2,}/g, '/');
  if (unescaped && opts.escapedSlashes === 'unescape-and-redirect') return { kind: 'redirect', path: path + query };
  return { kind: 'ok', path: q < 0 && path === target ? target : path + query };
}

/** Percent-encoding made canonical, `\` as `/`, `;` parameters dropped;
 * null for a malformed escape. */
function canonical(path: string): string | null {
  let out = '';
  let inParams = false;
  for (let i = 0; i < path.length; i++) {
    let c = path.charCodeAt(i);
    if (c === 0x5c /* \ */) c = 0x2f;
    if (c === 0x2f) {
      inParams = false;
      out += '/';
      continue;
    }
    if (c === 0x3b /* ; */) inParams = true;
    if (c === 0x25 /* % */) {
      const h = i + 2 < path.length ? hex(path.charCodeAt(i + 1)) : -1;
      const l = h < 0 ? -1 : hex(path.charCodeAt(i + 2));
      if (l < 0) return null;
      i += 2;
      if (inParams) continue;
      const b = (h << 4) | l;
      out += unreserved(b) ? String.fromCharCode(b) : pct(b);
      continue;
    }
    if (inParams) continue;
    out += c <= 0x20 || c >= 0x7f || c === 0x22 || c === 0x3c || c === 0x3e || c === 0x5e || c === 0x60 || c === 0x7b || c === 0x7c || c === 0x7d ? pct(c & 0xff) : path[i];
  }
  return out;
}

/** RFC 3986 5.2.4 for an absolute path (starts with `/`). Empty segments
 * (`//`) are kept; merging them is step 3's job. */
export function removeDotSegments(path: string): string {
  if (!path.includes('.')) return path;
  const segs = path.split('/');
  const out: string[] = [];
  let trailing = false;
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i]!;
    trailing = false;
    if (s === '.') trailing = true;
    else if (s === '..') {
      out.pop();
      trailing = true;
    } else out.push(s);
  }
  if (out.length === 0) return '/';
  return '/' + out.join('/') + (trailing ? '/' : '');
}
