// The downstream HTTP/1.x codec: one accepted socket in, ProxyRequests out
// through `conn.dispatch`, responses written back. Raw `net.Socket`, an
// incremental parser, corked writes and one exchange object per request.
//
// One request is in flight per connection: pipelined bytes stay buffered
// (bounded; the socket is paused past the bound) until the current response
// is complete, so responses are in order by construction.
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { ConnectionContext, ServeConnection } from '../connection.ts';
import type {
  BodySink, BodySource, ExchangeController, HeaderList, ProxyRequest, RequestContext, RequestHead,
  ResponseHandler, ResponseHead,
} from '../http/exchange.ts';
import { getHeader } from '../http/exchange.ts';
import { ProxyError, rescue, toProxyError } from '../errors.ts';
import type { SyntheticResponse } from '../errors.ts';
import type { ParsedRequestHead } from './head-parser.ts';
import { DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_HEADERS_COUNT, parseContentLength, parseRequestHead } from './head-parser.ts';
import { BODY_CHUNKED, BODY_LENGTH, BodyDecoder } from './body-decoder.ts';
import type { BodyTarget } from './body-decoder.ts';
import { chunkHeader, headerLines, lastChunk, statusLine } from './serialize.ts';

export interface Http1ServerOptions {
  /** Largest request head accepted; larger gets 431. */
  maxHeadBytes: number;
  /** Most header fields in a request head; more gets 431 (Envoy's max_headers_count). */
  maxHeadersCount: number;
  /** Time allowed to receive a whole request head once it has begun. */
  headersTimeoutMs: number;
  /** Close a keep-alive connection idle this long between requests. */
  idleTimeoutMs: number;
  /** After a closing response, wait this long for the peer to close. */
  lingerMs: number;
  /** Pipelined bytes buffered while a response is in progress before the
   * socket is paused. */
  maxBufferedBytes: number;
}

export const DEFAULT_HTTP1_SERVER_OPTIONS: Http1ServerOptions = {
  maxHeadBytes: DEFAULT_MAX_HEAD_BYTES,
  maxHeadersCount: DEFAULT_MAX_HEADERS_COUNT,
  headersTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  lingerMs: 2_000,
  maxBufferedBytes: 64 * 1024,
};

export function createHttp1Server(options: Partial<Http1ServerOptions> = {}): ServeConnection {
  const opts: Http1ServerOptions = { ...DEFAULT_HTTP1_SERVER_OPTIONS, ...options };
  return function serveHttp1(socket: Socket, initial: Buffer, conn: ConnectionContext): void {
    new ServerConnection(socket, conn, opts, initial);
  };
}

/** The codec entry point with default options. */
export const serveHttp1: ServeConnection = createHttp1Server();

const CONTINUE_100 = 'HTTP/1.1 100 Continue\r\n\r\n';

/** Response header names the codec writes itself (framing, connection). */
function isResponseFramingOrLengthName(n: string): boolean {
  return n === 'content-length' || isResponseFramingName(n);
}

function isResponseFramingName(n: string): boolean {
  switch (n.length) {
    case 7: return n === 'upgrade';
    case 10: return n === 'connection' || n === 'keep-alive';
    case 16: return n === 'proxy-connection';
    case 17: return n === 'transfer-encoding';
  }
  return false;
}

function flushHeadNT(c: ServerConnection): void {
  c.flushScheduled = false;
  c.flushHead();
}

/** Bodies up to this size are copied into one buffer with the framing
 * around them (one write); larger ones go out as a corked writev. */
const COALESCE_MAX = 16 * 1024;

