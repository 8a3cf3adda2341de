// Upstream HTTP/2 pool for one endpoint: a few multiplexed sessions shared by
// every request. A new session opens only when the open ones are full
// (min of our maxConcurrentStreams and the peer's SETTINGS), up to
// maxConnections; beyond that requests wait in a bounded queue, and beyond
// that they fail with OVERFLOW. A session counts as connected once the
// peer's first SETTINGS frame arrives, so a peer that accepts TCP but does
// not speak HTTP/2 fails as a connect timeout/failure, and the peer's
// stream limit is known before any stream is opened.
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { ProxyError, toProxyError } from '../errors.ts';
import type {
  BodySink, ExchangeController, HeaderList, ProxyRequest, ResponseHandler,
} from '../http/exchange.ts';
import { getHeader, removeHeader } from '../http/exchange.ts';
import { formatGrpcTimeout, isGrpcRequest } from '../grpc.ts';
import type { PoolOptions, PoolStats, UpstreamPool } from '../upstream/types.ts';
import { appendEndToEnd, splitRaw, toHeaderObject, withFields } from './headers.ts';

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;

function noop(): void {}

/** node:http2 errors that mean the request's own fields are unusable. */
const HEADER_ERRORS = new Set([
  'ERR_HTTP2_INVALID_HEADER_VALUE', 'ERR_HTTP2_INVALID_PSEUDOHEADER', 'ERR_HTTP2_INVALID_CONNECTION_HEADERS',
  'ERR_HTTP2_HEADER_SINGLE_VALUE', 'ERR_INVALID_HTTP_TOKEN', 'ERR_INVALID_CHAR',
]);

/** HTTP/2-only knobs on top of the shared PoolOptions. */
export interface Http2PoolOptions extends PoolOptions {
  /** After this long without stream activity on a session that has
   * streams in flight, send a PING (ms). 0 (the default, as in Envoy) turns
   * keepalive off: gRPC servers penalise frequent PINGs (grpc-go answers
   * with GOAWAY "too_many_pings"), so operators opt in per cluster. */
  keepaliveIntervalMs?: number;
  /** A PING not acknowledged within this long destroys the session: its
   * streams fail with UPSTREAM_RESET and new requests open a new session.
   * Default 10 000. */
  keepaliveTimeoutMs?: number;
}

export const DEFAULT_KEEPALIVE_INTERVAL_MS = 0;
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 10_000;

export function createHttp2Pool(opts: Http2PoolOptions): UpstreamPool {
  const pool = new Http2Pool(opts);
  return {
    dispatch: (req, handler) => pool.dispatch(req, handler),
    stats: () => pool.stats(),
    close: () => pool.close(),
    destroy: () => pool.destroy(),
  };
}

type SessionState = 'connecting' | 'ready' | 'closing' | 'closed';

class UpstreamSession {
  readonly session: http2.ClientHttp2Session;
  state: SessionState = 'connecting';
  /** Attempts assigned here: waiting for the connection or streaming. */
  load = 0;
  /** Streams opened over the session's life (maxRequestsPerConnection). */
  opened = 0;
  limit: number;
  waiting: Attempt[] = [];
  private connectTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly pool: Http2Pool;

  constructor(pool: Http2Pool, opts: Http2PoolOptions) {
    this.pool = pool;
    this.limit = Math.max(1, opts.maxConcurrentStreams);
    this.session = connect(opts);
    const s = this.session;
    this.connectTimer = setTimeout(() => {
      this.fail(new ProxyError('UPSTREAM_CONNECT_TIMEOUT', `no HTTP/2 settings from ${opts.host}:${opts.port} within ${opts.connectTimeoutMs} ms`));
    }, opts.connectTimeoutMs);
    s.on('remoteSettings', (settings) => {
      const peer = settings.maxConcurrentStreams ?? Number.POSITIVE_INFINITY;
      this.limit = Math.max(1, Math.min(opts.maxConcurrentStreams, peer));
      if (this.state === 'connecting') this.onReady(opts);
      else this.pool.pump();
    });
    s.on('error', (err) => {
      if (this.state === 'connecting') this.fail(new ProxyError('UPSTREAM_CONNECT_FAILED', err.message, { cause: err }));
      else this.retire();
    });
    s.on('goaway', () => this.retire());
    s.once('close', () => {
      if (this.state === 'connecting') this.fail(new ProxyError('UPSTREAM_CONNECT_FAILED', 'connection closed before HTTP/2 settings'));
      this.clearTimers();
      this.state = 'closed';
      this.pool.forget(this);
    });
  }

