// HTTP/1.x message heads: request and response heads parsed from raw bytes,
// shared by the downstream server (requests) and the upstream pool
// (responses). Strict by design (RFC 9112): a head that two parsers could
// read differently is refused, because a proxy that reads it one way while
// the next hop reads it another is how request smuggling works.
//
// The head is decoded once as a latin1 string and scanned with indexOf; no
// regular expression runs per header. Hop-by-hop fields are dropped while
// scanning and the facts the codec needs (framing, connection options,
// upgrade, expect, host) are collected on the way.
import type { HeaderList } from '../http/exchange.ts';

export const DEFAULT_MAX_HEAD_BYTES = 64 * 1024;
/** Header fields in one head (or trailer section), as Envoy's
 * `max_headers_count`: more is 431 (requests) or a protocol error (responses). */
export const DEFAULT_MAX_HEADERS_COUNT = 100;

/** What the header scan learned besides the end-to-end header list. */
export interface HeadFields {
  /** End-to-end headers: hop-by-hop fields, `host` (requests) and
   * `content-length` (requests) removed; `te` reduced to `trailers`. */
  headers: HeaderList;
  /** -1 when absent. */
  contentLength: number;
  /** Transfer-Encoding was present (and was exactly `chunked`). */
  chunked: boolean;
  connectionClose: boolean;
  connectionKeepAlive: boolean;
  connectionUpgrade: boolean;
  upgrade: string | undefined;
  host: string | undefined;
  expectContinue: boolean;
  teTrailers: boolean;
}

export type HeadError = { kind: 'error'; code: 'BAD_REQUEST' | 'HEADERS_TOO_LARGE' | 'EXPECTATION_FAILED'; reason: string };
export type Incomplete = { kind: 'incomplete' };
export const INCOMPLETE: Incomplete = { kind: 'incomplete' };

export interface ParsedRequestHead extends HeadFields {
  kind: 'request';
  /** Offset just past the blank line that ends the head. */
  end: number;
  method: string;
  target: string;
  version: '1.0' | '1.1';
}

export interface ParsedResponseHead extends HeadFields {
  kind: 'response';
  end: number;
  status: number;
  version: '1.0' | '1.1';
}

// RFC 9110 tchar, indexed by char code (< 128).
const TCHAR = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || "!#$%&'*+-.^_`|~".includes(ch)) TCHAR[c] = 1;
}

// Control characters that may not appear anywhere in a head (CR and LF are
// checked per line so that a bare one is caught; HTAB is allowed in values).
const BAD_CTL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

function err(reason: string, code: HeadError['code'] = 'BAD_REQUEST'): HeadError {
  return { kind: 'error', code, reason };
}

/** Find the end of a head starting at `start`: the offset just past
 * CRLF CRLF, INCOMPLETE-style -1 when not there yet, or an error. */
function findHeadEnd(buf: Buffer, start: number, maxHeadBytes: number): number | HeadError {
  const i = buf.indexOf(CRLFCRLF, start);
  if (i !== -1) {
    if (i + 4 - start > maxHeadBytes) return err(`head is larger than ${maxHeadBytes} bytes`, 'HEADERS_TOO_LARGE');
    return i + 4;
  }
  // Not complete. Refuse early what can never complete the strict way.
  const lf = buf.indexOf(10, start);
  if (lf !== -1 && (lf === start || buf[lf - 1] !== 13)) return err('bare LF in the head (lines must end with CRLF)');
  if (buf.indexOf('\n\n', start, 'latin1') !== -1) return err('bare LF in the head (lines must end with CRLF)');
  if (buf.length - start > maxHeadBytes) return err(`head is larger than ${maxHeadBytes} bytes`, 'HEADERS_TOO_LARGE');
  return -1;
}

/** Parse `digits` or a list of identical `digits, digits` (RFC 9110 §8.6).
 * Returns -2 when invalid. */
