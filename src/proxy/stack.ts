// The proxy's stack, assembled in one place and in the order a request
// travels through it:
//
//   listener (listener.ts)          accept, pick the filter chain by destination
//   -> detect (detect.ts)           TLS / HTTP/2 preface / HTTP/1 / opaque
//   -> opaque: tcp-proxy.ts         bytes both ways to an endpoint of the chain's cluster
//   -> HTTP: codec                  http1/server.ts or http2/server.ts -> ProxyRequest
//   -> forwarded (layers/)          x-forwarded-for/-proto, via, x-request-id
//   -> telemetry (telemetry/)       mesh metrics, trace span, access log, tap
//   -> metrics (layers/)            per-listener counts, latency, bytes
//   -> timeout (layers/)            listener / route / grpc-timeout deadline
//   -> misdirected (gateway-tls.ts) gateway HTTPS: Host not served by the SNI's certificate -> 421
//   -> path normalization (layers/) dot segments, escapes, slashes: what RBAC, router and backend see
//   -> jwt_authn, rbac, plugins     the HCM's honoured HTTP filters, in order (layers/security.ts;
//                                   envoy.filters.http.wasm: plugins/, docs/plugins.md)
//   -> router (router.ts)           route, rewrites, weighted cluster, route timeout
//   -> cluster (cluster.ts)         circuit breaker, balancer, endpoint
//   -> pool (http1|http2/pool.ts)   upstream connection
//
// A listener's HTTP stack is rebuilt for every config (cheap: closures over
// the new router); connections look their stack up per request through
// `current()`, so a config swap applies to the next request everywhere.
import type { ClusterSpec, EndpointSpec, FilterChainSpec, HttpConnectionManagerSpec, ListenerSpec, ProxyConfig } from './config/types.ts';
import type { ConnectionOptions } from 'node:tls';
import type { Socket } from 'node:net';
import type { ConnectionContext, ServeConnection } from './connection.ts';
import type { Dispatch, Layer } from './http/exchange.ts';
import { compose } from './http/exchange.ts';
import { ProxyError } from './errors.ts';
import type { Accepted, Listener } from './listener.ts';
import type { ProxyStats } from './proxy-stats.ts';
import { forwardedLayer } from './layers/forwarded.ts';
import { metricsLayer, ListenerSeries } from './layers/metrics.ts';
import { timeoutLayer } from './layers/timeout.ts';
import { pathNormalizationLayer } from './layers/path-normalization.ts';
import { DEFAULT_PATH_NORMALIZATION } from './http/path-normalize.ts';
import { proxyTcp, DEFAULT_TCP_CONNECT_TIMEOUT_MS } from './tcp-proxy.ts';
import type { PickEndpoint } from './static-pick.ts';
import { peerIdentityLayer } from './tls/peer-identity-layer.ts';
import { misdirectedRequestLayer } from './gateway-tls.ts';
import type { ConnectionAuthz } from './layers/security.ts';

export type Log = (event: string, fields?: Record<string, unknown>) => void;

/** What one config version serves with. Immutable; replaced whole. */
export interface Runtime {
  readonly config: ProxyConfig;
  /** The HTTP stack of a listener's chain; falls back to the listener's
   * first HTTP chain when the chain is gone from this config. */
  httpStack(listener: string, chain: string): Dispatch | undefined;
  /** Opaque TCP endpoint choice. */
  readonly pickEndpoint: PickEndpoint;
  /** A TCP chain's network RBAC (layers/security.ts), or undefined when it has none. */
  tcpAuthz?(listener: string, chain: string): ConnectionAuthz | undefined;
}

/** Every TCP chain's network RBAC decision for one config. */
export function buildTcpAuthz(config: ProxyConfig, compile: (chain: FilterChainSpec) => ConnectionAuthz | undefined): NonNullable<Runtime['tcpAuthz']> {
  const out = new Map<string, ConnectionAuthz>();
  for (const l of config.listeners) {
    for (const chain of l.filterChains) {
      const a = chain.tcp ? compile(chain) : undefined;
      if (a) out.set(l.name + KEY_SEP + chain.name, a);
    }
  }
  return (listener, chain) => out.get(listener + KEY_SEP + chain);
}

// ---- HTTP: forwarded -> metrics -> timeout -> router ----

export interface HttpStackDeps {
  readonly stats: ProxyStats;
  /** The router of this config version: routeConfigName -> terminal Dispatch. */
  readonly router: (routeConfigName: string) => Dispatch;
  /** Per-listener metric series, kept across config versions. */
  readonly series: (listener: ListenerSpec) => ListenerSeries;
  /** The telemetry layer of a listener chain under this config (telemetry/telemetry.ts). */
  readonly telemetry?: (listener: ListenerSpec, hcm: HttpConnectionManagerSpec) => Layer;
  /** Layers for the HCM's honoured HTTP filters (JWT authn, RBAC: layers/security.ts; plugins: plugins/plugins.ts). */
  readonly httpFilters?: (hcm: HttpConnectionManagerSpec) => readonly Layer[];
}

