// HTTP/1.1 heads and chunk framing as strings written with latin1 encoding:
// one string per head, built by concatenation, written in one (corked) call.
import type { HeaderList, RequestHead } from '../http/exchange.ts';

export const STATUS_TEXT: Record<number, string> = {
  100: 'Continue', 101: 'Switching Protocols', 102: 'Processing', 103: 'Early Hints',
  200: 'OK', 201: 'Created', 202: 'Accepted', 203: 'Non-Authoritative Information', 204: 'No Content',
  205: 'Reset Content', 206: 'Partial Content', 207: 'Multi-Status',
  300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 304: 'Not Modified',
  307: 'Temporary Redirect', 308: 'Permanent Redirect',
  400: 'Bad Request', 401: 'Unauthorized', 402: 'Payment Required', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 406: 'Not Acceptable', 407: 'Proxy Authentication Required', 408: 'Request Timeout',
  409: 'Conflict', 410: 'Gone', 411: 'Length Required', 412: 'Precondition Failed', 413: 'Content Too Large',
  414: 'URI Too Long', 415: 'Unsupported Media Type', 416: 'Range Not Satisfiable', 417: 'Expectation Failed',
  421: 'Misdirected Request', 422: 'Unprocessable Content', 425: 'Too Early', 426: 'Upgrade Required',
  428: 'Precondition Required', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large',
  451: 'Unavailable For Legal Reasons', 499: 'Client Closed Request',
  500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable',
  504: 'Gateway Timeout', 505: 'HTTP Version Not Supported',
};

const STATUS_LINES = new Map<number, string>();
export function statusLine(status: number): string {
  let line = STATUS_LINES.get(status);
  if (line === undefined) {
    line = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Unknown'}\r\n`;
    if (STATUS_LINES.size < 1000) STATUS_LINES.set(status, line);
  }
  return line;
}

/** A header value that could split the message is a bug upstream of the
 * codec; refuse it rather than write it. */
function checkField(name: string, value: string): void {
  if (value.indexOf('\n') !== -1 || value.indexOf('\r') !== -1 || name.indexOf(':') !== -1 || name.indexOf('\n') !== -1) {
    throw new Error(`header "${name}" contains CR, LF or ':' and cannot be written`);
  }
}

/** `name: value\r\n` for each header, skipping names for which `skip`
 * returns true. */
export function headerLines(h: HeaderList, skip: ((name: string) => boolean) | null): string {
  let s = '';
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!;
    const v = h[i + 1]!;
    if (skip !== null && skip(n)) continue;
    checkField(n, v);
    s += n + ': ' + v + '\r\n';
  }
  return s;
}

/** Names the request serializer owns (it writes framing and host itself). */
function isRequestFramingName(n: string): boolean {
  switch (n.length) {
    case 4: return n === 'host';
    case 6: return n === 'expect';
    case 7: return n === 'upgrade';
    case 10: return n === 'connection' || n === 'keep-alive';
    case 14: return n === 'content-length';
    case 17: return n === 'transfer-encoding';
  }
  return false;
}

export interface RequestFraming {
  /** null: no body; -1: chunked; else content-length. */
  bodyLength: number | null;
  close: boolean;
  expectContinue: boolean;
}

/** The upstream request head. */
export function serializeRequestHead(head: RequestHead, f: RequestFraming): string {
  let s = head.method + ' ' + head.path + ' HTTP/1.1\r\nhost: ' + head.authority + '\r\n';
  s += headerLines(head.headers, isRequestFramingName);
  if (f.bodyLength !== null) s += f.bodyLength === -1 ? 'transfer-encoding: chunked\r\n' : 'content-length: ' + f.bodyLength + '\r\n';
  if (f.expectContinue) s += 'expect: 100-continue\r\n';
  if (head.upgrade !== undefined) s += 'connection: upgrade\r\nupgrade: ' + head.upgrade + '\r\n';
  else if (f.close) s += 'connection: close\r\n';
  return s + '\r\n';
}

/** The chunk-size line for `n` bytes of data. */
export function chunkHeader(n: number): string {
  return n.toString(16) + '\r\n';
}

/** The last chunk, with trailers when given. */
export function lastChunk(trailers: HeaderList | null): string {
  if (trailers === null || trailers.length === 0) return '0\r\n\r\n';
  return '0\r\n' + headerLines(trailers, null) + '\r\n';
}