  hasRoom(): boolean {
    if (this.state !== 'connecting' && this.state !== 'ready') return false;
    if (this.load >= this.limit) return false;
    const max = this.pool.opts.maxRequestsPerConnection;
    return max === 0 || this.opened + this.waiting.length < max;
  }

  assign(a: Attempt): void {
    this.load++;
    this.clearIdle();
    a.session = this;
    if (this.state === 'ready') this.open(a);
    else {
      a.state = 'waiting';
      this.waiting.push(a);
    }
  }

  private open(a: Attempt): void {
    this.opened++;
    a.startStream(this.session);
    const max = this.pool.opts.maxRequestsPerConnection;
    if (max > 0 && this.opened >= max) this.retire();
  }

  private onReady(opts: Http2PoolOptions): void {
    if (opts.tls && this.session.alpnProtocol !== 'h2') {
      this.fail(new ProxyError('UPSTREAM_CONNECT_FAILED', `peer did not negotiate h2 (ALPN ${String(this.session.alpnProtocol)})`));
      return;
    }
    this.clearTimers();
    this.state = 'ready';
    this.startKeepalive(opts);
    const waiting = this.waiting;
    this.waiting = [];
    // The peer may allow fewer streams than we assigned: send the excess back.
    const keep = waiting.slice(0, this.limit);
    const excess = waiting.slice(this.limit);
    this.load -= excess.length;
    for (const a of keep) if (a.state === 'waiting') this.open(a);
    this.pool.requeue(excess);
    this.maybeIdle();
    this.pool.pump();
  }

  /** A peer that vanished without a FIN/RST (host down, partition) would
   * otherwise keep taking streams that never answer: PING it when quiet. */
  private startKeepalive(opts: Http2PoolOptions): void {
    const interval = opts.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS;
    if (interval <= 0) return;
    const timeout = opts.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS;
    const s = this.session;
    // node fires 'timeout' once per quiet spell and re-arms it on stream
    // activity only, so a PING ack re-arms it explicitly.
    s.on('timeout', () => {
      // Idle sessions are not pinged (the idle timer closes them); a new
      // stream re-arms the timeout.
      if (s.destroyed || s.closed || this.load === 0) return;
      let timer: NodeJS.Timeout | null = setTimeout(() => {
        timer = null;
        this.lost(`no PING ack within ${timeout} ms`);
      }, timeout);
      const sent = s.ping((err) => {
        if (timer) clearTimeout(timer);
        timer = null;
        if (err) {
          if (!s.destroyed) this.lost(`PING failed: ${err.message}`);
        } else if (!s.destroyed && !s.closed) {
          s.setTimeout(interval);
        }
      });
      if (!sent && timer) {
        clearTimeout(timer); // too many PINGs outstanding: try again later
        timer = null;
        s.setTimeout(interval);
      }
    });
    s.setTimeout(interval);
  }

  /** The peer is gone: drop the session and everything on it. */
  private lost(why: string): void {
    if (this.state === 'closed') return;
    this.state = 'closing';
    this.pool.unlist(this);
    this.clearTimers();
    this.session.destroy(new Error(`upstream session lost: ${why}`));
  }

  /** An attempt on this session is over (stream closed, or it left the wait list). */
  release(a: Attempt): void {
    const i = this.waiting.indexOf(a);
    if (i >= 0) this.waiting.splice(i, 1);
    this.load--;
    this.pool.pump();
    this.maybeIdle();
  }