export function buildHttpStack(listener: ListenerSpec, hcm: HttpConnectionManagerSpec, deps: HttpStackDeps, routeTimeouts = true): Dispatch {
  return compose(
    [
      // Inbound: the caller's verified SPIFFE ID for the app; spoofed copies removed.
      ...(listener.direction === 'inbound' ? [peerIdentityLayer()] : []),
      forwardedLayer(hcm.via === undefined ? {} : { via: hcm.via }),
      ...(deps.telemetry ? [deps.telemetry(listener, hcm)] : []),
      metricsLayer({ stats: deps.stats, listener: listener.name, direction: listener.direction }, deps.series(listener)),
      timeoutLayer({ routeTimeouts, ...(hcm.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: hcm.requestTimeoutMs }) }),
      // Gateway HTTPS: a Host the connection's certificate (SNI) does not serve gets 421.
      ...(listener.direction === 'gateway' ? [misdirectedRequestLayer(listener)] : []),
      pathNormalizationLayer(hcm.pathNormalization ?? DEFAULT_PATH_NORMALIZATION),
      ...(deps.httpFilters ? deps.httpFilters(hcm) : []),
    ],
    deps.router(hcm.routeConfigName),
  );
}

const KEY_SEP = '\u0000';

/** Every listener chain's HTTP stack for one config. */
export function buildHttpStacks(config: ProxyConfig, deps: HttpStackDeps): Runtime['httpStack'] {
  const stacks = new Map<string, Dispatch>();
  // A route configuration none of whose routes has a timeout: the timeout
  // layer skips requests that arrive without a deadline.
  const timed = (name: string): boolean => {
    const rc = config.routeConfigs.get(name);
    return rc === undefined || rc.virtualHosts.some((vh) => vh.routes.some((r) => r.action.kind === 'route' && r.action.timeoutMs !== undefined));
  };
  for (const l of config.listeners) {
    for (const chain of l.filterChains) {
      if (!chain.http) continue;
      const d = buildHttpStack(l, chain.http, deps, timed(chain.http.routeConfigName));
      stacks.set(l.name + KEY_SEP + chain.name, d);
      if (!stacks.has(l.name + KEY_SEP)) stacks.set(l.name + KEY_SEP, d);
    }
  }
  return (listener, chain) => stacks.get(listener + KEY_SEP + chain) ?? stacks.get(listener + KEY_SEP);
}

// ---- the connection: codec or TCP proxy ----

/** What a downstream codec takes from the HttpConnectionManager. */
export interface CodecOptions {
  readonly idleTimeoutMs?: number;
  readonly maxHeadersCount?: number;
}

/** Codecs built once per distinct idle timeout and header-count limit (a
 * handful at most); `create({})` is the default codec. */
export function codecsByOptions(create: (o: CodecOptions) => ServeConnection): (hcm: HttpConnectionManagerSpec) => ServeConnection {
  const cache = new Map<string, ServeConnection>();
  return (hcm) => {
    const key = `${hcm.idleTimeoutMs}|${hcm.maxHeadersCount}`;
    let c = cache.get(key);
    if (!c) {
      const o: CodecOptions = { ...(hcm.idleTimeoutMs !== undefined ? { idleTimeoutMs: hcm.idleTimeoutMs } : {}), ...(hcm.maxHeadersCount !== undefined ? { maxHeadersCount: hcm.maxHeadersCount } : {}) };
      cache.set(key, (c = create(o)));
    }
    return c;
  };
}

export interface ConnectionDeps {
  /** The runtime of the config in force right now. */
  current(): Runtime;
  readonly stats: ProxyStats;
  readonly log: Log;
  /** The downstream codecs for a chain's HttpConnectionManager (idle
   * timeout and such come from it). */
  readonly http1: (hcm: HttpConnectionManagerSpec) => ServeConnection;
  readonly http2: (hcm: HttpConnectionManagerSpec) => ServeConnection;
  /**
   * TLS on a chain with a DownstreamTlsContext transport socket
   * (tls/terminate.ts): the handshake is done there and `next` continues
   * with the decrypted socket (the codec ALPN or sniffing chose, or the TCP
   * proxy). Without it such connections are closed on HTTP chains; on TCP
   * chains TLS without a transport socket is proxied as opaque bytes.
   */
  readonly terminateTls?: (accepted: Accepted, conn: ConnectionContext, next: TlsNext) => void;
  /** TLS origination per cluster endpoint (the cluster-manager hook), for the TCP proxy. */
  readonly upstreamTls?: (cluster: ClusterSpec, endpoint: EndpointSpec) => ConnectionOptions | undefined;
  /** A proxied opaque TCP connection closed (telemetry's TCP metrics). */
  readonly onTcpClosed?: (r: { direction: ConnectionContext['direction']; cluster: string; peerIdentity: string | undefined; bytesIn: number; bytesOut: number }) => void;
}

