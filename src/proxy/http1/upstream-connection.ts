// One upstream HTTP/1.1 client connection and the exchange it carries: the
// request is serialized and its body streamed with backpressure; the
// response is parsed incrementally and pushed to the handler. The pool
// (pool.ts) decides which exchange runs on which connection.
import net from 'node:net';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import type { BodySink, ExchangeController, HeaderList, ProxyRequest, ResponseHandler } from '../http/exchange.ts';
import { ProxyError, toProxyError } from '../errors.ts';
import type { PoolOptions } from '../upstream/types.ts';
import { DEFAULT_MAX_HEAD_BYTES, parseResponseHead } from './head-parser.ts';
import { BODY_CHUNKED, BODY_LENGTH, BODY_UNTIL_CLOSE, BodyDecoder } from './body-decoder.ts';
import type { BodyTarget } from './body-decoder.ts';
import { chunkHeader, lastChunk, serializeRequestHead } from './serialize.ts';

/** How long to wait for `100 Continue` before sending the body anyway. */
const EXPECT_CONTINUE_WAIT_MS = 1_000;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** What a connection tells the pool. */
export interface ConnectionOwner {
  readonly opts: PoolOptions;
  onReady(conn: UpstreamConnection): void;
  onConnectFailed(conn: UpstreamConnection, err: ProxyError): void;
  /** The exchange finished and the connection may carry another. */
  onReusable(conn: UpstreamConnection): void;
  /** The connection is gone (or handed over by an upgrade). */
  onGone(conn: UpstreamConnection): void;
  /** An exchange left the connection (finished, failed, requeued). */
  onExchangeLeft(): void;
  /** Try the exchange again on another connection (stale keep-alive). */
  requeue(ex: PoolExchange): void;
  removeQueued(ex: PoolExchange): void;
}

export const EX_QUEUED = 0;
export const EX_ACTIVE = 1;
export const EX_DONE = 2;

/** One request's life in the pool: the controller the handler holds and
 * the sink the request body is pushed into. */
export class PoolExchange implements ExchangeController, BodySink {
  readonly owner: ConnectionOwner;
  readonly req: ProxyRequest;
  readonly handler: ResponseHandler;
  conn: UpstreamConnection | null = null;
  state = EX_QUEUED;
  retried = false;

  constructor(owner: ConnectionOwner, req: ProxyRequest, handler: ResponseHandler) {
    this.owner = owner;
    this.req = req;
    this.handler = handler;
  }

  resume(): void {
    if (this.state === EX_ACTIVE && this.conn !== null) this.conn.resumeResponse();
  }

  abort(err: ProxyError): void {
    if (this.state === EX_DONE) return;
    if (this.state === EX_QUEUED) {
      this.owner.removeQueued(this);
      this.fail(err);
      return;
    }
    this.conn?.failExchange(err);
  }

  /** Fail while not on a connection. */
  fail(err: ProxyError): void {
    if (this.state === EX_DONE) return;
    this.state = EX_DONE;
    this.req.body?.destroy(err);
    this.handler.onError(err);
  }

  // ---- BodySink: the request body, pushed by the downstream codec ----

  onData(chunk: Buffer): boolean {
    if (this.state !== EX_ACTIVE || this.conn === null) return true;
    return this.conn.writeBody(this, chunk);
  }

  onEnd(trailers: HeaderList | null): void {
    if (this.state !== EX_ACTIVE || this.conn === null) return;
    this.conn.endBody(this, trailers);
  }

  onError(err: Error): void {
    this.abort(toProxyError(err, 'DOWNSTREAM_CLOSED'));
  }
}

const PHASE_HEAD = 0;
const PHASE_BODY = 1;