  private maybeIdle(): void {
    if (this.load > 0) return;
    if (this.state === 'closing') {
      this.close();
      return;
    }
    if (this.pool.closed) {
      this.retire();
      return;
    }
    if (this.state !== 'ready' || this.idleTimer) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      this.retire();
    }, this.pool.opts.idleTimeoutMs);
    this.idleTimer.unref();
  }

  /** Take no new streams; close once the in-flight ones finish. */
  retire(): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    if (this.state === 'connecting') {
      this.fail(new ProxyError('UPSTREAM_CONNECT_FAILED', 'session retired before it connected'));
      return;
    }
    this.state = 'closing';
    this.clearIdle();
    this.pool.unlist(this);
    if (this.load === 0) this.close();
  }

  private close(): void {
    this.clearTimers();
    if (!this.session.closed && !this.session.destroyed) this.session.close();
  }

  /** Connecting failed: every attempt waiting here fails with `err`. */
  fail(err: ProxyError): void {
    if (this.state !== 'connecting') return;
    this.state = 'closed';
    this.clearTimers();
    this.pool.unlist(this);
    const waiting = this.waiting;
    this.waiting = [];
    this.load -= waiting.length;
    this.session.destroy();
    for (const a of waiting) a.fail(err);
    this.pool.pump();
  }

  destroy(err: ProxyError): void {
    const waiting = this.waiting;
    this.waiting = [];
    this.load -= waiting.length;
    for (const a of waiting) a.fail(err);
    this.state = 'closed';
    this.clearTimers();
    this.session.destroy();
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  private clearTimers(): void {
    this.clearIdle();
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
  }
}

function connect(opts: PoolOptions): http2.ClientHttp2Session {
  const hostInUrl = net.isIPv6(opts.host) ? `[${opts.host}]` : opts.host;
  const tlsOpts = opts.tls;
  return http2.connect(`${tlsOpts ? 'https' : 'http'}://${hostInUrl}:${opts.port}`, {
    settings: { enablePush: false },
    createConnection: () =>
      tlsOpts
        ? tls.connect({
          host: opts.host,
          port: opts.port,
          ALPNProtocols: ['h2'],
          ...(net.isIP(opts.host) ? {} : { servername: opts.host }),
          ...tlsOpts,
        }).setNoDelay(true)
        : net.connect({ host: opts.host, port: opts.port, noDelay: true }),
  });
}

class Http2Pool {
  readonly opts: Http2PoolOptions;
  closed = false;
  /** Sessions that take new streams (connecting or ready). */
  private usable: UpstreamSession[] = [];
  /** Every session not yet closed, including retired ones still draining. */
  private all = new Set<UpstreamSession>();
  private queue: Attempt[] = [];
  private closeWaiters: Array<() => void> = [];

  constructor(opts: Http2PoolOptions) {
    this.opts = opts;
  }

  dispatch(req: ProxyRequest, handler: ResponseHandler): void {
    const a = new Attempt(this, req, handler);
    // The controller is handed out at once so a queued request can be
    // aborted (downstream gone, deadline) before it ever gets a stream.
    handler.onStart(a);
    if (a.state !== 'new') return;
    if (this.closed) {
      a.fail(new ProxyError('UPSTREAM_CONNECT_FAILED', 'upstream pool is closed'));
      return;
    }
    this.place(a, false);
  }

  place(a: Attempt, front: boolean): void {
    for (const s of this.usable) {
      if (s.hasRoom()) {
        s.assign(a);
        return;
      }
    }
    if (this.usable.length < this.opts.maxConnections) {
      let s: UpstreamSession;
      try {
        s = new UpstreamSession(this, this.opts);
      } catch (err) {
        a.fail(toProxyError(err, 'UPSTREAM_CONNECT_FAILED'));
        return;
      }
      this.usable.push(s);
      this.all.add(s);
      s.assign(a);
      return;
    }
    if (front) {
      a.state = 'queued';
      this.queue.unshift(a);
      return;
    }
    if (this.queue.length >= this.opts.maxPendingRequests) {
      a.fail(new ProxyError('OVERFLOW', `${this.queue.length} requests already waiting for an HTTP/2 stream`));
      return;
    }
    a.state = 'queued';
    this.queue.push(a);
  }