/** After TLS termination: the decrypted socket, bytes already read from it, and the protocol ALPN or sniffing found. */
export type TlsNext = (socket: Socket, initial: Buffer, protocol: 'http1' | 'http2') => void;

function hasDownstreamTls(chain: FilterChainSpec): boolean {
  const ts = chain.extensions?.['transportSocket'] as { typedConfig?: { '@type'?: string } } | undefined;
  return ts?.typedConfig?.['@type'] === 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
}

/** The listener's `serve` callback. */
export function createConnectionHandler(deps: ConnectionDeps): (accepted: Accepted, listener: Listener) => void {
  return function serveConnection(accepted, listener) {
    const { socket, chain, protocol, initial } = accepted;
    const conn = connectionContext(accepted, listener, chain, deps);
    if (chain.tcp) {
      if (protocol === 'tls' && deps.terminateTls && hasDownstreamTls(chain)) {
        deps.terminateTls(accepted, conn, (s, init) => serveTcp(s, init));
        return;
      }
      serveTcp(socket, initial);
      return;
    }
    function serveTcp(socket: Socket, initial: Buffer): void {
      const spec = chain.tcp!;
      // Network RBAC: once per connection, after TLS termination gave the peer's identity.
      const denied = deps.current().tcpAuthz?.(listener.name, chain.name)?.({ ctx: { downstream: conn.downstream } }) ?? null;
      if (denied !== null) {
        deps.log('tcp_rbac_denied', { listener: listener.name, chain: chain.name, policy: denied.policy, namespace: denied.namespace, peer: conn.downstream.peerIdentity ?? null, remote: conn.downstream.remoteAddress });
        socket.destroy();
        return;
      }
      const upstreamTls = deps.upstreamTls;
      const done = proxyTcp(socket, initial, conn, {
        spec,
        pick: (cluster) => deps.current().pickEndpoint(cluster),
        ...(upstreamTls
          ? {
            tls: (cluster: string, target: { address: string; port: number; labels?: Readonly<Record<string, string>> }) => {
              const cs = deps.current().config.clusters.get(cluster);
              return cs ? upstreamTls(cs, { address: target.address, port: target.port, weight: 1, health: 'healthy', ...(target.labels ? { labels: target.labels } : {}) }) : undefined;
            },
          }
          : {}),
        connectTimeoutMs: (cluster) => deps.current().config.clusters.get(cluster)?.connectTimeoutMs ?? DEFAULT_TCP_CONNECT_TIMEOUT_MS,
        stats: deps.stats,
        log: deps.log,
      });
      const report = deps.onTcpClosed;
      if (report) {
        void done.then((o) => {
          if (o.ok) report({ direction: conn.direction, cluster: o.cluster, peerIdentity: conn.downstream.peerIdentity, bytesIn: o.bytesIn, bytesOut: o.bytesOut });
        });
      }
    }
    if (!chain.http) {
      deps.log('chain_without_filter', { listener: listener.name, chain: chain.name });
      socket.destroy();
      return;
    }
    switch (protocol) {
      case 'tls':
        if (deps.terminateTls) {
          const hcm = chain.http;
          deps.terminateTls(accepted, conn, (s, init, p) => (p === 'http2' ? deps.http2(hcm) : deps.http1(hcm))(s, init, conn));
        }
        else {
          deps.log('tls_not_terminated', { listener: listener.name, chain: chain.name });
          socket.destroy();
        }
        return;
      case 'http2':
        deps.http2(chain.http)(socket, initial, conn);
        return;
      case 'http1':
      case 'opaque': // not HTTP on an HTTP chain: the HTTP/1 codec answers 400
        deps.http1(chain.http)(socket, initial, conn);
        return;
    }
  };
}

function connectionContext(accepted: Accepted, listener: Listener, chain: FilterChainSpec, deps: ConnectionDeps): ConnectionContext {
  const name = listener.name;
  const chainName = chain.name;
  const rx = deps.stats.downstreamBytes.labels(name, 'rx');
  const tx = deps.stats.downstreamBytes.labels(name, 'tx');
  // The stack is looked up once per config version, not per request: a
  // reference comparison is all a request pays while the config is stable.
  let seen: Runtime | undefined;
  let stack: Dispatch | undefined;
  const dispatch: Dispatch = (req, handler) => {
    const rt = deps.current();
    if (rt !== seen) {
      seen = rt;
      stack = rt.httpStack(name, chainName);
    }
    if (stack) stack(req, handler);
    else handler.onError(new ProxyError('NO_ROUTE', `listener "${name}" has no HTTP filter chain in the active config`));
  };
  return {
    listener: name,
    direction: listener.spec.direction,
    downstream: accepted.downstream,
    dispatch,
    track: accepted.track,
    // HTTP codecs report bytes when the connection closes (the TCP proxy
    // counts live instead and does not call this).
    onClose: (s) => {
      rx.inc(s.bytesIn);
      tx.inc(s.bytesOut);
    },
  };
}