class ServerConnection {
  readonly socket: Socket;
  readonly ctx: ConnectionContext;
  readonly opts: Http1ServerOptions;
  buf: Buffer | null = null;
  ex: ServerExchange | null = null;
  /** No more requests: finish the current response, then close. */
  closeAfter = false;
  draining = false;
  /** socket.end() was called; further input is discarded. */
  closing = false;
  dead = false;
  upgraded = false;
  peerEnded = false;
  private processing = false;
  private readPaused = false;
  /** A response head not written yet: it goes out with the first body
   * bytes (one write), or on the next tick if none come. */
  private pendingHead: string | null = null;
  flushScheduled = false;
  /** Response delivery is paused until the socket drains. */
  needDrain = false;
  private headPending = false;
  private headStart = 0;
  private idleTimer: NodeJS.Timeout;
  private headTimer: NodeJS.Timeout | null = null;
  private readonly untrack: () => void;
  private readonly initialBytes: number;
  private readonly dataListener = (d: Buffer): void => this.onData(d);
  private readonly endListener = (): void => this.onEnd();
  private readonly drainListener = (): void => this.onDrain();

  constructor(socket: Socket, ctx: ConnectionContext, opts: Http1ServerOptions, initial: Buffer) {
    this.socket = socket;
    this.ctx = ctx;
    this.opts = opts;
    this.initialBytes = initial.length;
    socket.allowHalfOpen = true;
    socket.setNoDelay(true);
    socket.on('data', this.dataListener);
    socket.on('end', this.endListener);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.onClose());
    socket.on('drain', this.drainListener);
    socket.resume(); // protocol detection may have left it paused
    this.idleTimer = setTimeout(() => this.onIdleTimer(), opts.idleTimeoutMs);
    this.idleTimer.unref();
    this.untrack = ctx.track({ drain: () => this.drain(), destroy: () => socket.destroy() });
    if (socket.destroyed) {
      this.onClose();
      return;
    }
    if (initial.length > 0) this.onData(initial);
  }

  // ---- writing ----

  /** Hold a response head until the body's first bytes (or the next tick). */
  writeHead(head: string): void {
    this.pendingHead = head;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(flushHeadNT, this);
    }
  }

  flushHead(): void {
    const h = this.pendingHead;
    if (h !== null) {
      this.pendingHead = null;
      this.write(h);
    }
  }

  /** `prefix data suffix` (after any pending head) in as few writes as
   * possible: one for small bodies. */
  send(prefix: string, data: Buffer | null, suffix: string): boolean {
    let pre = prefix;
    if (this.pendingHead !== null) {
      pre = this.pendingHead + prefix;
      this.pendingHead = null;
    }
    if (data === null) return this.write(pre + suffix);
    if (this.dead || this.closing) return true;
    if (pre.length === 0 && suffix.length === 0) return this.write(data);
    const n = data.length;
    if (n <= COALESCE_MAX) {
      const b = Buffer.allocUnsafe(pre.length + n + suffix.length);
      if (pre.length > 0) b.write(pre, 0, 'latin1');
      data.copy(b, pre.length);
      if (suffix.length > 0) b.write(suffix, pre.length + n, 'latin1');
      return this.write(b);
    }
    const socket = this.socket;
    socket.cork();
    if (pre.length > 0) this.write(pre);
    let ok = this.write(data);
    if (suffix.length > 0) ok = this.write(suffix);
    socket.uncork();
    return ok;
  }

  write(data: string | Buffer): boolean {
    if (this.dead || this.closing) return true;
    const ok = typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
    if (!ok) this.needDrain = true;
    return ok;
  }

  private onDrain(): void {
    if (!this.needDrain) return;
    this.needDrain = false;
    const ex = this.ex;
    if (ex !== null && ex.controller !== null && ex.resState === RES_STREAMING) ex.controller.resume();
  }

  // ---- reading ----

  private onData(d: Buffer): void {
    if (this.closing || this.dead) return;
    this.buf = this.buf === null ? d : Buffer.concat([this.buf, d]);
    this.process();
  }

  /** Parse heads and feed bodies from `buf` as far as the state allows. */
  process(): void {
    if (this.processing) return;
    this.processing = true;
    try {
      while (this.buf !== null && !this.dead && !this.closing && !this.upgraded) {
        const ex = this.ex;
        if (ex === null) {
          if (this.closeAfter || this.draining) { this.closeGracefully(); break; }
          const r = parseRequestHead(this.buf, 0, this.opts.maxHeadBytes, this.opts.maxHeadersCount);
          if (r.kind === 'incomplete') {
            if (!this.headPending) this.beginHeadTimer();
            break;
          }
          this.headPending = false;
          if (r.kind === 'error') {
            this.rejectHead(new ProxyError(r.code, r.reason));
            break;
          }
          this.buf = r.end < this.buf.length ? this.buf.subarray(r.end) : null;
          this.startExchange(r);
          continue;
        }
        if (ex.bodyDone || ex.sinkPaused || (ex.sink === null && !ex.discardBody)) break;
        const buf = this.buf;
        const pos = ex.decoder.decode(buf, 0, ex);
        this.buf = pos < buf.length ? buf.subarray(pos) : null;
        if (ex.decoder.error !== null) {
          ex.bodyFailed(new ProxyError('BAD_REQUEST', ex.decoder.error));
          break;
        }
        if (ex.decoder.done) ex.bodyComplete();
      }
    } catch {
      // A body sink threw (a bug above us): drop this connection, not the process.
      this.processing = false;
      this.socket.destroy();
      return;
    } finally {
      this.processing = false;
    }
    this.updateFlow();
  }

  /** Pause the socket when nothing can consume more input. */
  updateFlow(): void {
    if (this.dead || this.upgraded) return;
    let want = true;
    const ex = this.ex;
    if (this.closing) want = true;
    else if (ex !== null) {
      if (ex.sinkPaused) want = false;
      else if (ex.bodyDone || (ex.sink === null && !ex.discardBody)) want = this.buf === null || this.buf.length < this.opts.maxBufferedBytes;
    } else if (this.closeAfter || this.draining) want = false;
    if (want === this.readPaused) {
      this.readPaused = !want;
      if (want) this.socket.resume();
      else this.socket.pause();
    }
  }

  private beginHeadTimer(): void {
    this.headPending = true;
    this.headStart = performance.now();
    if (this.headTimer === null) {
      this.headTimer = setTimeout(() => this.onHeadTimer(), this.opts.headersTimeoutMs);
      this.headTimer.unref();
    } else {
      this.headTimer.refresh();
    }
  }

  private onHeadTimer(): void {
    if (this.headPending && this.ex === null && !this.dead) this.socket.destroy();
  }

  private onIdleTimer(): void {
    if (this.ex === null && this.buf === null && !this.headPending && !this.upgraded && !this.dead) this.socket.destroy();
  }

  private startExchange(p: ParsedRequestHead): void {
    const startTime = this.headPending ? this.headStart : performance.now();
    const t = resolveTarget(p, this.ctx.downstream.tls === true);
    if (typeof t === 'string') {
      this.rejectHead(new ProxyError('BAD_REQUEST', t));
      return;
    }
    const http10 = p.version === '1.0';
    const head: RequestHead = {
      method: p.method,
      scheme: t.scheme,
      authority: t.authority,
      path: t.path,
      headers: p.headers,
      httpVersion: p.version,
    };
    // h2c is the proxy's own business (prior knowledge or ALPN), not a
    // protocol switch to pass through.
    if (p.connectionUpgrade && p.upgrade !== undefined && !http10 && p.upgrade.toLowerCase() !== 'h2c') head.upgrade = p.upgrade;
    // CONNECT is a protocol switch too (Envoy's upgradeType CONNECT): 2xx, then a pipe.
    if (p.method === 'CONNECT') head.upgrade = 'CONNECT';
    if (p.expectContinue && !http10) head.expectContinue = true;
    const ex = new ServerExchange(this, head, p);
    const ctx: RequestContext = {
      listener: this.ctx.listener,
      direction: this.ctx.direction,
      downstream: this.ctx.downstream,
      startTime,
      deadline: null,
      responseFlags: [],
      grpc: false,
      attempts: 0,
      attrs: new Map(),
    };
    const req: ProxyRequest = { head, body: ex.hasBody ? ex : null, ctx };
    this.ex = ex;
    try {
      this.ctx.dispatch(req, ex);
    } catch (e) {
      ex.onError(toProxyError(e));
    }
  }

  /** A head we cannot serve: answer from the rescue edge and close. */
  private rejectHead(err: ProxyError): void {
    this.buf = null;
    const r = rescue(err, false);
    this.send(rescueHead(r) + 'connection: close\r\n\r\n', r.body, '');
    this.closeGracefully();
  }

  /** The response for `ex` is complete on the wire. */
  finishExchange(ex: ServerExchange): void {
    if (this.ex !== ex) return;
    this.flushHead();
    if (!ex.bodyDone) ex.discardRest();
    this.ex = null;
    if (!ex.bodyDone || !ex.keepAlive || this.closeAfter || this.draining || this.peerEnded) {
      this.closeGracefully();
      return;
    }
    this.idleTimer.refresh();
    if (this.buf !== null) this.process();
    else this.updateFlow();
  }

  closeGracefully(): void {
    if (this.closing || this.dead) return;
    this.flushHead();
    this.closing = true;
    this.buf = null;
    this.socket.end();
    if (this.peerEnded) {
      this.socket.destroySoon();
      return;
    }
    const t = setTimeout(() => this.socket.destroy(), this.opts.lingerMs);
    t.unref();
    this.socket.once('close', () => clearTimeout(t));
    if (this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
  }

  private onEnd(): void {
    this.peerEnded = true;
    if (this.upgraded) return;
    if (this.closing || this.ex === null) {
      this.socket.destroySoon();
      return;
    }
    // A FIN while a request is in flight: the client cannot finish its
    // body, or has given up waiting (clients do not half-close HTTP/1).
    // Abort the exchange rather than keep an upstream busy for nobody.
    this.socket.destroy();
  }

  private onClose(): void {
    if (this.dead) return;
    this.dead = true;
    clearTimeout(this.idleTimer);
    if (this.headTimer !== null) clearTimeout(this.headTimer);
    this.untrack();
    const ex = this.ex;
    this.ex = null;
    this.buf = null;
    if (ex !== null) ex.downstreamGone();
    this.ctx.onClose?.({ bytesIn: this.initialBytes + this.socket.bytesRead, bytesOut: this.socket.bytesWritten });
  }

  private drain(): void {
    this.draining = true;
    // An upgraded connection is an opaque pipe: it ends at the drain deadline.
    if (this.ex === null && !this.upgraded) this.closeGracefully();
  }

  /** Hand the socket over to an opaque two-way pipe (101 Switching Protocols). */
  upgrade(upstream: Duplex, upstreamHead: Buffer, rest: Buffer | null): void {
    this.upgraded = true;
    this.flushHead();
    const socket = this.socket;
    socket.removeListener('data', this.dataListener);
    socket.removeListener('end', this.endListener);
    socket.removeListener('drain', this.drainListener);
    (upstream as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
    if (upstreamHead.length > 0) socket.write(upstreamHead);
    if (rest !== null) upstream.write(rest);
    upstream.on('error', () => upstream.destroy());
    upstream.on('close', () => {
      if (!upstream.readableEnded) socket.destroy();
    });
    socket.on('close', () => {
      if (!socket.readableEnded) upstream.destroy();
    });
    socket.pipe(upstream);
    upstream.pipe(socket);
    this.readPaused = false;
  }
}

const EMPTY_BODY = new BodyDecoder();
EMPTY_BODY.reset(BODY_LENGTH, 0);

const RES_WAITING = 0;
const RES_STREAMING = 1;
const RES_DONE = 2;

/** One request/response on a downstream connection: the request body
 * source and the response handler in one object. */
class ServerExchange implements BodySource, ResponseHandler, BodyTarget {
  readonly c: ServerConnection;
  readonly head: RequestHead;
  readonly contentLength: number | null;
  readonly hasBody: boolean;
  readonly keepAlive: boolean;
  readonly http10: boolean;
  readonly isHead: boolean;
  readonly decoder: BodyDecoder;
  controller: ExchangeController | null = null;
  sink: BodySink | null = null;
  sinkPaused = false;
  bodyDone: boolean;
  /** The body is not wanted any more: decode and drop it. */
  discardBody = false;
  private started = false;
  private sent100 = false;
  private aborted: ProxyError | null = null;
  resState = RES_WAITING;
  private resChunked = false;
  private resNoBody = false;
  /** Bytes still due under Content-Length framing, -1 otherwise. */
  private resRemaining = -1;

  constructor(c: ServerConnection, head: RequestHead, p: ParsedRequestHead) {
    this.c = c;
    this.head = head;
    this.http10 = p.version === '1.0';
    this.isHead = p.method === 'HEAD';
    this.keepAlive = this.http10 ? p.connectionKeepAlive && !p.connectionClose : !p.connectionClose;
    if (p.chunked) {
      this.contentLength = null;
      this.hasBody = true;
      this.decoder = new BodyDecoder();
      this.decoder.reset(BODY_CHUNKED, 0);
    } else if (p.contentLength > 0) {
      this.contentLength = p.contentLength;
      this.hasBody = true;
      this.decoder = new BodyDecoder();
      this.decoder.reset(BODY_LENGTH, p.contentLength);
    } else {
      // Nothing to decode: share one finished decoder.
      this.contentLength = 0;
      this.hasBody = p.contentLength === 0;
      this.decoder = EMPTY_BODY;
    }
    this.bodyDone = this.decoder.done;
  }

  // ---- BodySource ----

  start(sink: BodySink): void {
    if (this.started) throw new Error('BodySource.start called twice');
    this.started = true;
    if (this.discardBody || this.aborted !== null) return;
    this.sink = sink;
    if (this.bodyDone) {
      sink.onEnd(null);
      return;
    }
    if (this.head.expectContinue === true && !this.sent100 && this.resState === RES_WAITING) {
      this.sent100 = true;
      this.c.write(CONTINUE_100);
    }
    this.c.process();
  }

  resume(): void {
    if (!this.sinkPaused) return;
    this.sinkPaused = false;
    if (this.c.ex === this) this.c.process();
  }

  destroy(_err?: Error): void {
    this.sink = null;
    this.sinkPaused = false;
    if (!this.bodyDone) {
      this.discardBody = true;
      if (this.c.ex === this) this.c.process();
    }
  }

  bodyData(chunk: Buffer): boolean {
    const sink = this.sink;
    if (sink === null) return true;
    if (!sink.onData(chunk)) {
      if (this.sink !== null) this.sinkPaused = true;
      return false;
    }
    return true;
  }

  bodyComplete(): void {
    this.bodyDone = true;
    const sink = this.sink;
    this.sink = null;
    if (sink !== null) sink.onEnd(this.decoder.trailers);
  }

  bodyFailed(err: ProxyError): void {
    this.c.closeAfter = true;
    const sink = this.sink;
    this.sink = null;
    if (sink !== null) sink.onError(err);
    if (this.controller !== null && this.resState !== RES_DONE) this.controller.abort(err);
    this.onError(err);
  }

  /** Drop the rest of the body if all of it is already buffered, so the
   * connection can be reused after an early response. */
  discardRest(): void {
    this.sink = null;
    this.discardBody = true;
    const buf = this.c.buf;
    if (buf === null) return;
    const pos = this.decoder.decode(buf, 0, this);
    if (this.decoder.error === null && this.decoder.done) {
      this.bodyDone = true;
      this.c.buf = pos < buf.length ? buf.subarray(pos) : null;
    }
  }

  downstreamGone(): void {
    const err = new ProxyError('DOWNSTREAM_CLOSED');
    const sink = this.sink;
    this.sink = null;
    if (sink !== null && !this.bodyDone) sink.onError(err);
    if (this.resState !== RES_DONE) {
      this.resState = RES_DONE;
      if (this.controller !== null) this.controller.abort(err);
      else this.aborted = err;
    }
  }

  // ---- ResponseHandler ----

  onStart(controller: ExchangeController): void {
    this.controller = controller;
    if (this.aborted !== null) controller.abort(this.aborted);
  }

  onInformational(head: ResponseHead): void {
    if (this.resState !== RES_WAITING || this.http10 || this.c.dead) return;
    if (head.status === 100) {
      if (this.head.expectContinue === true && !this.sent100) {
        this.sent100 = true;
        this.c.write(CONTINUE_100);
      }
      return;
    }
    if (head.status === 101 || head.status < 100 || head.status > 199) return;
    let s: string;
    try {
      s = statusLine(head.status) + headerLines(head.headers, isResponseFramingName) + '\r\n';
    } catch {
      return; // an interim response that cannot be written is only a hint
    }
    this.c.write(s);
  }

  onHeaders(head: ResponseHead): boolean {
    if (this.resState !== RES_WAITING) return true;
    const c = this.c;
    if (c.dead) return true;
    const status = head.status;
    let s: string;
    try {
      s = statusLine(status) + headerLines(head.headers, isResponseFramingName);
    } catch (e) {
      // A header no HTTP/1 message can carry (CR/LF): answer from the rescue edge.
      const err = new ProxyError('INTERNAL', e instanceof Error ? e.message : String(e));
      this.controller?.abort(err);
      this.onError(err);
      return true;
    }
    this.resState = RES_STREAMING;
    let close = !this.keepAlive || c.closeAfter || c.draining;
    if (!this.bodyDone && (this.sink === null || this.discardBody)) {
      this.discardRest();
      if (!this.bodyDone) close = true;
    }
    if (this.isHead || status === 204 || status === 304 || status < 200) {
      this.resNoBody = true;
    } else {
      const cl = getHeader(head.headers, 'content-length');
      const n = cl === undefined ? -1 : parseContentLength(cl);
      if (n === -2) {
        // Not a length we can frame by: drop it and frame by chunks/close.
        s = statusLine(status) + headerLines(head.headers, isResponseFramingOrLengthName);
      }
      if (n >= 0) {
        this.resRemaining = n;
      } else if (!this.http10) {
        this.resChunked = true;
        s += 'transfer-encoding: chunked\r\n';
      } else {
        close = true;
      }
    }
    if (close) {
      c.closeAfter = true;
      s += 'connection: close\r\n\r\n';
    } else if (this.http10) {
      s += 'connection: keep-alive\r\n\r\n';
    } else {
      s += '\r\n';
    }
    c.writeHead(s);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.resState !== RES_STREAMING) return true;
    const n = chunk.length;
    if (this.resNoBody || n === 0) return true;
    const c = this.c;
    if (this.resRemaining >= 0) {
      if (n > this.resRemaining) {
        // More than the declared length: the framing cannot be kept.
        this.resState = RES_DONE;
        c.socket.destroy();
        return true;
      }
      this.resRemaining -= n;
      return c.send('', chunk, '');
    }
    if (this.resChunked) return c.send(chunkHeader(n), chunk, '\r\n');
    return c.send('', chunk, '');
  }

  onEnd(trailers: HeaderList | null): void {
    if (this.resState !== RES_STREAMING) return;
    this.resState = RES_DONE;
    const c = this.c;
    if (this.resRemaining > 0) {
      c.socket.destroy();
      return;
    }
    if (this.resChunked) {
      let last: string;
      try {
        last = lastChunk(trailers);
      } catch {
        last = lastChunk(null); // trailers that cannot be written are dropped
      }
      c.send(last, null, '');
    }
    c.finishExchange(this);
  }

  onError(err: ProxyError): void {
    const c = this.c;
    if (this.resState === RES_STREAMING) {
      this.resState = RES_DONE;
      c.socket.destroy();
      return;
    }
    if (this.resState !== RES_WAITING) return;
    this.resState = RES_DONE;
    if (c.dead) return;
    const r = rescue(toProxyError(err), false);
    let close = !this.keepAlive || c.closeAfter || c.draining;
    if (!this.bodyDone) {
      this.discardRest();
      if (!this.bodyDone) close = true;
    }
    if (close) c.closeAfter = true;
    const head = rescueHead(r) + (close ? 'connection: close\r\n\r\n' : this.http10 ? 'connection: keep-alive\r\n\r\n' : '\r\n');
    c.send(head, this.isHead ? null : r.body, '');
    c.finishExchange(this);
  }

  onUpgrade(head: ResponseHead, upstream: Duplex, upstreamHead: Buffer): void {
    const c = this.c;
    if (this.resState !== RES_WAITING || c.dead || this.head.upgrade === undefined) {
      upstream.destroy();
      if (this.resState === RES_WAITING && !c.dead) this.onError(new ProxyError('UPSTREAM_PROTOCOL_ERROR', '101 Switching Protocols without an upgrade request'));
      return;
    }
    this.resState = RES_DONE;
    if (this.head.upgrade === 'CONNECT') c.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    else c.write(statusLine(101) + headerLines(head.headers, isResponseFramingName) + 'connection: upgrade\r\nupgrade: ' + this.head.upgrade + '\r\n\r\n');
    const rest = c.buf;
    c.buf = null;
    c.ex = null;
    c.upgrade(upstream, upstreamHead, rest);
  }
}

