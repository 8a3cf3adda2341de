// Fault injection (Envoy's HTTPFault, per route): a fixed delay and/or an
// abort, each applied to a percentage of requests, drawn independently.
// A delay holds the request before it goes upstream (the request deadline
// still runs: a delay longer than the deadline ends in REQUEST_TIMEOUT); an
// abort answers from the rescue edge with FAULT_ABORT and the configured HTTP
// status, or for a gRPC abort the configured grpc-status. `maxActiveFaults`
// bounds delays in progress; past it, requests pass unfaulted.
// Header-controlled faults are not supported.
import type { FaultSpec } from '../config/envoy-resilience.ts';
import { ERRORS, ProxyError } from '../errors.ts';
import type { Dispatch, ExchangeController, Layer, ProxyRequest, ResponseHandler } from '../http/exchange.ts';

export interface FaultDeps {
  readonly random: () => number;
  readonly setTimer: (fn: () => void, ms: number) => () => void;
  readonly onFault?: (kind: 'delay' | 'abort') => void;
}

/** gRPC status for an HTTP status (gRPC's HTTP-to-gRPC mapping). */
export function grpcForHttp(status: number): number {
  switch (status) {
    case 400: return 13;
    case 401: return 16;
    case 403: return 7;
    case 404: return 12;
    case 429: case 502: case 503: case 504: return 14;
    default: return 2;
  }
}

/** HTTP status for a gRPC abort on a plain HTTP request. */
function httpForGrpc(code: number): number {
  if (code === 4) return 504;
  if (code === 8) return 429;
  if (code === 14) return 503;
  return ERRORS.FAULT_ABORT.status;
}

export function faultLayer(faultOf: (req: ProxyRequest) => FaultSpec | undefined, deps: FaultDeps): Layer {
  let active = 0;
  return function fault(next: Dispatch): Dispatch {
    return function faultDispatch(req, handler) {
      const spec = faultOf(req);
      if (!spec) {
        next(req, handler);
        return;
      }
      const ctx = req.ctx;
      const abort = spec.abort && (spec.abort.fraction >= 1 || deps.random() < spec.abort.fraction) ? spec.abort : undefined;
      const delay = spec.delay && (spec.delay.fraction >= 1 || deps.random() < spec.delay.fraction) ? spec.delay : undefined;
      const proceed = () => {
        if (abort) {
          deps.onFault?.('abort');
          ctx.responseFlags.push('FI');
          const status = abort.kind === 'http' ? abort.status : httpForGrpc(abort.code);
          const grpcStatus = abort.kind === 'grpc' ? abort.code : grpcForHttp(abort.status);
          handler.onError(new ProxyError('FAULT_ABORT', undefined, { status, grpcStatus }));
          return;
        }
        next(req, handler);
      };
      if (!delay || (spec.maxActiveFaults !== undefined && active >= spec.maxActiveFaults)) {
        proceed();
        return;
      }
      deps.onFault?.('delay');
      ctx.responseFlags.push('DI');
      active++;
      const wait = new DelayController(handler);
      wait.cancel = deps.setTimer(() => {
        active--;
        wait.cancel = null;
        if (!wait.aborted) proceed();
      }, delay.ms);
      handler.onStart(wait);
    };
  };
}

/** The controller the caller holds while a request is delayed. */
class DelayController implements ExchangeController {
  private readonly handler: ResponseHandler;
  cancel: (() => void) | null = null;
  aborted = false;
  constructor(handler: ResponseHandler) {
    this.handler = handler;
  }
  resume(): void {}
  abort(err: ProxyError): void {
    if (this.aborted) return;
    this.aborted = true;
    // The timer still runs to keep `active` right; it does nothing more.
    this.handler.onError(err);
  }
}
