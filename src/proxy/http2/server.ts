// Downstream HTTP/2 codec: one accepted connection (h2c prior knowledge now,
// h2 over TLS once ALPN hands us a TLSSocket) becomes a node:http2 server
// session; each stream becomes a ProxyRequest dispatched into the listener's
// stack, and the ResponseHandler writes the answer back on the stream.
// Backpressure both ways rides on HTTP/2 flow control: a paused stream stops
// granting WINDOW_UPDATEs, so the peer stops sending.
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ConnectionContext, ServeConnection } from '../connection.ts';
import { ProxyError, rescue, toProxyError } from '../errors.ts';
import type {
  BodySink, BodySource, ExchangeController, HeaderList, ProxyRequest, RequestContext, ResponseHandler, ResponseHead,
} from '../http/exchange.ts';
import { getHeader, removeHeader } from '../http/exchange.ts';
import { grpcDeadline, isGrpcRequest } from '../grpc.ts';
import { appendEndToEnd, splitRaw, toHeaderObject, withFields } from './headers.ts';
import { DEFAULT_MAX_HEADERS_COUNT } from '../http1/head-parser.ts';
import { ResetGuard } from './reset-guard.ts';

const { NGHTTP2_FLAG_END_STREAM, NGHTTP2_INTERNAL_ERROR, NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;

export interface Http2ServerOptions {
  /** SETTINGS we advertise. Default: 256 concurrent streams per connection. */
  settings?: http2.Settings;
  /** Send GOAWAY after this long without stream activity (ms); in-flight
   * streams still finish. 0 = never (the default). */
  idleTimeoutMs?: number;
  /** node:http2 per-session memory cap in MB (default 10). */
  maxSessionMemory?: number;
  /** Most header fields in a request's header list, pseudo-headers aside;
   * more gets 431 (Envoy's max_headers_count; default 100). */
  maxHeadersCount?: number;
  /** Rapid-reset bound per client address, shared by every connection given
   * the same guard (the proxy passes one for all its listeners). Default: a
   * guard of this codec's own with the defaults of reset-guard.ts. */
  resetGuard?: ResetGuard;
}

const DEFAULT_SETTINGS: http2.Settings = { maxConcurrentStreams: 256 };

/** Build a downstream HTTP/2 codec with its own settings. */
export function createHttp2Server(opts: Http2ServerOptions = {}): ServeConnection {
  const settings = { ...DEFAULT_SETTINGS, ...opts.settings };
  const maxHeadersCount = opts.maxHeadersCount ?? DEFAULT_MAX_HEADERS_COUNT;
  const guard = opts.resetGuard ?? new ResetGuard();
  return function serveHttp2(socket: Socket, initial: Buffer, conn: ConnectionContext): void {
    const address = conn.downstream.remoteAddress;
    // An address over its reset bound is refused for the cool-down.
    if (!guard.admits(address)) {
      socket.destroy();
      return;
    }
    // The detector already read the preface; put it back so nghttp2 sees it.
    // node:http2 drains whatever is buffered on the socket when it attaches.
    if (initial.length > 0) socket.unshift(initial);
    const session = http2.performServerHandshake(socket, {
      settings,
      // nghttp2 refuses the stream beyond this; below it the count is ours (onStream).
      maxHeaderListPairs: maxHeadersCount + 8,
      ...(opts.maxSessionMemory === undefined ? {} : { maxSessionMemory: opts.maxSessionMemory }),
    });
    const tls = conn.downstream.tls === true || (socket as { encrypted?: boolean }).encrypted === true;
    /** We are closing it (drain deadline, config swap): its streams' ends are not the client's doing. */
    let closing = false;
    const untrack = conn.track({
      drain: () => {
        if (!session.closed && !session.destroyed) session.close();
      },
      destroy: () => {
        closing = true;
        session.destroy();
      },
    });
    if (opts.idleTimeoutMs) session.setTimeout(opts.idleTimeoutMs, () => session.close());
    // A session error destroys the session and its streams; each stream's
    // 'close' handler aborts its exchange, so nothing else is needed here.
    session.on('error', noop);
    session.once('close', () => {
      untrack();
      conn.onClose?.({ bytesIn: socket.bytesRead, bytesOut: socket.bytesWritten });
    });
    // A stream the client cancelled before its response completed: over the
    // address's bound, GOAWAY(ENHANCE_YOUR_CALM) and close this connection.
    const onCancel = (): void => {
      if (closing) return;
      if (!guard.cancelled(address) && !session.destroyed) {
        closing = true;
        session.destroy(new Error('HTTP/2 reset flood'), NGHTTP2_ENHANCE_YOUR_CALM);
      }
    };
    session.on('stream', (stream, _headers, flags, rawHeaders) => {
      onStream(stream, rawHeaders, flags, conn, tls, maxHeadersCount, onCancel);
    });
  };
}

/** The default downstream HTTP/2 codec. */
export const serveHttp2: ServeConnection = createHttp2Server();

function noop(): void {}

function endStreamFlag(flags: number): boolean {
  return (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
}

function onStream(stream: http2.ServerHttp2Stream, raw: string[], flags: number, conn: ConnectionContext, tls: boolean, maxHeadersCount: number, onCancel: () => void): void {
  stream.on('error', noop); // resets surface through 'close'
  const { pseudo, headers: fields } = splitRaw(raw);
  const method = pseudo.get(':method') ?? 'GET';
  const path = pseudo.get(':path');
  const authority = pseudo.get(':authority') ?? getHeader(fields, 'host') ?? '';
  const schemeIn = pseudo.get(':scheme');
  const headers = appendEndToEnd([], fields, { request: true, dropHost: true });
  // As the HTTP/1 codec does: `expect: 100-continue` becomes a flag, and the
  // 100 is sent when the body is asked for (or the upstream sends one).
  const expect = getHeader(headers, 'expect');
  const expectContinue = !endStreamFlag(flags) && expect !== undefined && expect.toLowerCase() === '100-continue';
  if (expectContinue) removeHeader(headers, 'expect');
  const startTime = performance.now();
  const grpc = isGrpcRequest(headers);
  const ctx: RequestContext = {
    listener: conn.listener,
    direction: conn.direction,
    downstream: conn.downstream,
    startTime,
    deadline: null,
    responseFlags: [],
    grpc,
    attempts: 0,
    attrs: new Map(),
  };
  if (grpc) {
    const d = grpcDeadline(headers, startTime);
    if (d !== null && (ctx.deadline === null || d < ctx.deadline)) ctx.deadline = d;
  }
  const endStream = endStreamFlag(flags);
  const exchange = new Http2Exchange(stream, ctx, method, endStream, headers, expectContinue, onCancel);
  if (fields.length / 2 > maxHeadersCount) {
    exchange.onError(new ProxyError('HEADERS_TOO_LARGE', `more than ${maxHeadersCount} header fields`));
    return;
  }
  if (expect !== undefined && !expectContinue && expect.toLowerCase() !== '100-continue') {
    exchange.onError(new ProxyError('EXPECTATION_FAILED', `unsupported Expect "${expect.slice(0, 64)}" (only 100-continue)`));
    return;
  }
  if (path === undefined || method === 'CONNECT') {
    // Plain CONNECT tunnels and extended CONNECT are not proxied over HTTP/2.
    exchange.onError(new ProxyError('BAD_REQUEST', method === 'CONNECT' ? 'CONNECT is not supported over HTTP/2' : ':path is missing'));
    return;
  }
  const req: ProxyRequest = {
    head: {
      method,
      scheme: schemeIn === 'https' || (schemeIn === undefined && tls) ? 'https' : 'http',
      authority,
      path,
      headers,
      httpVersion: '2',
      ...(expectContinue ? { expectContinue: true } : {}),
    },
    body: endStream ? null : exchange,
    ctx,
  };
  // Dispatch once the rest of this read is parsed: a RST_STREAM that came in
  // the same packets as the HEADERS (rapid reset) has closed the stream by
  // then, and no upstream work starts for it.
  setImmediate(dispatchOpen, conn, req, exchange, stream);
}

function dispatchOpen(conn: ConnectionContext, req: ProxyRequest, exchange: Http2Exchange, stream: http2.ServerHttp2Stream): void {
  if (stream.closed || stream.destroyed) return;
  try {
    conn.dispatch(req, exchange);
  } catch (err) {
    exchange.onError(toProxyError(err));
  }
}

type State = 'waiting' | 'streaming' | 'done';

/** Response bytes held with a deferred head before it is sent anyway. */
const HOLD_MAX = 16 * 1024;

function flushHeldNT(ex: Http2Exchange): void {
  ex.flushHeld();
}

/** One downstream stream: the request body source and the response handler. */
class Http2Exchange implements ResponseHandler, BodySource {
  readonly contentLength: number | null;
  private readonly stream: http2.ServerHttp2Stream;
  private readonly ctx: RequestContext;
  private readonly method: string;
  private controller: ExchangeController | null = null;
  private state: State = 'waiting';
  /** The client went away (reset or connection loss) before we finished. */
  private closed = false;
  /** onEnd/onError seen: the upstream side is over. */
  private upstreamDone = false;
  private trailers: HeaderList | null = null;
  private drainWait = false;
  private sink: BodySink | null = null;
  private bodyState: 'idle' | 'flowing' | 'ended' | 'dropped' = 'idle';
  private reqTrailers: HeaderList | null = null;
  /** The client waits for a 100 before sending its body. */
  private readonly expectContinue: boolean;
  private sent100 = false;
  /**
   * A response head not sent yet (HEADERS), and the body bytes that came
   * with it. A small answer usually ends in the same turn of the event loop
   * as its head arrived: it then goes out as HEADERS + DATA with END_STREAM
   * in one write. Sent with `waitForTrailers` instead, the end of the stream
   * is an extra empty DATA frame in a later write: one more TLS record and
   * syscall per response on each side, and on a connection without
   * TCP_NODELAY a small second segment that waits for a delayed ACK.
   * Flushed on the next turn (setImmediate), past HOLD_MAX bytes, or when
   * trailers come.
   */
  private heldFields: string[] | null = null;
  private held: Buffer[] = [];
  private heldBytes = 0;
  private readonly onCancel: () => void;

  constructor(stream: http2.ServerHttp2Stream, ctx: RequestContext, method: string, endStream: boolean, headers: HeaderList, expectContinue: boolean, onCancel: () => void) {
    this.stream = stream;
    this.onCancel = onCancel;
    this.expectContinue = expectContinue;
    this.ctx = ctx;
    this.method = method;
    const cl = getHeader(headers, 'content-length');
    this.contentLength = cl !== undefined && /^\d{1,15}$/.test(cl) ? Number(cl) : endStream ? 0 : null;
    if (endStream) this.bodyState = 'ended';
    stream.once('close', () => this.onStreamClose());
    // Trailers are emitted on arrival, whether or not the body is being read
    // yet, so listen from the start.
    if (!endStream) {
      stream.once('trailers', (_h: unknown, _f: unknown, raw: string[]) => {
        this.reqTrailers = appendEndToEnd([], splitRaw(raw).headers, { request: false, dropHost: false });
      });
    }
  }

  private onStreamClose(): void {
    this.heldFields = null;
    this.held = [];
    if (this.state === 'done' && this.upstreamDone && this.bodyState !== 'flowing') return;
    // The client gave up on the response (RST_STREAM, or its connection went).
    if (this.state !== 'done') this.onCancel();
    this.closed = true;
    this.state = 'done';
    const err = new ProxyError('DOWNSTREAM_CLOSED');
    if (this.bodyState === 'flowing') {
      this.bodyState = 'dropped';
      this.sink?.onError(err);
    }
    if (!this.upstreamDone) this.controller?.abort(err);
  }

  // ---- BodySource ----

  start(sink: BodySink): void {
    if (this.sink !== null) return;
    this.sink = sink;
    if (this.bodyState === 'ended') {
      queueMicrotask(() => sink.onEnd(null));
      return;
    }
    if (this.closed) {
      queueMicrotask(() => sink.onError(new ProxyError('DOWNSTREAM_CLOSED')));
      return;
    }
    this.bodyState = 'flowing';
    const s = this.stream;
    if (this.expectContinue) this.send100();
    s.on('data', (chunk: Buffer) => {
      if (this.bodyState !== 'flowing') return;
      if (!sink.onData(chunk)) s.pause();
    });
    s.once('end', () => {
      if (this.bodyState !== 'flowing') return;
      this.bodyState = 'ended';
      sink.onEnd(this.reqTrailers);
    });
  }

  resume(): void {
    if (this.bodyState === 'flowing') this.stream.resume();
  }

  destroy(): void {
    if (this.bodyState === 'ended' || this.bodyState === 'dropped') return;
    // Keep consuming (and discarding) so flow control does not wedge the
    // connection; the response still goes out on this stream.
    this.bodyState = 'dropped';
    this.stream.resume();
  }

  // ---- ResponseHandler ----

  onStart(controller: ExchangeController): void {
    this.controller = controller;
    this.upstreamDone = false;
    if (this.closed) controller.abort(new ProxyError('DOWNSTREAM_CLOSED'));
  }

  private send100(): void {
    if (this.sent100 || this.state !== 'waiting' || this.closed) return;
    this.sent100 = true;
    try {
      this.stream.additionalHeaders({ ':status': 100 });
    } catch {
      // The stream is going away; its 'close' handler deals with it.
    }
  }

  onInformational(head: ResponseHead): void {
    if (this.state !== 'waiting' || this.closed) return;
    if (head.status === 100) {
      if (this.expectContinue) this.send100();
      return;
    }
    if (head.status !== 103) return;
    const fields = appendEndToEnd([':status', String(head.status)], head.headers, { request: false, dropHost: true });
    try {
      withFields(fields, (f) => this.stream.additionalHeaders(f as unknown as http2.OutgoingHttpHeaders));
    } catch {
      // An informational response is advisory; drop it.
    }
  }

  onHeaders(head: ResponseHead): boolean {
    if (this.state !== 'waiting' || this.closed) return true;
    const fields = appendEndToEnd([':status', String(head.status)], head.headers, { request: false, dropHost: true });
    // A response head that already carries grpc-status is gRPC's
    // trailers-only form: it must end the stream in the HEADERS frame.
    const trailersOnly = getHeader(head.headers, 'grpc-status') !== undefined;
    const noBody = trailersOnly || this.method === 'HEAD' || head.status === 204 || head.status === 304;
    if (noBody) {
      if (!this.respond(fields, true, false)) return false;
      this.state = 'done';
      return true;
    }
    this.state = 'streaming';
    this.heldFields = fields;
    setImmediate(flushHeldNT, this);
    return true;
  }

  /** HEADERS now; false (and the error rendered) when they cannot be sent. */
  private respond(fields: string[], endStream: boolean, waitForTrailers: boolean): boolean {
    try {
      withFields(fields, (f) =>
        this.stream.respond(f as unknown as http2.OutgoingHttpHeaders, endStream ? { endStream: true } : waitForTrailers ? { waitForTrailers: true } : {}));
    } catch (err) {
      this.state = 'waiting';
      this.heldFields = null;
      this.held = [];
      this.renderError(new ProxyError('UPSTREAM_PROTOCOL_ERROR', (err as Error).message));
      this.controller?.abort(new ProxyError('UPSTREAM_PROTOCOL_ERROR'));
      return false;
    }
    return true;
  }

  /** Send a held head (the body may go on, with trailers) and the bytes held with it. */
  flushHeld(): void {
    const fields = this.heldFields;
    if (fields === null) return;
    this.heldFields = null;
    if (this.closed || this.stream.destroyed) return;
    if (!this.respond(fields, false, true)) return;
    this.stream.once('wantTrailers', () => {
      const t = this.trailers;
      try {
        this.stream.sendTrailers(t !== null && t.length > 0 ? toHeaderObject(t) : {});
      } catch {
        // Unsendable trailer fields: the stream cannot end cleanly.
        if (!this.stream.destroyed) this.stream.close(NGHTTP2_INTERNAL_ERROR);
      }
    });
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    for (const b of held) this.writeData(b);
  }

  onData(chunk: Buffer): boolean {
    if (this.state !== 'streaming') return true; // discarded (no body allowed, or over)
    if (this.heldFields !== null) {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      if (this.heldBytes > HOLD_MAX) this.flushHeld();
      return true;
    }
    return this.writeData(chunk);
  }

  private writeData(chunk: Buffer): boolean {
    const ok = this.stream.write(chunk);
    if (!ok && !this.drainWait) {
      this.drainWait = true;
      this.stream.once('drain', () => {
        this.drainWait = false;
        this.controller?.resume();
      });
    }
    return ok;
  }

  onEnd(trailers: HeaderList | null): void {
    this.upstreamDone = true;
    if (this.state === 'waiting') {
      this.renderError(new ProxyError('UPSTREAM_PROTOCOL_ERROR', 'response ended before its head'));
      return;
    }
    if (this.state !== 'streaming') return;
    this.state = 'done';
    this.trailers = trailers === null ? null : appendEndToEnd([], trailers, { request: false, dropHost: true });
    const fields = this.heldFields;
    if (fields !== null && (this.trailers === null || this.trailers.length === 0)) {
      // The whole answer is here and has no trailers: END_STREAM rides on
      // the last frame, all in one write.
      this.heldFields = null;
      const held = this.held;
      this.held = [];
      if (this.closed || this.stream.destroyed) return;
      if (!this.respond(fields, held.length === 0, false) || held.length === 0) return;
      this.stream.end(held.length === 1 ? held[0] : Buffer.concat(held));
      return;
    }
    this.flushHeld();
    this.stream.end();
  }

  onError(err: ProxyError): void {
    this.upstreamDone = true;
    if (this.closed || this.stream.destroyed) return;
    if (this.state === 'waiting') {
      this.renderError(err);
      return;
    }
    if (this.state !== 'streaming') return;
    this.flushHeld();
    if (this.state !== 'streaming') return; // the held head could not be sent
    this.state = 'done';
    if (this.ctx.grpc) {
      // Headers are out: end the call with the status in trailers instead.
      const r = rescue(err, true);
      this.trailers = r.headers.filter((_, i, a) => (i % 2 === 0 ? a[i] !== 'content-type' : a[i - 1] !== 'content-type'));
      this.stream.end();
      return;
    }
    this.stream.close(NGHTTP2_INTERNAL_ERROR);
  }

  /** Before any response byte: the rescue edge decides what the client sees. */
  private renderError(err: ProxyError): void {
    this.state = 'done';
    const r = rescue(err, this.ctx.grpc);
    const fields = appendEndToEnd([':status', String(r.status)], r.headers, { request: false, dropHost: true });
    try {
      const empty = r.body.length === 0 || this.method === 'HEAD';
      this.stream.respond(fields as unknown as http2.OutgoingHttpHeaders, { endStream: empty });
      if (!empty) this.stream.end(r.body);
    } catch {
      if (!this.stream.destroyed) this.stream.close(NGHTTP2_INTERNAL_ERROR);
    }
  }
}
