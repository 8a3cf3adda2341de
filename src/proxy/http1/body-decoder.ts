// HTTP/1.x message bodies, decoded incrementally: Content-Length, chunked
// (with trailers) and read-until-close. Shared by the downstream server
// (request bodies) and the upstream pool (response bodies). Data is handed
// on as zero-copy views of the received buffers; the target may pause the
// decoder by returning false.
import type { HeaderList } from '../http/exchange.ts';
import { parseTrailers } from './head-parser.ts';

export interface BodyTarget {
  /** Return false to stop decoding after this chunk (backpressure). */
  bodyData(chunk: Buffer): boolean;
}

export const BODY_LENGTH = 0;
export const BODY_CHUNKED = 1;
export const BODY_UNTIL_CLOSE = 2;
export type BodyMode = typeof BODY_LENGTH | typeof BODY_CHUNKED | typeof BODY_UNTIL_CLOSE;

// chunked states
const SIZE = 0;
const SIZE_WS = 1;
const EXT = 2;
const SIZE_LF = 3;
const DATA = 4;
const DATA_CR = 5;
const DATA_LF = 6;
const TRAILER = 7;

const MAX_SIZE_DIGITS = 12;
export const MAX_TRAILER_BYTES = 64 * 1024;

export class BodyDecoder {
  mode: BodyMode = BODY_LENGTH;
  /** Bytes left: of the whole body (length mode) or of the current chunk. */
  remaining = 0;
  done = false;
  error: string | null = null;
  /** The target returned false on the last chunk. */
  paused = false;
  trailers: HeaderList | null = null;
  /** Body bytes delivered so far. */
  received = 0;
  private state = SIZE;
  private digits = 0;
  private lineLen = 0;
  private trailerParts: Buffer[] | null = null;
  private trailerBytes = 0;

  reset(mode: BodyMode, length: number): void {
    this.mode = mode;
    this.remaining = mode === BODY_LENGTH ? length : 0;
    this.done = mode === BODY_LENGTH && length === 0;
    this.error = null;
    this.paused = false;
    this.trailers = null;
    this.received = 0;
    this.state = SIZE;
    this.digits = 0;
    this.lineLen = 0;
    this.trailerParts = null;
    this.trailerBytes = 0;
  }

  /** Read-until-close bodies end when the connection does. */
  finishAtClose(): void {
    if (this.mode === BODY_UNTIL_CLOSE) this.done = true;
  }

  /** Decode from `buf[pos..]`; returns the offset of the first byte not
   * consumed. Stops early when done, on error, or when the target pauses. */
  decode(buf: Buffer, pos: number, target: BodyTarget): number {
    this.paused = false;
    const len = buf.length;
    if (this.done || this.error !== null) return pos;
    if (this.mode === BODY_LENGTH) {
      const n = Math.min(this.remaining, len - pos);
      if (n <= 0) return pos;
      this.remaining -= n;
      this.received += n;
      if (this.remaining === 0) this.done = true;
      const chunk = pos === 0 && n === len ? buf : buf.subarray(pos, pos + n);
      if (!target.bodyData(chunk)) this.paused = true;
      return pos + n;
    }
    if (this.mode === BODY_UNTIL_CLOSE) {
      if (pos >= len) return pos;
      this.received += len - pos;
      if (!target.bodyData(pos === 0 ? buf : buf.subarray(pos))) this.paused = true;
      return len;
    }
    while (pos < len) {
      switch (this.state) {
        case SIZE: {
          const c = buf[pos]!;
          const h = hexValue(c);
          if (h !== -1) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail('chunk size too large', pos);
            this.remaining = this.remaining * 16 + h;
            pos++;
          } else if (this.digits === 0) {
            return this.fail('invalid chunk size', pos);
          } else if (c === 13) {
            this.state = SIZE_LF;
            pos++;
          } else if (c === 59 /* ; */) {
            this.state = EXT;
            pos++;
          } else if (c === 32 || c === 9) {
            this.state = SIZE_WS;
            pos++;
          } else if (c === 10) {
            return this.fail('chunk size line not ended by CRLF (bare LF)', pos);
          } else {
            return this.fail('invalid chunk size', pos);
          }
          break;
        }
        case SIZE_WS: {
          const c = buf[pos]!;
          if (c === 59) this.state = EXT;
          else if (c !== 32 && c !== 9) return this.fail('invalid chunk size line', pos);
          pos++;
          break;
        }
        case EXT: {
          // Skip the extension; only HTAB and visible characters may appear.
          const cr = buf.indexOf(13, pos);
          const stop = cr === -1 ? len : cr;
          for (let i = pos; i < stop; i++) {
            const c = buf[i]!;
            if ((c < 32 && c !== 9) || c === 127) return this.fail('invalid chunk extension', i);
          }
          if (cr === -1) return len;
          this.state = SIZE_LF;
          pos = cr + 1;
          break;
        }
        case SIZE_LF: {
          if (buf[pos] !== 10) return this.fail('chunk size line not ended by CRLF', pos);
          pos++;
          this.digits = 0;
          if (this.remaining === 0) {
            this.state = TRAILER;
            this.lineLen = 0;
          } else {
            this.state = DATA;
          }
          break;
        }
        case DATA: {
          const n = Math.min(this.remaining, len - pos);
          this.remaining -= n;
          this.received += n;
          if (this.remaining === 0) this.state = DATA_CR;
          const ok = target.bodyData(buf.subarray(pos, pos + n));
          pos += n;
          if (!ok) {
            this.paused = true;
            return pos;
          }
          break;
        }
        case DATA_CR:
          if (buf[pos] !== 13) return this.fail('chunk data not followed by CRLF', pos);
          this.state = DATA_LF;
          pos++;
          break;
        case DATA_LF:
          if (buf[pos] !== 10) return this.fail('chunk data not followed by CRLF', pos);
          this.state = SIZE;
          pos++;
          break;
        case TRAILER:
          return this.trailer(buf, pos);
      }
    }
    return pos;
  }

  private trailer(buf: Buffer, pos: number): number {
    const start = pos;
    const len = buf.length;
    while (pos < len) {
      const c = buf[pos++]!;
      if (c === 10) {
        const prev = pos - 2 >= start ? buf[pos - 2] : this.lastTrailerByte();
        if (prev !== 13) return this.fail('bare LF in trailers', pos - 1);
        if (this.lineLen === 1) {
          // An empty line (just CR before LF): the message ends here.
          if (this.trailerBytes > 0 || pos - start > 2) {
            const parts = this.trailerParts ?? [];
            parts.push(buf.subarray(start, pos));
            const s = Buffer.concat(parts).toString('latin1');
            if (s.length > 2) {
              const t = parseTrailers(s);
              if (!Array.isArray(t)) return this.fail(t.reason, pos);
              this.trailers = t;
            }
          }
          this.trailerParts = null;
          this.done = true;
          return pos;
        }
        this.lineLen = 0;
      } else {
        this.lineLen++;
      }
    }
    this.trailerBytes += pos - start;
    if (this.trailerBytes > MAX_TRAILER_BYTES) return this.fail('trailers too large', pos);
    (this.trailerParts ??= []).push(buf.subarray(start, pos));
    return pos;
  }

  private lastTrailerByte(): number | undefined {
    const parts = this.trailerParts;
    if (parts === null || parts.length === 0) return undefined;
    const last = parts[parts.length - 1]!;
    return last[last.length - 1];
  }

  private fail(reason: string, pos: number): number {
    this.error = reason;
    return pos;
  }
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}
