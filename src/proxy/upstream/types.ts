// An upstream pool: the terminal HTTP layer for one endpoint. One pool per
// (endpoint, protocol): HTTP/1 pools keep idle keep-alive connections and
// queue requests when all are busy; HTTP/2 pools share one (or a few)
// multiplexed connections. Both bound everything they hold.
import type { Dispatch } from '../http/exchange.ts';

export interface PoolOptions {
  host: string;
  port: number;
  /** Max upstream connections (HTTP/1: concurrent requests; HTTP/2: sessions). */
  maxConnections: number;
  /** Requests allowed to wait for a connection; beyond that, OVERFLOW. */
  maxPendingRequests: number;
  /** HTTP/2: concurrent streams per connection before opening another. */
  maxConcurrentStreams: number;
  /** Close a connection idle this long (ms). */
  idleTimeoutMs: number;
  connectTimeoutMs: number;
  /** 0 = unlimited. */
  maxRequestsPerConnection: number;
  /** TLS origination (filled in by the mTLS work); plaintext when absent. */
  tls?: import('node:tls').ConnectionOptions;
}

export const DEFAULT_POOL_OPTIONS: Omit<PoolOptions, 'host' | 'port'> = {
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxConcurrentStreams: 100,
  idleTimeoutMs: 60_000,
  connectTimeoutMs: 5_000,
  maxRequestsPerConnection: 0,
};

export interface PoolStats {
  /** Open connections. */
  connections: number;
  /** Requests in flight on a connection. */
  active: number;
  /** Requests waiting for a connection. */
  pending: number;
}

export interface UpstreamPool {
  readonly dispatch: Dispatch;
  stats(): PoolStats;
  /** Stop taking requests; finish the in-flight ones; close idle connections. */
  close(): Promise<void>;
  /** Close everything now; in-flight requests fail with UPSTREAM_RESET. */
  destroy(): void;
}
