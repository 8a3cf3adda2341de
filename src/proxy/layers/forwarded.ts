// Forwarding headers, as Envoy's HTTP connection manager sets them on a
// sidecar (use_remote_address: true):
// - `x-forwarded-for`: the downstream peer address is appended to whatever
//   the client sent (IPv4-mapped IPv6 addresses are shown as plain IPv4).
// - `x-forwarded-proto`: set to the downstream scheme when absent.
// - `x-forwarded-host` is NOT set here: Envoy only adds it when a route
//   rewrites the host (append_x_forwarded_host), which is the router's job.
// - `via`: when the listener configures a value, appended to the request's
//   and the response's `via` (Envoy's `via` option).
// - `x-request-id`: a random UUID when the request has none; an existing one
//   is kept (Envoy's default, preserve_external_request_id aside).
import { randomUUID } from 'node:crypto';
import type { Dispatch, HeaderList, Layer, ResponseHandler, ResponseHead } from '../http/exchange.ts';
import { getHeader } from '../http/exchange.ts';

export interface ForwardedOptions {
  /** Value appended to `via` on requests and responses; off when absent. */
  readonly via?: string;
  /** Generate `x-request-id` when absent (default true). */
  readonly requestId?: boolean;
}

export function clientAddress(remote: string): string {
  return remote.startsWith('::ffff:') && remote.includes('.') ? remote.slice(7) : remote;
}

/** Append `value` to the last occurrence of a comma-list header, or add it. */
export function appendListHeader(h: HeaderList, name: string, value: string): void {
  for (let i = h.length - 2; i >= 0; i -= 2) {
    if (h[i] === name) {
      h[i + 1] = `${h[i + 1]}, ${value}`;
      return;
    }
  }
  h.push(name, value);
}

export function forwardedLayer(opts: ForwardedOptions = {}): Layer {
  const via = opts.via;
  const requestId = opts.requestId ?? true;
  return function forwarded(next: Dispatch): Dispatch {
    return function forwardedDispatch(req, handler) {
      const h = req.head.headers;
      appendListHeader(h, 'x-forwarded-for', clientAddress(req.ctx.downstream.remoteAddress));
      if (getHeader(h, 'x-forwarded-proto') === undefined) h.push('x-forwarded-proto', req.head.scheme);
      if (requestId && getHeader(h, 'x-request-id') === undefined) h.push('x-request-id', randomUUID());
      if (via === undefined) {
        next(req, handler);
        return;
      }
      appendListHeader(h, 'via', via);
      next(req, new ViaHandler(handler, via));
    };
  };
}

class ViaHandler implements ResponseHandler {
  private readonly inner: ResponseHandler;
  private readonly via: string;
  onInformational?: (head: ResponseHead) => void;
  onUpgrade?: ResponseHandler['onUpgrade'];
  constructor(inner: ResponseHandler, via: string) {
    this.inner = inner;
    this.via = via;
    if (inner.onInformational) this.onInformational = (head) => inner.onInformational!(head);
    if (inner.onUpgrade) this.onUpgrade = (head, up, rest) => inner.onUpgrade!(head, up, rest);
  }
  onStart(c: Parameters<ResponseHandler['onStart']>[0]): void {
    this.inner.onStart(c);
  }
  onHeaders(head: ResponseHead): boolean {
    appendListHeader(head.headers, 'via', this.via);
    return this.inner.onHeaders(head);
  }
  onData(chunk: Buffer): boolean {
    return this.inner.onData(chunk);
  }
  onEnd(trailers: HeaderList | null): void {
    this.inner.onEnd(trailers);
  }
  onError(err: Parameters<ResponseHandler['onError']>[0]): void {
    this.inner.onError(err);
  }
}