export function parseContentLength(v: string): number {
  let n = -1;
  let cur = -1;
  let digits = 0;
  for (let i = 0; i <= v.length; i++) {
    const c = i < v.length ? v.charCodeAt(i) : 44; // treat end as ','
    if (c >= 48 && c <= 57) {
      if (digits >= 15) return -2;
      cur = cur === -1 ? c - 48 : cur * 10 + (c - 48);
      digits++;
    } else if (c === 44) {
      if (cur === -1) return -2;
      if (n !== -1 && n !== cur) return -2;
      n = cur;
      cur = -1;
      digits = 0;
      while (i + 1 < v.length && (v.charCodeAt(i + 1) === 32 || v.charCodeAt(i + 1) === 9)) i++;
    } else {
      return -2;
    }
  }
  return n;
}

function isOws(c: number): boolean {
  return c === 32 || c === 9;
}

/** Scan header lines in `s` from `pos` (the first header line) to `end`
 * (the offset of the final empty line's CRLF). `request` selects the
 * request-only treatment of host/expect/content-length. */
function scanFields(s: string, pos: number, end: number, request: boolean, out: HeadFields, maxHeaders: number): HeadError | null {
  let connectionOther: string[] | null = null;
  let teSeen = 0;
  let count = 0;
  while (pos < end) {
    if (++count > maxHeaders) return err(`more than ${maxHeaders} header fields`, 'HEADERS_TOO_LARGE');
    const nl = s.indexOf('\n', pos);
    // nl is never -1 here: the head ends with CRLF CRLF.
    if (s.charCodeAt(nl - 1) !== 13) return err('bare LF in a header line');
    const lineEnd = nl - 1;
    const cr = s.indexOf('\r', pos);
    if (cr !== lineEnd) return err('bare CR in a header line');
    const first = s.charCodeAt(pos);
    if (isOws(first)) return err('obsolete line folding (a header line starts with whitespace)');
    const colon = s.indexOf(':', pos);
    if (colon === -1 || colon > lineEnd) return err('header line without a colon');
    if (colon === pos) return err('empty header name');
    let upper = false;
    for (let i = pos; i < colon; i++) {
      const c = s.charCodeAt(i);
      if (c >= 128 || TCHAR[c] === 0) {
        return err(isOws(c) ? 'whitespace between a header name and the colon' : `invalid character in header name "${s.slice(pos, colon)}"`);
      }
      if (c >= 65 && c <= 90) upper = true;
    }
    let name = s.slice(pos, colon);
    if (upper) name = name.toLowerCase();
    let vs = colon + 1;
    let ve = lineEnd;
    while (vs < ve && isOws(s.charCodeAt(vs))) vs++;
    while (ve > vs && isOws(s.charCodeAt(ve - 1))) ve--;
    const value = s.slice(vs, ve);
    pos = nl + 1;

    let keep = true;
    switch (name.length) {
      case 2:
        if (name === 'te') {
          keep = false;
          if (hasToken(value, 'trailers')) {
            out.teTrailers = true;
            out.headers.push('te', 'trailers');
          }
        }
        break;
      case 4:
        if (request && name === 'host') {
          if (out.host !== undefined) return err('more than one Host header');
          out.host = value;
          keep = false;
        }
        break;
      case 6:
        if (request && name === 'expect') {
          // RFC 9110 10.1.1: the only expectation is 100-continue; answer
          // others with 417 rather than pass on a promise nobody keeps.
          if (value.toLowerCase() !== '100-continue') return err(`unsupported Expect "${value.slice(0, 64)}" (only 100-continue)`, 'EXPECTATION_FAILED');
          out.expectContinue = true;
          keep = false;
        }
        break;
      case 7:
        if (name === 'upgrade') {
          out.upgrade = value;
          keep = false;
        }
        break;
      case 10:
        if (name === 'connection') {
          keep = false;
          const r = scanConnection(value, out);
          if (r !== null) (connectionOther ??= []).push(...r);
        } else if (name === 'keep-alive') {
          keep = false;
        }
        break;
      case 14:
        if (name === 'content-length') {
          const n = parseContentLength(value);
          if (n === -2) return err(`invalid Content-Length "${value}"`);
          if (out.contentLength !== -1 && out.contentLength !== n) return err('more than one Content-Length with different values');
          // Responses keep one normalised copy (it is end-to-end there);
          // requests carry the length in BodySource.contentLength.
          if (!request && out.contentLength === -1) out.headers.push('content-length', String(n));
          out.contentLength = n;
          keep = false;
        }
        break;
      case 16:
        if (name === 'proxy-connection') keep = false;
        break;
      case 17:
        if (name === 'transfer-encoding') {
          keep = false;
          teSeen++;
          if (teSeen > 1 || value.toLowerCase() !== 'chunked') {
            return err(`unsupported Transfer-Encoding "${value}" (only a single "chunked" is accepted)`);
          }
          out.chunked = true;
        }
        break;
    }
    if (keep) out.headers.push(name, value);
  }
  if (out.chunked && out.contentLength !== -1) return err('both Content-Length and Transfer-Encoding');
  if (connectionOther !== null) {
    const h = out.headers;
    let w = 0;
    for (let r = 0; r < h.length; r += 2) {
      if (!connectionOther.includes(h[r]!)) {
        h[w] = h[r]!;
        h[w + 1] = h[r + 1]!;
        w += 2;
      }
    }
    h.length = w;
  }
  return null;
}

