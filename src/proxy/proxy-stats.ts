// The proxy's metric catalogue: every `trellis_*` series the data plane
// exports, declared in one place so names, labels and help text stay
// consistent. Layers and the TCP proxy resolve their labelled children once
// (per listener, per cluster) and only do arithmetic per request.
import { Registry, type Counter, type Gauge, type Histogram } from './stats.ts';

export interface ProxyStats {
  readonly registry: Registry;
  /** trellis_listener_requests_total{listener,direction,cluster,code_class}
   * (the mesh-standard trellis_requests_total is telemetry/telemetry-stats.ts) */
  readonly requests: Counter;
  /** trellis_listener_request_duration_seconds{listener,direction,cluster} */
  readonly requestDuration: Histogram;
  /** trellis_response_body_bytes_total{listener,cluster} */
  readonly responseBytes: Counter;
  /** trellis_downstream_connections_active{listener} */
  readonly downstreamActive: Gauge;
  /** trellis_downstream_connections_total{listener,protocol} */
  readonly downstreamTotal: Counter;
  /** trellis_downstream_bytes_total{listener,direction=rx|tx} */
  readonly downstreamBytes: Counter;
  /** trellis_upstream_connections_active{cluster} (opaque TCP) */
  readonly upstreamActive: Gauge;
  /** trellis_upstream_connections_total{cluster} (opaque TCP) */
  readonly upstreamTotal: Counter;
  /** trellis_upstream_connect_failures_total{cluster,reason} (opaque TCP) */
  readonly upstreamConnectFailures: Counter;
  /** trellis_upstream_bytes_total{cluster,direction=rx|tx} (opaque TCP) */
  readonly upstreamBytes: Counter;
  /** trellis_upstream_pool_connections / _rq_active / _rq_pending {cluster}, filled at scrape time */
  readonly poolConnections: Gauge;
  readonly poolActive: Gauge;
  readonly poolPending: Gauge;
  /** trellis_config_version_info{version} = 1 for the active config */
  readonly configVersion: Gauge;
  /** trellis_config_updates_total{result=applied|rejected} */
  readonly configUpdates: Counter;
}

export function createProxyStats(registry: Registry = new Registry()): ProxyStats {
  return {
    registry,
    requests: registry.counter('trellis_listener_requests_total', 'HTTP requests completed, by listener, direction, cluster and status class.', ['listener', 'direction', 'cluster', 'code_class']),
    requestDuration: registry.histogram('trellis_listener_request_duration_seconds', 'Time from the first request byte to the end of the response.', ['listener', 'direction', 'cluster']),
    responseBytes: registry.counter('trellis_response_body_bytes_total', 'Response body bytes sent downstream.', ['listener', 'cluster']),
    downstreamActive: registry.gauge('trellis_downstream_connections_active', 'Open downstream connections.', ['listener']),
    downstreamTotal: registry.counter('trellis_downstream_connections_total', 'Accepted downstream connections by detected protocol.', ['listener', 'protocol']),
    downstreamBytes: registry.counter('trellis_downstream_bytes_total', 'Bytes received from (rx) and sent to (tx) downstream connections; HTTP connections report when they close.', ['listener', 'direction']),
    upstreamActive: registry.gauge('trellis_upstream_connections_active', 'Open opaque-TCP upstream connections.', ['cluster']),
    upstreamTotal: registry.counter('trellis_upstream_connections_total', 'Opaque-TCP upstream connections opened.', ['cluster']),
    upstreamConnectFailures: registry.counter('trellis_upstream_connect_failures_total', 'Opaque-TCP upstream connections that could not be established.', ['cluster', 'reason']),
    upstreamBytes: registry.counter('trellis_upstream_bytes_total', 'Opaque-TCP bytes received from (rx) and sent to (tx) upstreams.', ['cluster', 'direction']),
    poolConnections: registry.gauge('trellis_upstream_pool_connections', 'Open HTTP upstream connections per cluster.', ['cluster']),
    poolActive: registry.gauge('trellis_upstream_rq_active', 'HTTP requests in flight upstream per cluster.', ['cluster']),
    poolPending: registry.gauge('trellis_upstream_rq_pending', 'HTTP requests waiting for an upstream connection per cluster.', ['cluster']),
    configVersion: registry.gauge('trellis_config_version_info', 'The active configuration version (value is always 1).', ['version']),
    configUpdates: registry.counter('trellis_config_updates_total', 'Configuration updates applied or rejected.', ['result']),
  };
}

/** Status class label for a status code: "2xx", "5xx", ... */
export const CODE_CLASSES: readonly string[] = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

export function codeClassIndex(status: number): number {
  const c = (status / 100) | 0;
  return c >= 1 && c <= 5 ? c : 0;
}
