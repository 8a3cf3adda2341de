// Opaque TCP proxying (Envoy's tcp_proxy): one upstream connection per
// downstream connection, bytes copied both ways with backpressure (`pipe`),
// and half-close preserved: both sockets allow half-open, so a FIN from one
// side is forwarded to the other while the opposite direction keeps flowing
// (a client that ends its request side still receives the whole reply).
// The connection closes when both directions have ended, on an error or
// reset from either side (the other side is reset too), on the idle timeout,
// or when the proxy's drain deadline destroys it.
import net from 'node:net';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import type { TcpProxySpec, WeightedCluster } from './config/types.ts';
import type { ConnectionContext } from './connection.ts';
import type { ProxyStats } from './proxy-stats.ts';
import type { PickEndpoint, TcpTarget } from './static-pick.ts';

export const DEFAULT_TCP_CONNECT_TIMEOUT_MS = 5_000;
/** Envoy's tcp_proxy default idle timeout is one hour. */
export const DEFAULT_TCP_IDLE_TIMEOUT_MS = 3_600_000;

export interface TcpProxyDeps {
  readonly spec: TcpProxySpec;
  readonly pick: PickEndpoint;
  readonly connectTimeoutMs: (cluster: string) => number;
  /** TLS origination (mesh mTLS) for an endpoint; plaintext when absent or undefined. */
  readonly tls?: (cluster: string, target: TcpTarget) => tls.ConnectionOptions | undefined;
  readonly stats?: ProxyStats;
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
}

export type TcpOutcome =
  | { ok: true; cluster: string; bytesIn: number; bytesOut: number }
  | { ok: false; cluster: string | undefined; reason: 'no_cluster' | 'no_endpoint' | 'connect_failed' | 'connect_timeout' | 'downstream_closed' };

/** Pick one of the weighted clusters (weights need not sum to anything). */
export function pickWeighted(clusters: readonly WeightedCluster[], rand: () => number = Math.random): string | undefined {
  if (clusters.length === 1) return clusters[0]!.name;
  let total = 0;
  for (const c of clusters) total += Math.max(0, c.weight);
  if (total <= 0) return clusters[0]?.name;
  let r = rand() * total;
  for (const c of clusters) {
    r -= Math.max(0, c.weight);
    if (r < 0) return c.name;
  }
  return clusters[clusters.length - 1]!.name;
}

/**
 * Proxy `downstream` (already accepted; `initial` holds bytes protocol
 * detection read) to an endpoint of one of the spec's clusters. The
 * downstream socket must have been created with `allowHalfOpen: true`.
 * Resolves when both sockets are closed.
 */
export function proxyTcp(downstream: Socket, initial: Buffer, conn: ConnectionContext, deps: TcpProxyDeps): Promise<TcpOutcome> {
  return new Promise((resolve) => {
    const cluster = pickWeighted(deps.spec.clusters);
    const fail = (reason: Exclude<TcpOutcome, { ok: true }>['reason']): void => {
      if (cluster !== undefined && (reason === 'connect_failed' || reason === 'connect_timeout' || reason === 'no_endpoint')) {
        deps.stats?.upstreamConnectFailures.labels(cluster, reason).inc();
      }
      deps.log?.('tcp_connect_failed', { listener: conn.listener, cluster, reason });
      downstream.destroy();
      resolve({ ok: false, cluster, reason });
    };
    if (cluster === undefined) return fail('no_cluster');
    const target = deps.pick(cluster);
    if (!target) return fail('no_endpoint');

    let connected = false;
    let downstreamGone = false;
    const tlsOpts = deps.tls?.(cluster, target);
    // An opaque stream offers no ALPN (the options are shared with HTTP pools).
    const upstream = tlsOpts
      ? tls.connect({ ...tlsOpts, ALPNProtocols: [], host: target.address, port: target.port }).setNoDelay(true)
      : net.connect({ host: target.address, port: target.port, allowHalfOpen: true, noDelay: true });
    downstream.setNoDelay(true);

    const untrack = conn.track({
      // Opaque bytes have no request boundary to drain at: the connection
      // keeps flowing until the drain deadline destroys it (as Envoy does).
      drain() {},
      destroy() {
        upstream.destroy();
        downstream.destroy();
      },
    });

    const connectTimer = setTimeout(() => {
      if (connected) return;
      upstream.destroy();
      untrack();
      fail('connect_timeout');
    }, deps.connectTimeoutMs(cluster));

    const earlyClose = (): void => {
      if (connected) return;
      downstreamGone = true;
    };
    downstream.once('close', earlyClose);
    downstream.on('error', () => {}); // surfaced through 'close'

    upstream.once('error', (err) => {
      if (connected) return; // handled by close below
      clearTimeout(connectTimer);
      untrack();
      deps.log?.('tcp_upstream_error', { listener: conn.listener, cluster, endpoint: `${target.address}:${target.port}`, error: err.message });
      fail('connect_failed');
    });

    upstream.once(tlsOpts ? 'secureConnect' : 'connect', () => {
      connected = true;
      clearTimeout(connectTimer);
      downstream.removeListener('close', earlyClose);
      if (downstreamGone || downstream.destroyed) {
        upstream.destroy();
        untrack();
        resolve({ ok: false, cluster, reason: 'downstream_closed' });
        return;
      }
      upstream.on('error', () => {}); // surfaced through 'close'
      const s = deps.stats;
      const upActive = s?.upstreamActive.labels(cluster);
      upActive?.inc();
      s?.upstreamTotal.labels(cluster).inc();
      const upRx = s?.upstreamBytes.labels(cluster, 'rx');
      const upTx = s?.upstreamBytes.labels(cluster, 'tx');
      const downRx = s?.downstreamBytes.labels(conn.listener, 'rx');
      const downTx = s?.downstreamBytes.labels(conn.listener, 'tx');
      let bytesIn = initial.length;
      let bytesOut = 0;
      downRx?.inc(initial.length);
      upTx?.inc(initial.length);
      if (initial.length > 0) upstream.write(initial);
      downstream.on('data', (c: Buffer) => {
        bytesIn += c.length;
        downRx?.inc(c.length);
        upTx?.inc(c.length);
      });
      upstream.on('data', (c: Buffer) => {
        bytesOut += c.length;
        upRx?.inc(c.length);
        downTx?.inc(c.length);
      });
      downstream.pipe(upstream);
      upstream.pipe(downstream);

      const idle = deps.spec.idleTimeoutMs ?? DEFAULT_TCP_IDLE_TIMEOUT_MS;
      if (idle > 0) {
        downstream.setTimeout(idle, () => {
          deps.log?.('tcp_idle_timeout', { listener: conn.listener, cluster });
          downstream.destroy();
          upstream.destroy();
        });
      }

      let closed = 0;
      const onClose = (other: Socket) => (hadError: boolean): void => {
        // A reset or error on one side resets the other (RST, not FIN, so
        // the peer sees a failure rather than a clean end); a clean close
        // means both directions already ended, so the other side follows.
        if (hadError && !other.destroyed) other.resetAndDestroy();
        if (++closed === 2) {
          upActive?.dec();
          untrack();
          resolve({ ok: true, cluster, bytesIn, bytesOut });
        }
      };
      downstream.once('close', onClose(upstream));
      upstream.once('close', onClose(downstream));
    });
  });
}
