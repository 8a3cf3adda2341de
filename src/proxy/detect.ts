// Protocol detection: peek at the first bytes a client sends and decide
// whether the connection is TLS, HTTP/2 with prior knowledge, HTTP/1.x or
// something else (opaque TCP). The bytes read are returned so the chosen
// codec (or the TCP proxy) processes them first: nothing is lost.
//
// Rules, as Linkerd does it:
// - `classify()` decides as soon as the bytes allow it and asks for more
//   while the prefix is still ambiguous (a partial HTTP/2 preface, a method
//   token without its space yet). It never looks past `maxBytes`.
// - No bytes within `timeoutMs`: the client is waiting for the server to
//   speak first (MySQL, SMTP, ...), so the connection becomes opaque TCP.
//   Ports known to be server-first should be configured `protocol: opaque`
//   on their filter chain; then detection is skipped and nothing waits.
// - Some bytes but still ambiguous at the timeout or the size bound: HTTP/1
//   if they look like the start of a request line, else opaque.
// - The client half-closes (FIN) before a decision: decide on what arrived.
import type { Socket } from 'node:net';

export type DetectedProtocol = 'tls' | 'http1' | 'http2' | 'opaque';

export type Classification = DetectedProtocol | 'need_more';

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Longest method token we accept while sniffing (registered methods are shorter). */
const MAX_METHOD = 24;

export const DEFAULT_DETECT_TIMEOUT_MS = 200;
export const DEFAULT_DETECT_MAX_BYTES = 4096;

// RFC 9110 tchar: ! # $ % & ' * + - . ^ _ ` | ~ DIGIT ALPHA
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TCHAR[c] = 1;
for (let c = 65; c <= 90; c++) TCHAR[c] = 1;
for (let c = 97; c <= 122; c++) TCHAR[c] = 1;

/** Decide what `buf` (the first bytes of a connection) is, or 'need_more'. */
export function classify(buf: Buffer): Classification {
  if (buf.length === 0) return 'need_more';
  // TLS record: handshake (0x16), version major 3.
  if (buf[0] === 0x16) {
    if (buf.length < 2) return 'need_more';
    return buf[1] === 0x03 ? 'tls' : 'opaque';
  }
  // HTTP/2 prior knowledge: the whole 24-byte preface, or a prefix of it.
  const n = Math.min(buf.length, H2_PREFACE.length);
  if (buf.compare(H2_PREFACE, 0, n, 0, n) === 0) {
    return buf.length >= H2_PREFACE.length ? 'http2' : 'need_more';
  }
  // HTTP/1.x: a method token followed by a space.
  return classifyRequestLine(buf);
}

function classifyRequestLine(buf: Buffer): Classification {
  const limit = Math.min(buf.length, MAX_METHOD + 1);
  for (let i = 0; i < limit; i++) {
    const c = buf[i]!;
    if (c === 0x20) return i > 0 ? 'http1' : 'opaque';
    if (c >= 128 || TCHAR[c] !== 1) return 'opaque';
  }
  return buf.length > MAX_METHOD ? 'opaque' : 'need_more';
}

/** Final decision when no more bytes will be waited for. */
function settle(buf: Buffer): DetectedProtocol {
  const c = classify(buf);
  if (c !== 'need_more') return c;
  if (buf.length === 0) return 'opaque';
  // A partial HTTP/2 preface ("PRI ...") is also a plausible HTTP/1 method.
  return 'http1';
}

export interface DetectOptions {
  timeoutMs?: number;
  maxBytes?: number;
}

export type DetectResult =
  | {
      ok: true;
      protocol: DetectedProtocol;
      /** Bytes already read from the socket; the next stage must use them first. */
      initial: Buffer;
      /** Why detection stopped: a decision from the bytes, the timeout, the size
       * bound, or the client's FIN. */
      reason: 'sniffed' | 'timeout' | 'max_bytes' | 'eof';
    }
  | { ok: false; reason: 'closed' | 'error'; error?: Error };

/**
 * Read from `socket` until the protocol is known. The socket is left paused
 * in its default (non-flowing, no listeners) state: the next stage attaches
 * its own `data` listener, which starts the flow again. Resolves once.
 */
export function detectProtocol(socket: Socket, opts: DetectOptions = {}): Promise<DetectResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DETECT_TIMEOUT_MS;
  const maxBytes = opts.maxBytes ?? DEFAULT_DETECT_MAX_BYTES;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;

    const finish = (r: DetectResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
      socket.removeListener('end', onEnd);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      resolve(r);
    };
    const buffered = (): Buffer => (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));

    const onReadable = (): void => {
      let chunk: Buffer | null;
      while (!done && (chunk = socket.read() as Buffer | null) !== null) {
        chunks.push(chunk);
        size += chunk.length;
        const buf = buffered();
        const c = classify(buf);
        if (c !== 'need_more') finish({ ok: true, protocol: c, initial: buf, reason: 'sniffed' });
        else if (size >= maxBytes) finish({ ok: true, protocol: settle(buf), initial: buf, reason: 'max_bytes' });
      }
    };
    const onEnd = (): void => {
      const buf = buffered();
      finish({ ok: true, protocol: settle(buf), initial: buf, reason: 'eof' });
    };
    const onError = (error: Error): void => finish({ ok: false, reason: 'error', error });
    const onClose = (): void => finish({ ok: false, reason: 'closed' });
    // The timer phase runs before the poll phase: after an event-loop stall
    // the timer would fire before bytes that arrived meanwhile are read.
    // Deciding in setImmediate (after poll) lets them be classified first.
    const timer = setTimeout(() => {
      setImmediate(() => {
        const buf = buffered();
        finish({ ok: true, protocol: settle(buf), initial: buf, reason: 'timeout' });
      });
    }, timeoutMs);

    socket.on('readable', onReadable);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
}
