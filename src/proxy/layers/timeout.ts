// Request deadlines, two kinds:
// - The request's deadline, `ctx.deadline`: the earliest of the gRPC
//   client's `grpc-timeout` (the HTTP/2 codec already sets it; repeated here
//   for any codec that does not) and the route's timeout (the router lowers
//   `ctx.deadline` while it runs, so the timer is armed once the inner layers
//   return). It covers the whole exchange, and the HTTP/2 pool propagates
//   what is left of it upstream as `grpc-timeout`.
// - The listener's request timeout (HttpConnectionManager.requestTimeout),
//   as Envoy defines it: time allowed until the response begins. It is
//   disarmed by the response headers and is not propagated upstream.
// When either expires: the upstream exchange is aborted and the handler gets
// REQUEST_TIMEOUT (504, or gRPC DEADLINE_EXCEEDED; flag UT) — or a reset
// stream if the response had already begun.
//
// The retry layer (layers/retry.ts) sends what is left of `ctx.deadline`
// (or the per-try timeout, if smaller) upstream as `x-trellis-deadline-ms`,
// and resilience.ts honours that header inbound (docs/resilience.md).
import type { Dispatch, ExchangeController, HeaderList, Layer, ProxyRequest, ResponseHandler, ResponseHead } from '../http/exchange.ts';
import { ProxyError } from '../errors.ts';
import { grpcDeadline } from '../grpc.ts';
import { getHeader } from '../http/exchange.ts';
import { DEADLINE_HEADER } from './retry.ts';

export interface TimeoutOptions {
  /** Listener-wide request timeout (ms); none when absent or 0. */
  readonly requestTimeoutMs?: number;
  /** Whether a route of the listener's route configuration has a timeout
   * (default true). When none has, a request that arrives without a
   * deadline (no grpc-timeout, no x-trellis-deadline-ms) cannot get one and
   * passes through without a wrapper or a timer. */
  readonly routeTimeouts?: boolean;
  /** performance.now by default (tests). */
  readonly now?: () => number;
}

export function timeoutLayer(opts: TimeoutOptions = {}): Layer {
  const limit = opts.requestTimeoutMs && opts.requestTimeoutMs > 0 ? opts.requestTimeoutMs : 0;
  const now = opts.now ?? (() => performance.now());
  const routeTimeouts = opts.routeTimeouts ?? true;
  return function timeout(next: Dispatch): Dispatch {
    return function timeoutDispatch(req, handler) {
      const ctx = req.ctx;
      if (ctx.grpc && ctx.deadline === null) ctx.deadline = grpcDeadline(req.head.headers, ctx.startTime);
      if (limit === 0 && !routeTimeouts && ctx.deadline === null && getHeader(req.head.headers, DEADLINE_HEADER) === undefined) {
        next(req, handler);
        return;
      }
      // Always wrapped: the router may still set a route timeout.
      const h = new DeadlineHandler(handler, req);
      if (limit > 0) h.armHeaders(ctx.startTime + limit - now());
      next(req, h);
      if (ctx.deadline !== null) h.arm(ctx.deadline - now());
    };
  };
}

class DeadlineHandler implements ResponseHandler {
  private readonly inner: ResponseHandler;
  private readonly req: ProxyRequest;
  private controller: ExchangeController | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** The listener's request timeout: until the response begins. */
  private headersTimer: NodeJS.Timeout | null = null;
  private done = false;
  private timedOut: ProxyError | null = null;
  onInformational?: (head: ResponseHead) => void;
  onUpgrade?: ResponseHandler['onUpgrade'];

  constructor(inner: ResponseHandler, req: ProxyRequest) {
    this.inner = inner;
    this.req = req;
    if (inner.onInformational) this.onInformational = (head) => { if (!this.done) inner.onInformational!(head); };
    if (inner.onUpgrade) {
      this.onUpgrade = (head, up, rest) => {
        // An upgraded connection is a byte pipe: no request deadline applies.
        this.finish();
        inner.onUpgrade!(head, up, rest);
      };
    }
  }

  armHeaders(remainingMs: number): void {
    if (this.done) return;
    if (remainingMs <= 0) this.fire();
    else this.headersTimer = setTimeout(() => this.fire(), remainingMs);
  }

  arm(remainingMs: number): void {
    if (this.done) return;
    if (remainingMs <= 0) {
      this.fire();
      return;
    }
    this.timer = setTimeout(() => this.fire(), remainingMs);
  }

  private fire(): void {
    if (this.done) return;
    const err = new ProxyError('REQUEST_TIMEOUT');
    this.timedOut = err;
    this.finish();
    this.req.ctx.responseFlags.push(err.flag);
    this.controller?.abort(err);
    this.inner.onError(err);
  }

  private finish(): void {
    this.done = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.clearHeadersTimer();
  }

  private clearHeadersTimer(): void {
    if (this.headersTimer !== null) {
      clearTimeout(this.headersTimer);
      this.headersTimer = null;
    }
  }

  onStart(c: ExchangeController): void {
    this.controller = c;
    if (this.timedOut) {
      c.abort(this.timedOut);
      return;
    }
    this.inner.onStart(c);
  }
  onHeaders(head: ResponseHead): boolean {
    if (this.done) return false;
    this.clearHeadersTimer();
    return this.inner.onHeaders(head);
  }
  onData(chunk: Buffer): boolean {
    return this.done ? false : this.inner.onData(chunk);
  }
  onEnd(trailers: HeaderList | null): void {
    if (this.done) return;
    this.finish();
    this.inner.onEnd(trailers);
  }
  onError(err: ProxyError): void {
    if (this.done) return;
    this.finish();
    this.inner.onError(err);
  }
}