/** Records close/keep-alive/upgrade; returns other listed header names. */
function scanConnection(value: string, out: HeadFields): string[] | null {
  const v = value.toLowerCase();
  if (v === 'keep-alive') { out.connectionKeepAlive = true; return null; }
  if (v === 'close') { out.connectionClose = true; return null; }
  if (v === 'upgrade') { out.connectionUpgrade = true; return null; }
  let other: string[] | null = null;
  for (const raw of v.split(',')) {
    const t = raw.trim();
    if (t === '') continue;
    if (t === 'keep-alive') out.connectionKeepAlive = true;
    else if (t === 'close') out.connectionClose = true;
    else if (t === 'upgrade') out.connectionUpgrade = true;
    else (other ??= []).push(t);
  }
  return other;
}

function hasToken(value: string, token: string): boolean {
  const v = value.toLowerCase();
  if (v === token) return true;
  for (const raw of v.split(',')) {
    const t = raw.trim();
    const semi = t.indexOf(';');
    if ((semi === -1 ? t : t.slice(0, semi).trim()) === token) return true;
  }
  return false;
}

function emptyFields(): HeadFields {
  return {
    headers: [], contentLength: -1, chunked: false, connectionClose: false, connectionKeepAlive: false,
    connectionUpgrade: false, upgrade: undefined, host: undefined, expectContinue: false, teTrailers: false,
  };
}