  /** Move queued requests onto sessions with room (or new sessions). */
  pump(): void {
    while (this.queue.length > 0) {
      const room = this.usable.some((s) => s.hasRoom()) || this.usable.length < this.opts.maxConnections;
      if (!room) return;
      const a = this.queue.shift()!;
      a.state = 'new';
      this.place(a, true);
    }
  }

  requeue(list: Attempt[]): void {
    for (let i = list.length - 1; i >= 0; i--) {
      const a = list[i]!;
      if (a.state !== 'waiting') continue;
      a.session = null;
      a.state = 'queued';
      this.queue.unshift(a);
    }
  }

  dequeue(a: Attempt): void {
    const i = this.queue.indexOf(a);
    if (i >= 0) this.queue.splice(i, 1);
  }

  unlist(s: UpstreamSession): void {
    const i = this.usable.indexOf(s);
    if (i >= 0) this.usable.splice(i, 1);
  }

  forget(s: UpstreamSession): void {
    this.unlist(s);
    this.all.delete(s);
    this.pump();
    this.checkClosed();
  }

  stats(): PoolStats {
    let active = 0;
    let waiting = 0;
    for (const s of this.all) {
      active += s.load - s.waiting.length;
      waiting += s.waiting.length;
    }
    return { connections: this.all.size, active, pending: this.queue.length + waiting };
  }

  close(): Promise<void> {
    this.closed = true;
    for (const s of [...this.all]) if (s.load === 0) s.retire();
    return new Promise((resolve) => {
      this.closeWaiters.push(resolve);
      this.checkClosed();
    });
  }

  private checkClosed(): void {
    if (!this.closed || this.all.size > 0 || this.queue.length > 0) return;
    const w = this.closeWaiters;
    this.closeWaiters = [];
    for (const f of w) f();
  }

  destroy(): void {
    this.closed = true;
    const err = new ProxyError('UPSTREAM_RESET', 'upstream pool destroyed');
    const queued = this.queue;
    this.queue = [];
    for (const a of queued) a.fail(err);
    for (const s of [...this.all]) s.destroy(err);
    this.usable = [];
    this.checkClosed();
  }
}

type AttemptState = 'new' | 'queued' | 'waiting' | 'active' | 'done';

/** Request body bytes read ahead before the stream is opened anyway. */
const HOLD_MAX = 16 * 1024;

function openHeldNT(a: Attempt): void {
  a.openHeld();
}

/** One request's trip through the pool; it is the handler's controller and
 * the sink of the request body. */
class Attempt implements ExchangeController, BodySink {
  state: AttemptState = 'new';
  session: UpstreamSession | null = null;
  private readonly pool: Http2Pool;
  private readonly req: ProxyRequest;
  private readonly handler: ResponseHandler;
  private stream: http2.ClientHttp2Stream | null = null;
  private responded = false;
  private bodyDone: boolean;
  private drainWait = false;
  private reqTrailers: HeaderList | null = null;
  private resTrailers: HeaderList | null = null;
  private released = false;
  /** Already moved once to another session after a refused stream. */
  private replaced = false;
  /**
   * The request body is read before the stream opens, until it ends or
   * the next turn of the event loop (or HOLD_MAX bytes): a body that is
   * all there (a gRPC unary call, a small POST) then goes out as HEADERS +
   * DATA with END_STREAM in one write, instead of an extra empty DATA frame
   * (`waitForTrailers`) in a later write: one TLS record and syscall fewer
   * per request on each side, and no small trailing segment for Nagle and
   * delayed ACKs to hold up where TCP_NODELAY is off.
   */
  private bodyStarted = false;
  private holdSession: http2.ClientHttp2Session | null = null;
  private held: Buffer[] = [];
  private heldBytes = 0;
  private heldPaused = false;

  constructor(pool: Http2Pool, req: ProxyRequest, handler: ResponseHandler) {
    this.pool = pool;
    this.req = req;
    this.handler = handler;
    this.bodyDone = req.body === null;
  }

  // ---- ExchangeController ----

  resume(): void {
    if (this.state === 'active' && this.responded) this.stream?.resume();
  }