/** Status line and headers of a synthetic response. Extra headers a layer
 * attached that cannot be written are left out rather than thrown. */
function rescueHead(r: SyntheticResponse): string {
  try {
    return statusLine(r.status) + headerLines(r.headers, null);
  } catch {
    return statusLine(r.status) + headerLines(r.headers.slice(0, 6), null);
  }
}

interface Target {
  scheme: 'http' | 'https';
  authority: string;
  path: string;
}

const CONNECT_TARGET = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

/** Origin-form, absolute-form (HTTP_PROXY clients), `OPTIONS *` and CONNECT's authority-form. */
function resolveTarget(p: ParsedRequestHead, tls: boolean): Target | string {
  const t = p.target;
  const first = t.charCodeAt(0);
  // CONNECT host:port (authority-form): a tunnel, routed by that authority
  // to a connectMatcher route (cluster.ts opens it; docs/http1.md).
  if (p.method === 'CONNECT') return CONNECT_TARGET.test(t) ? { scheme: 'http', authority: t.toLowerCase(), path: '' } : 'CONNECT needs an authority-form target (host:port)';
  if (p.version === '1.1' && p.host === undefined) return 'missing Host header';
  if (first === 47 /* / */) {
    return { scheme: tls ? 'https' : 'http', authority: p.host ?? '', path: t };
  }
  if (t === '*' && p.method === 'OPTIONS') return { scheme: tls ? 'https' : 'http', authority: p.host ?? '', path: '*' };
  const lower = t.slice(0, 8).toLowerCase();
  let scheme: 'http' | 'https';
  let rest: string;
  if (lower.startsWith('http://')) { scheme = 'http'; rest = t.slice(7); }
  else if (lower === 'https://') { scheme = 'https'; rest = t.slice(8); }
  else return `invalid request target "${t.slice(0, 64)}"`;
  let end = rest.length;
  for (let i = 0; i < rest.length; i++) {
    const c = rest.charCodeAt(i);
    if (c === 47 || c === 63 || c === 35) { end = i; break; }
  }
  const authority = rest.slice(0, end);
  if (authority.length === 0 || authority.includes('@')) return 'invalid authority in the absolute-form request target';
  let path = rest.slice(end);
  const hash = path.indexOf('#');
  if (hash !== -1) path = path.slice(0, hash);
  if (path === '') path = '/';
  else if (path.charCodeAt(0) === 63) path = '/' + path;
  return { scheme, authority, path };
}