/** Parse a request head at `start` (leading empty lines are skipped). */
export function parseRequestHead(buf: Buffer, start: number, maxHeadBytes = DEFAULT_MAX_HEAD_BYTES, maxHeaders = DEFAULT_MAX_HEADERS_COUNT): ParsedRequestHead | Incomplete | HeadError {
  // RFC 9112 §2.2: ignore at least one empty line before the request-line.
  const first = start;
  while (start + 1 < buf.length && buf[start] === 13 && buf[start + 1] === 10) start += 2;
  if (start - first > 64) return err('too many empty lines before the request line');
  if (start >= buf.length) return INCOMPLETE;
  const end = findHeadEnd(buf, start, maxHeadBytes);
  if (end === -1) return INCOMPLETE;
  if (typeof end !== 'number') return end;
  const s = buf.toString('latin1', start, end);
  if (BAD_CTL.test(s)) return err('control character in the head');
  const lineEnd = s.indexOf('\r\n');
  // A CR or LF inside the request line (in the target, say) is not a line
  // end to us but may be one to the next hop: refuse it.
  if (s.indexOf('\r') !== lineEnd || s.indexOf('\n') !== lineEnd + 1) return err('bare CR or LF in the request line');
  const sp1 = s.indexOf(' ');
  const sp2 = s.lastIndexOf(' ', lineEnd);
  if (sp1 <= 0 || sp1 > lineEnd || sp2 === sp1) return err('malformed request line');
  for (let i = 0; i < sp1; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TCHAR[c] === 0) return err('invalid method');
  }
  const target = s.slice(sp1 + 1, sp2);
  if (target.length === 0) return err('malformed request target');
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return err('whitespace or a control character in the request target');
  }
  const v = s.slice(sp2 + 1, lineEnd);
  let version: '1.0' | '1.1';
  if (v === 'HTTP/1.1') version = '1.1';
  else if (v === 'HTTP/1.0') version = '1.0';
  else return err(`unsupported protocol version "${v.slice(0, 16)}"`);
  const head = emptyFields() as ParsedRequestHead;
  head.kind = 'request';
  head.end = end;
  head.method = s.slice(0, sp1);
  head.target = target;
  head.version = version;
  const e = scanFields(s, lineEnd + 2, s.length - 2, true, head, maxHeaders);
  if (e !== null) return e;
  if (version === '1.0' && head.chunked) return err('Transfer-Encoding in an HTTP/1.0 request');
  return head;
}

/** Parse a response head at `start`. Errors are protocol errors of the
 * upstream (the code field still says BAD_REQUEST/HEADERS_TOO_LARGE). */
export function parseResponseHead(buf: Buffer, start: number, maxHeadBytes = DEFAULT_MAX_HEAD_BYTES, maxHeaders = DEFAULT_MAX_HEADERS_COUNT): ParsedResponseHead | Incomplete | HeadError {
  const end = findHeadEnd(buf, start, maxHeadBytes);
  if (end === -1) return INCOMPLETE;
  if (typeof end !== 'number') return end;
  const s = buf.toString('latin1', start, end);
  if (BAD_CTL.test(s)) return err('control character in the response head');
  const lineEnd = s.indexOf('\r\n');
  if (lineEnd < 12 || !s.startsWith('HTTP/1.') || s.charCodeAt(8) !== 32) return err('malformed status line');
  const minor = s.charCodeAt(7);
  if (minor !== 48 && minor !== 49) return err('unsupported response version');
  let status = 0;
  for (let i = 9; i < 12; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return err('malformed status code');
    status = status * 10 + (c - 48);
  }
  if (status < 100 || (lineEnd > 12 && s.charCodeAt(12) !== 32)) return err('malformed status line');
  const head = emptyFields() as ParsedResponseHead;
  head.kind = 'response';
  head.end = end;
  head.status = status;
  head.version = minor === 49 ? '1.1' : '1.0';
  const e = scanFields(s, lineEnd + 2, s.length - 2, false, head, maxHeaders);
  if (e !== null) return e;
  return head;
}

/** Parse a trailer section (the lines after the last chunk, ending with an
 * empty line). Framing and routing fields are not allowed there and are
 * dropped, as are hop-by-hop fields. */
export function parseTrailers(s: string, maxHeaders = DEFAULT_MAX_HEADERS_COUNT): HeaderList | HeadError {
  const out = emptyFields();
  if (BAD_CTL.test(s)) return err('control character in trailers');
  const e = scanFields(s, 0, s.length - 2, true, out, maxHeaders);
  if (e !== null) return e;
  // scanFields(request=true) drops host/content-length/expect already.
  const h = out.headers;
  let w = 0;
  for (let r = 0; r < h.length; r += 2) {
    const n = h[r]!;
    if (n !== 'te' && n !== 'trailer' && n !== 'authorization' && n !== 'content-type' && n !== 'content-encoding' && n !== 'content-range') {
      h[w] = n;
      h[w + 1] = h[r + 1]!;
      w += 2;
    }
  }
  h.length = w;
  return h;
}