export class UpstreamConnection implements BodyTarget {
  readonly owner: ConnectionOwner;
  readonly socket: Socket;
  ready = false;
  dead = false;
  ex: PoolExchange | null = null;
  requests = 0;
  private buf: Buffer | null = null;
  private phase = PHASE_HEAD;
  private readonly decoder = new BodyDecoder();
  private resKeepAlive = false;
  private paused = false;
  private parsing = false;
  private eof = false;
  private gotBytes = false;
  private closeAfter = false;
  private isHeadRequest = false;
  /** Request body framing: -1 chunked, else the declared length. */
  private bodyLength = 0;
  private bodyWritten = 0;
  private reqBodyDone = true;
  private bodyStarted = false;
  private bodyNeedDrain = false;
  private continueTimer: NodeJS.Timeout | null = null;
  private connectTimer: NodeJS.Timeout | null;
  private timedOut = false;
  private lastError: Error | null = null;
  private idleTimer: NodeJS.Timeout | null = null;

  private readonly onDataL = (d: Buffer): void => this.onData(d);
  private readonly onEndL = (): void => this.onEof();
  private readonly onCloseL = (): void => this.onClose();
  private readonly onDrainL = (): void => this.onDrain();
  private readonly onErrorL = (e: Error): void => { this.lastError = e; };

  constructor(owner: ConnectionOwner) {
    this.owner = owner;
    const o = owner.opts;
    let socket: Socket;
    if (o.tls !== undefined) {
      socket = tls.connect({ servername: net.isIP(o.host) === 0 ? o.host : undefined, ...o.tls, host: o.host, port: o.port }).setNoDelay(true);
      socket.once('secureConnect', () => this.onConnect());
    } else {
      socket = net.connect({ host: o.host, port: o.port, allowHalfOpen: true, noDelay: true });
      socket.once('connect', () => this.onConnect());
    }
    this.socket = socket;
    socket.on('data', this.onDataL);
    socket.on('end', this.onEndL);
    socket.on('close', this.onCloseL);
    socket.on('drain', this.onDrainL);
    socket.on('error', this.onErrorL);
    this.connectTimer = setTimeout(() => {
      this.timedOut = true;
      socket.destroy();
    }, o.connectTimeoutMs);
  }

  private onConnect(): void {
    if (this.dead) return;
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.ready = true;
    this.owner.onReady(this);
  }

  /** Put the connection in the idle list (the pool holds the list). */
  markIdle(): void {
    if (this.idleTimer === null) {
      this.idleTimer = setTimeout(() => {
        if (this.ex === null && !this.dead) this.destroy();
      }, this.owner.opts.idleTimeoutMs);
      this.idleTimer.unref();
    } else {
      this.idleTimer.refresh();
    }
  }

  /** Close now; an exchange in flight fails with UPSTREAM_RESET. The pool
   * hears of it synchronously (onGone), so its counts stay exact. */
  destroy(): void {
    if (this.dead) return;
    if (this.ex !== null) {
      this.failExchange(new ProxyError('UPSTREAM_RESET', 'connection closed by the proxy'));
      return;
    }
    this.dead = true;
    this.clearTimers();
    this.socket.destroy();
    this.owner.onGone(this);
  }

  private clearTimers(): void {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    if (this.continueTimer !== null) clearTimeout(this.continueTimer);
    this.connectTimer = null;
    this.continueTimer = null;
  }

  // ---- request ----