  abort(err: ProxyError): void {
    if (this.state === 'done') return;
    if (this.stream && !this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
    this.fail(err);
  }

  /** End the attempt with `err` (exactly once), releasing what it holds. */
  fail(err: ProxyError): void {
    const prev = this.state;
    if (prev === 'done') return;
    this.state = 'done';
    if (prev === 'queued') this.pool.dequeue(this);
    if (prev === 'waiting') this.releaseSlot();
    if (!this.bodyDone) {
      this.bodyDone = true;
      this.req.body?.destroy(err);
    }
    this.handler.onError(err);
  }

  private releaseSlot(): void {
    if (this.released || !this.session) return;
    this.released = true;
    this.session.release(this);
  }

  // ---- the stream ----

  startStream(session: http2.ClientHttp2Session): void {
    if (this.state === 'done') return;
    const body = this.req.body;
    if (body !== null && !this.bodyStarted) {
      this.bodyStarted = true;
      this.holdSession = session;
      setImmediate(openHeldNT, this);
      body.start(this);
      return;
    }
    this.open(session);
  }

  /** Open the stream with what the body has delivered so far. */
  openHeld(): void {
    const session = this.holdSession;
    if (session === null) return;
    this.holdSession = null;
    this.open(session);
  }

  private open(session: http2.ClientHttp2Session): void {
    if (this.state === 'done') return;
    const hasBody = this.req.body !== null;
    // The whole body is here and has no trailers: END_STREAM goes on its last DATA frame.
    const complete = this.bodyDone && (this.reqTrailers === null || this.reqTrailers.length === 0);
    const waitForTrailers = hasBody && !complete;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = withFields(requestFields(this.req, this.pool.opts), (f) =>
        session.request(f as unknown as http2.OutgoingHttpHeaders, { endStream: !hasBody || (complete && this.held.length === 0), waitForTrailers }));
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (HEADER_ERRORS.has(code)) {
        this.releaseSlot();
        this.fail(new ProxyError('BAD_REQUEST', (err as Error).message));
        return;
      }
      // The session refused a new stream (GOAWAY not yet seen, destroyed):
      // nothing was sent, so retire it and place the request again, once.
      const owner = this.session;
      owner?.retire();
      this.releaseSlot();
      if (this.replaced || (this.state as AttemptState) === 'done') {
        this.fail(toProxyError(err, 'UPSTREAM_RESET'));
        return;
      }
      this.replaced = true;
      this.session = null;
      this.released = false;
      this.state = 'new';
      this.pool.place(this, true);
      return;
    }
    this.stream = stream;
    this.state = 'active';
    stream.on('error', noop); // every failure also ends in 'close'
    stream.on('headers', (_h, _flags, raw: string[]) => this.onInformational(raw));
    stream.once('response', (_h, flags, raw: string[]) => this.onResponse(raw, flags));
    stream.once('close', () => this.onClose());
    if (!hasBody) return;
    if (waitForTrailers) {
      stream.once('wantTrailers', () => {
        const t = this.reqTrailers;
        try {
          stream.sendTrailers(t !== null && t.length > 0 ? toHeaderObject(t) : {});
        } catch (err) {
          this.abort(new ProxyError('BAD_REQUEST', `request trailers: ${(err as Error).message}`));
        }
      });
    }
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    if (complete) {
      if (held.length > 0) stream.end(held.length === 1 ? held[0] : Buffer.concat(held));
      return;
    }
    for (const b of held) this.writeBody(stream, b);
    if (this.bodyDone) stream.end();
    else if (this.heldPaused) {
      this.heldPaused = false;
      if (!this.drainWait) this.req.body?.resume();
    }
  }

  private onInformational(raw: string[]): void {
    if (this.state !== 'active') return;
    const { pseudo, headers } = splitRaw(raw);
    const status = Number(pseudo.get(':status'));
    if (status >= 100 && status < 200) this.handler.onInformational?.({ status, headers });
  }

