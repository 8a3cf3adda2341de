// What a listener hands a downstream codec for each accepted connection.
import type { Socket } from 'node:net';
import type { Dispatch, DownstreamInfo } from './http/exchange.ts';

export interface ConnectionContext {
  readonly listener: string;
  readonly direction: 'inbound' | 'outbound' | 'gateway';
  readonly downstream: DownstreamInfo;
  /** The listener's HTTP stack; it reads the current config per request,
   * so a config swap takes effect for the next request on every connection. */
  readonly dispatch: Dispatch;
  /** Register for graceful shutdown: the proxy calls drain() (finish
   * in-flight requests, then close: `Connection: close` on HTTP/1, GOAWAY
   * on HTTP/2) and, after the drain deadline, destroy(). */
  track(conn: TrackedConnection): () => void;
  /** Called by codecs with per-connection byte counts when it closes. */
  onClose?(stats: { bytesIn: number; bytesOut: number }): void;
}

export interface TrackedConnection {
  drain(): void;
  destroy(): void;
}

/** Codec entry points share this shape: `initial` is what protocol
 * detection already read from the socket and must be processed first. */
export type ServeConnection = (socket: Socket, initial: Buffer, conn: ConnectionContext) => void;