  assign(ex: PoolExchange): void {
    this.ex = ex;
    ex.conn = this;
    ex.state = EX_ACTIVE;
    this.requests++;
    this.phase = PHASE_HEAD;
    this.buf = null;
    this.paused = false;
    this.eof = false;
    this.gotBytes = false;
    const head = ex.req.head;
    const body = ex.req.body;
    const max = this.owner.opts.maxRequestsPerConnection;
    this.closeAfter = max > 0 && this.requests >= max;
    this.isHeadRequest = head.method === 'HEAD';
    this.bodyWritten = 0;
    this.bodyStarted = false;
    this.bodyNeedDrain = false;
    this.reqBodyDone = body === null;
    this.bodyLength = body === null ? 0 : body.contentLength ?? -1;
    const expect = head.expectContinue === true && body !== null && this.bodyLength !== 0;
    let s: string;
    try {
      s = serializeRequestHead(head, { bodyLength: body === null ? null : this.bodyLength, close: this.closeAfter, expectContinue: expect });
    } catch (e) {
      this.failExchange(toProxyError(e));
      return;
    }
    const socket = this.socket;
    if (socket.isPaused()) socket.resume();
    if (body === null || expect) {
      socket.write(s, 'latin1');
    } else {
      // Head and whatever body is already at hand leave in one writev.
      socket.cork();
      socket.write(s, 'latin1');
      this.startBody();
      socket.uncork();
    }
    if (expect && this.ex === ex) {
      this.continueTimer = setTimeout(() => {
        this.continueTimer = null;
        if (this.ex === ex && !this.bodyStarted) this.startBody();
      }, EXPECT_CONTINUE_WAIT_MS);
    }
  }

  private startBody(): void {
    const ex = this.ex;
    if (ex === null || this.bodyStarted || ex.req.body === null) return;
    this.bodyStarted = true;
    if (this.continueTimer !== null) {
      clearTimeout(this.continueTimer);
      this.continueTimer = null;
    }
    try {
      ex.req.body.start(ex);
    } catch (e) {
      this.failExchange(toProxyError(e));
    }
  }

  writeBody(ex: PoolExchange, chunk: Buffer): boolean {
    if (this.ex !== ex || this.dead || this.reqBodyDone) return true;
    const n = chunk.length;
    if (n === 0) return true;
    this.bodyWritten += n;
    const socket = this.socket;
    let ok: boolean;
    if (this.bodyLength === -1) {
      socket.cork();
      socket.write(chunkHeader(n), 'latin1');
      socket.write(chunk);
      ok = socket.write('\r\n', 'latin1');
      socket.uncork();
    } else {
      if (this.bodyWritten > this.bodyLength) {
        this.failExchange(new ProxyError('BAD_REQUEST', 'request body longer than its declared length'));
        return true;
      }
      ok = socket.write(chunk);
    }
    if (!ok) this.bodyNeedDrain = true;
    return ok;
  }

  endBody(ex: PoolExchange, trailers: HeaderList | null): void {
    if (this.ex !== ex || this.dead || this.reqBodyDone) return;
    if (this.bodyLength === -1) {
      try {
        this.socket.write(lastChunk(trailers), 'latin1');
      } catch (e) {
        this.failExchange(toProxyError(e));
        return;
      }
    } else if (this.bodyWritten !== this.bodyLength) {
      this.failExchange(new ProxyError('BAD_REQUEST', 'request body shorter than its declared length'));
      return;
    }
    this.reqBodyDone = true;
  }

  private onDrain(): void {
    if (!this.bodyNeedDrain) return;
    this.bodyNeedDrain = false;
    const ex = this.ex;
    if (ex !== null && !this.reqBodyDone) ex.req.body?.resume();
  }

  // ---- response ----

  private onData(d: Buffer): void {
    if (this.ex === null) {
      // Bytes on an idle connection: nothing can be asking for them.
      this.destroy();
      return;
    }
    this.gotBytes = true;
    this.buf = this.buf === null ? d : Buffer.concat([this.buf, d]);
    this.parse();
  }

  resumeResponse(): void {
    if (!this.paused) return;
    this.paused = false;
    this.parse();
    if (!this.paused && !this.dead && this.socket.isPaused()) this.socket.resume();
  }

  private parse(): void {
    if (this.parsing) return;
    this.parsing = true;
    try {
      this.parseLoop();
    } catch (e) {
      // A handler threw (a bug above us): fail this exchange, not the process.
      this.parsing = false;
      if (this.ex !== null) this.failExchange(toProxyError(e));
      else this.destroy();
      return;
    } finally {
      this.parsing = false;
    }
    if (this.paused && !this.dead) this.socket.pause();
  }