  private onResponse(raw: string[], flags: number): void {
    if (this.state !== 'active') return;
    const stream = this.stream!;
    const { pseudo, headers } = splitRaw(raw);
    this.responded = true;
    const head = {
      status: Number(pseudo.get(':status')),
      headers: appendEndToEnd([], headers, { request: false, dropHost: false }),
    };
    const go = this.handler.onHeaders(head);
    if (this.state !== 'active') return;
    if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
      // Headers-only (gRPC trailers-only): the head carries the status.
      stream.resume();
      this.finish();
      return;
    }
    stream.on('trailers', (_h, _f, rawT: string[]) => {
      this.resTrailers = appendEndToEnd([], splitRaw(rawT).headers, { request: false, dropHost: false });
    });
    stream.on('data', (chunk: Buffer) => {
      if (this.state !== 'active') return;
      if (!this.handler.onData(chunk)) stream.pause();
    });
    stream.once('end', () => this.finish());
    if (!go) stream.pause();
  }

  private finish(): void {
    if (this.state !== 'active') return;
    this.state = 'done';
    if (!this.bodyDone) {
      // The response is complete before the request body: stop sending it.
      this.bodyDone = true;
      this.req.body?.destroy();
      if (this.stream && !this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
    }
    this.handler.onEnd(this.resTrailers);
  }

  private onClose(): void {
    this.releaseSlot();
    if (this.state !== 'active') return;
    const code = this.stream?.rstCode ?? 0;
    this.fail(new ProxyError('UPSTREAM_RESET', this.responded
      ? `stream closed mid-response (RST_STREAM code ${code})`
      : `stream closed before a response (RST_STREAM code ${code})`));
  }

  // ---- BodySink (the request body) ----

  onData(chunk: Buffer): boolean {
    const stream = this.stream;
    if (stream === null && this.state !== 'done' && !this.bodyDone) {
      // Before the stream opens (read-ahead, or re-placed after a refused stream).
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      if (this.heldBytes <= HOLD_MAX) return true;
      if (this.holdSession !== null) {
        this.openHeld();
        return this.stream !== null && !this.drainWait;
      }
      this.heldPaused = true;
      return false;
    }
    if (this.state !== 'active' || this.bodyDone || !stream) return true;
    return this.writeBody(stream, chunk);
  }

  private writeBody(stream: http2.ClientHttp2Stream, chunk: Buffer): boolean {
    const ok = stream.write(chunk);
    if (!ok && !this.drainWait) {
      this.drainWait = true;
      stream.once('drain', () => {
        this.drainWait = false;
        if (!this.bodyDone) this.req.body?.resume();
      });
    }
    return ok;
  }

  onEnd(trailers: HeaderList | null): void {
    if (this.bodyDone) return;
    this.bodyDone = true;
    this.reqTrailers = trailers;
    if (this.stream === null) {
      this.openHeld(); // no-op when not reading ahead: open() sees bodyDone
      return;
    }
    if (this.state === 'active' && !this.stream.destroyed) this.stream.end();
  }

  onError(err: Error): void {
    if (this.bodyDone) return;
    this.bodyDone = true;
    this.abort(toProxyError(err, 'DOWNSTREAM_CLOSED'));
  }
}

/** The HTTP/2 request head for `req`, whatever protocol it arrived on. */
function requestFields(req: ProxyRequest, opts: PoolOptions): string[] {
  const { head, ctx } = req;
  const authority = head.authority || `${net.isIPv6(opts.host) ? `[${opts.host}]` : opts.host}:${opts.port}`;
  const f = [':method', head.method, ':scheme', head.scheme, ':authority', authority, ':path', head.path];
  appendEndToEnd(f, head.headers, { request: true, dropHost: true });
  // The HTTP/1 codec keeps framing out of the headers: restore the length.
  const len = req.body?.contentLength ?? null;
  if (len !== null && getHeader(head.headers, 'content-length') === undefined) f.push('content-length', String(len));
  if (ctx.grpc || isGrpcRequest(head.headers)) {
    // gRPC servers require `te: trailers`; an HTTP/1 hop may have eaten it.
    removeHeader(f, 'te');
    f.push('te', 'trailers');
    // Propagate what is left of the deadline, not the client's original budget.
    if (ctx.deadline !== null) {
      removeHeader(f, 'grpc-timeout');
      f.push('grpc-timeout', formatGrpcTimeout(Math.max(0, Math.ceil(ctx.deadline - performance.now()))));
    }
  }
  return f;
}
