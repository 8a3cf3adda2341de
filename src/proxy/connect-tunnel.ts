// The upstream side of an HTTP CONNECT: a TCP connection (mutual TLS when
// the endpoint's cluster originates it, as for opaque TCP) to the endpoint
// the cluster picked. Connected, it goes to the handler as an upgrade (the
// downstream codec answers 200 and pipes both ways); a failure is an
// ordinary ProxyError (502/503 through the rescue edge) and a downstream
// that gives up aborts the attempt.
import net from 'node:net';
import tls, { type ConnectionOptions } from 'node:tls';
import { ProxyError } from './errors.ts';
import type { ResponseHandler } from './http/exchange.ts';

export interface TunnelTarget {
  readonly host: string;
  readonly port: number;
  /** Origination (mesh mTLS) from the cluster's transport socket, if any. */
  readonly tls?: ConnectionOptions | undefined;
  readonly connectTimeoutMs: number;
}

const EMPTY = Buffer.alloc(0);

export function openTunnel(target: TunnelTarget, handler: ResponseHandler): void {
  let settled = false;
  // The tunnel carries opaque bytes: no ALPN (the options are shared with HTTP pools).
  const socket = target.tls
    ? tls.connect({ ...target.tls, ALPNProtocols: [], host: target.host, port: target.port }).setNoDelay(true)
    : net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
  const fail = (err: ProxyError): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.destroy();
    handler.onError(err);
  };
  const timer = setTimeout(() => fail(new ProxyError('UPSTREAM_CONNECT_TIMEOUT', `${target.host}:${target.port}: no connection within ${target.connectTimeoutMs} ms`)), target.connectTimeoutMs);
  handler.onStart({
    resume() {},
    abort: (err) => fail(err),
  });
  socket.once('error', (err) => fail(new ProxyError('UPSTREAM_CONNECT_FAILED', `${target.host}:${target.port}: ${err.message}`)));
  socket.once(target.tls ? 'secureConnect' : 'connect', () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    if (!handler.onUpgrade) {
      // Nothing downstream can take a pipe (not an HTTP/1 CONNECT): no tunnel.
      socket.destroy();
      handler.onError(new ProxyError('BAD_REQUEST', 'CONNECT: the downstream cannot carry a tunnel'));
      return;
    }
    handler.onUpgrade({ status: 200, headers: [] }, socket, EMPTY);
  });
}