  private parseLoop(): void {
    while (this.buf !== null && !this.paused) {
      const ex = this.ex;
      if (ex === null) return;
      if (this.phase === PHASE_HEAD) {
        const r = parseResponseHead(this.buf, 0, DEFAULT_MAX_HEAD_BYTES);
        if (r.kind === 'incomplete') break;
        if (r.kind === 'error') {
          this.failExchange(new ProxyError('UPSTREAM_PROTOCOL_ERROR', r.reason));
          return;
        }
        this.buf = r.end < this.buf.length ? this.buf.subarray(r.end) : null;
        const status = r.status;
        if (status < 200) {
          if (status === 101) {
            this.upgrade(ex, r.headers);
            return;
          }
          ex.handler.onInformational?.({ status, headers: r.headers });
          if (this.ex !== ex) return;
          if (status === 100 && this.continueTimer !== null) this.startBody();
          continue;
        }
        if (this.isHeadRequest || status === 204 || status === 304) this.decoder.reset(BODY_LENGTH, 0);
        else if (r.chunked) this.decoder.reset(BODY_CHUNKED, 0);
        else if (r.contentLength >= 0) this.decoder.reset(BODY_LENGTH, r.contentLength);
        else this.decoder.reset(BODY_UNTIL_CLOSE, 0);
        this.resKeepAlive = (r.version === '1.1' ? !r.connectionClose : r.connectionKeepAlive && !r.connectionClose)
          && this.decoder.mode !== BODY_UNTIL_CLOSE;
        if (ex.req.body !== null && !this.bodyStarted) {
          // A final answer before 100 Continue: the body is not wanted.
          this.bodyStarted = true;
          if (this.continueTimer !== null) clearTimeout(this.continueTimer);
          this.continueTimer = null;
          this.resKeepAlive = false;
        }
        this.phase = PHASE_BODY;
        const ok = ex.handler.onHeaders({ status, headers: r.headers });
        if (this.ex !== ex) return;
        if (this.decoder.done) {
          this.complete();
          continue;
        }
        if (!ok) this.paused = true;
        continue;
      }
      const buf = this.buf;
      const pos = this.decoder.decode(buf, 0, this);
      this.buf = pos < buf.length ? buf.subarray(pos) : null;
      if (this.ex !== ex) return;
      if (this.decoder.error !== null) {
        this.failExchange(new ProxyError('UPSTREAM_PROTOCOL_ERROR', this.decoder.error));
        return;
      }
      if (this.decoder.done) {
        this.complete();
        continue;
      }
      if (this.decoder.paused) this.paused = true;
    }
    // Not paused and nothing more to parse: an upstream that has closed
    // will not send the rest.
    if (this.eof && this.ex !== null && !this.paused) this.atEof();
  }

  bodyData(chunk: Buffer): boolean {
    const ex = this.ex;
    if (ex === null) return true;
    return ex.handler.onData(chunk);
  }

  private complete(): void {
    const ex = this.ex!;
    this.ex = null;
    ex.state = EX_DONE;
    ex.conn = null;
    const trailers = this.decoder.trailers;
    if (this.continueTimer !== null) {
      clearTimeout(this.continueTimer);
      this.continueTimer = null;
    }
    const reuse = this.resKeepAlive && this.reqBodyDone && this.buf === null && !this.closeAfter && !this.dead && !this.eof;
    if (!this.reqBodyDone) {
      this.reqBodyDone = true;
      ex.req.body?.destroy();
    }
    this.owner.onExchangeLeft();
    if (reuse) {
      this.owner.onReusable(this);
    } else {
      this.destroy();
    }
    ex.handler.onEnd(trailers);
  }

