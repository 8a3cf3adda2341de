// The upstream HTTP/1.1 pool for one endpoint: keep-alive connections
// reused most-recently-idle first, at most `maxConnections` of them, and a
// bounded queue of requests waiting for one. Everything it holds is
// bounded; past the bounds a request fails with OVERFLOW at once.
import type { Dispatch, ProxyRequest, ResponseHandler } from '../http/exchange.ts';
import { ProxyError, toProxyError } from '../errors.ts';
import type { PoolOptions, PoolStats, UpstreamPool } from '../upstream/types.ts';
import { EX_DONE, PoolExchange, UpstreamConnection } from './upstream-connection.ts';
import type { ConnectionOwner } from './upstream-connection.ts';

export function createHttp1Pool(opts: PoolOptions): UpstreamPool {
  return new Http1Pool(opts);
}

class Http1Pool implements UpstreamPool, ConnectionOwner {
  readonly opts: PoolOptions;
  readonly dispatch: Dispatch;
  /** Idle connections; the most recently idle is last (LIFO reuse). */
  private readonly idle: UpstreamConnection[] = [];
  private readonly conns = new Set<UpstreamConnection>();
  private connecting = 0;
  private readonly queue: PoolExchange[] = [];
  private active = 0;
  private closed = false;
  private closeWaiters: Array<() => void> = [];

  constructor(opts: PoolOptions) {
    for (const k of ['maxConnections', 'maxPendingRequests', 'idleTimeoutMs', 'connectTimeoutMs', 'maxRequestsPerConnection'] as const) {
      const v = opts[k];
      if (!Number.isInteger(v) || v < 0) throw new TypeError(`PoolOptions.${k} must be a non-negative integer, got ${String(v)}`);
    }
    if (opts.maxConnections < 1) throw new TypeError('PoolOptions.maxConnections must be at least 1');
    this.opts = opts;
    this.dispatch = (req, handler) => this.dispatchRequest(req, handler);
  }

  private dispatchRequest(req: ProxyRequest, handler: ResponseHandler): void {
    const ex = new PoolExchange(this, req, handler);
    try {
      handler.onStart(ex);
    } catch (e) {
      ex.fail(toProxyError(e));
      return;
    }
    if (ex.state === EX_DONE) return;
    if (this.closed) {
      ex.fail(new ProxyError('UPSTREAM_CONNECT_FAILED', 'the upstream pool is closed'));
      return;
    }
    const conn = this.idle.pop();
    if (conn !== undefined) {
      this.assign(conn, ex);
      return;
    }
    if (this.conns.size < this.opts.maxConnections) {
      this.queue.push(ex);
      this.open();
      return;
    }
    if (this.queue.length - this.connecting >= this.opts.maxPendingRequests) {
      ex.fail(new ProxyError('OVERFLOW', `${this.opts.host}:${this.opts.port}: ${this.opts.maxConnections} connections busy and ${this.opts.maxPendingRequests} requests waiting`));
      return;
    }
    this.queue.push(ex);
  }

  private open(): void {
    this.connecting++;
    this.conns.add(new UpstreamConnection(this));
  }

  /** Open connections for waiting requests that no connecting one covers. */
  private maybeOpen(): void {
    while (!this.closed && this.queue.length > this.connecting && this.conns.size < this.opts.maxConnections) this.open();
  }

  private assign(conn: UpstreamConnection, ex: PoolExchange): void {
    this.active++;
    conn.assign(ex);
  }

  // ---- ConnectionOwner ----

  onReady(conn: UpstreamConnection): void {
    this.connecting--;
    this.onReusable(conn);
  }

  onConnectFailed(conn: UpstreamConnection, err: ProxyError): void {
    this.connecting--;
    this.conns.delete(conn);
    // One attempt failed: the oldest waiter that no other attempt covers fails.
    if (this.queue.length > this.connecting) this.queue.shift()!.fail(err);
    this.maybeOpen();
    this.checkClosed();
  }

  onReusable(conn: UpstreamConnection): void {
    const next = this.queue.shift();
    if (next !== undefined) {
      this.assign(conn, next);
      return;
    }
    if (this.closed) {
      conn.destroy();
      return;
    }
    this.idle.push(conn);
    conn.markIdle();
  }

  onGone(conn: UpstreamConnection): void {
    if (!this.conns.delete(conn)) return;
    if (!conn.ready) this.connecting--;
    const i = this.idle.lastIndexOf(conn);
    if (i !== -1) this.idle.splice(i, 1);
    this.maybeOpen();
    this.checkClosed();
  }

  onExchangeLeft(): void {
    this.active--;
  }

  requeue(ex: PoolExchange): void {
    if (this.closed && this.conns.size === 0) {
      ex.fail(new ProxyError('UPSTREAM_RESET', 'the upstream pool is closed'));
      return;
    }
    this.queue.unshift(ex);
    this.maybeOpen();
  }

  removeQueued(ex: PoolExchange): void {
    const i = this.queue.indexOf(ex);
    if (i !== -1) this.queue.splice(i, 1);
    this.checkClosed();
  }

  // ---- UpstreamPool ----

  stats(): PoolStats {
    return { connections: this.conns.size, active: this.active, pending: this.queue.length };
  }

  close(): Promise<void> {
    this.closed = true;
    for (const conn of this.idle.splice(0)) conn.destroy();
    // Waiting requests no connection will ever serve fail now.
    if (this.conns.size === 0) for (const ex of this.queue.splice(0)) ex.fail(new ProxyError('UPSTREAM_CONNECT_FAILED', 'the upstream pool is closed'));
    return new Promise((resolve) => {
      this.closeWaiters.push(resolve);
      this.checkClosed();
    });
  }

  destroy(): void {
    this.closed = true;
    const err = new ProxyError('UPSTREAM_RESET', 'the upstream pool was destroyed');
    for (const ex of this.queue.splice(0)) ex.fail(err);
    this.idle.length = 0;
    for (const conn of [...this.conns]) conn.destroy();
    this.checkClosed();
  }

  private checkClosed(): void {
    if (!this.closed) return;
    if (this.conns.size === 0 && this.queue.length > 0) {
      for (const ex of this.queue.splice(0)) ex.fail(new ProxyError('UPSTREAM_CONNECT_FAILED', 'the upstream pool is closed'));
    }
    if (this.conns.size === 0 && this.queue.length === 0 && this.closeWaiters.length > 0) {
      for (const w of this.closeWaiters.splice(0)) w();
    }
  }
}