  /** Fail the current exchange; the connection cannot be trusted after. */
  failExchange(err: ProxyError): void {
    const ex = this.ex;
    if (ex === null) return;
    this.ex = null;
    ex.state = EX_DONE;
    ex.conn = null;
    if (this.continueTimer !== null) {
      clearTimeout(this.continueTimer);
      this.continueTimer = null;
    }
    this.buf = null;
    this.owner.onExchangeLeft();
    this.destroy();
    if (!this.reqBodyDone) {
      this.reqBodyDone = true;
      ex.req.body?.destroy(err);
    }
    ex.handler.onError(err);
  }

  private upgrade(ex: PoolExchange, headers: HeaderList): void {
    if (ex.req.head.upgrade === undefined || ex.handler.onUpgrade === undefined) {
      this.failExchange(new ProxyError('UPSTREAM_PROTOCOL_ERROR', '101 Switching Protocols without an upgrade request'));
      return;
    }
    this.ex = null;
    ex.state = EX_DONE;
    ex.conn = null;
    const rest = this.buf ?? Buffer.alloc(0);
    this.buf = null;
    this.dead = true;
    this.clearTimers();
    const socket = this.socket;
    socket.removeListener('data', this.onDataL);
    socket.removeListener('end', this.onEndL);
    socket.removeListener('close', this.onCloseL);
    socket.removeListener('drain', this.onDrainL);
    socket.on('error', () => socket.destroy());
    // Nothing reads it until the new owner pipes it (which resumes it).
    socket.pause();
    this.owner.onExchangeLeft();
    this.owner.onGone(this);
    ex.handler.onUpgrade({ status: 101, headers }, socket, rest);
  }

  // ---- end of the connection ----

  private onEof(): void {
    this.eof = true;
    // The peer hung up before the connection was ready (e.g. a plaintext
    // server closing on our TLS ClientHello): 'close' follows and reports the
    // failed connect to the pool, which fails or re-places its waiters.
    if (!this.ready) {
      this.socket.destroy();
      return;
    }
    if (this.ex !== null && this.buf !== null && this.paused) return; // finish what is buffered first
    if (this.ex !== null) this.atEof();
    else this.destroy();
  }

  /** The upstream closed and everything it sent has been consumed. */
  private atEof(): void {
    const ex = this.ex;
    if (ex === null) return;
    if (this.phase === PHASE_BODY && this.decoder.mode === BODY_UNTIL_CLOSE) {
      this.decoder.finishAtClose();
      this.complete();
      return;
    }
    if (this.phase === PHASE_HEAD && !this.gotBytes && this.requests > 1 && ex.req.body === null && !ex.retried && IDEMPOTENT.has(ex.req.head.method)) {
      // The classic keep-alive race: the server closed an idle connection
      // just as we reused it. Nothing was processed; try a fresh one.
      ex.retried = true;
      this.ex = null;
      ex.conn = null;
      ex.state = EX_QUEUED;
      this.owner.onExchangeLeft();
      this.destroy();
      this.owner.requeue(ex);
      return;
    }
    const detail = this.lastError !== null ? this.lastError.message : this.phase === PHASE_HEAD ? 'connection closed before the response head' : 'connection closed mid-response';
    this.failExchange(new ProxyError('UPSTREAM_RESET', detail));
  }

  private onClose(): void {
    if (this.dead) return;
    if (!this.ready) {
      this.dead = true;
      this.clearTimers();
      const err = this.timedOut
        ? new ProxyError('UPSTREAM_CONNECT_TIMEOUT', `${this.owner.opts.host}:${this.owner.opts.port} after ${this.owner.opts.connectTimeoutMs} ms`)
        : new ProxyError('UPSTREAM_CONNECT_FAILED', this.lastError?.message ?? `${this.owner.opts.host}:${this.owner.opts.port}`);
      this.owner.onConnectFailed(this, err);
      return;
    }
    if (this.ex !== null) {
      this.eof = true;
      // A paused exchange finishes what is buffered first (resumeResponse).
      if (this.buf !== null && this.paused) return;
      this.atEof();
    }
    this.destroy();
  }
}
