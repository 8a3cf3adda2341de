// The mesh's standard request metrics (docs/telemetry.md), in the spirit of
// Istio's: one request counter, a duration histogram and byte sums with the
// same bounded label set, and TCP connection metrics. The scheme is stable:
// the control plane's aggregator, the Prometheus queries and dashboards read
// these names and labels.
//
// Hot path: the labelled children of one label tuple are resolved once and
// kept in a bounded cache keyed by the tuple; a request builds one key string
// and does one map lookup. When the cache is full, new tuples share one
// series whose labels other than `direction` read "other" (and count in
// trellis_telemetry_series_overflow_total), so a hostile label source cannot
// grow memory.
import type { Counter, CounterChild, Histogram, HistogramChild, Registry } from '../stats.ts';

export const REQUEST_LABELS = [
  'direction',
  'source_workload',
  'source_namespace',
  'destination_workload',
  'destination_namespace',
  'destination_service',
  'route',
  'response_code',
  'grpc_status',
  'protocol',
  'mtls',
  'response_flags',
  'parent_service',
] as const;

export const TCP_LABELS = [
  'direction',
  'source_workload',
  'source_namespace',
  'destination_workload',
  'destination_namespace',
  'destination_service',
  'mtls',
] as const;

export const OTHER = 'other';
export const DEFAULT_MAX_TUPLES = 1000;

/** Label values in REQUEST_LABELS order. */
export type RequestLabelValues = readonly [string, string, string, string, string, string, string, string, string, string, string, string, string];
export type TcpLabelValues = readonly [string, string, string, string, string, string, string];

export interface RequestSeries {
  readonly requests: CounterChild;
  readonly duration: HistogramChild;
  readonly requestBytes: CounterChild;
  readonly responseBytes: CounterChild;
}

export interface TcpSeries {
  readonly opened: CounterChild;
  readonly closed: CounterChild;
  readonly sent: CounterChild;
  readonly received: CounterChild;
}

export interface TelemetryStats {
  readonly registry: Registry;
  readonly requests: Counter;
  readonly duration: Histogram;
  readonly requestBytes: Counter;
  readonly responseBytes: Counter;
  readonly tcpOpened: Counter;
  readonly tcpClosed: Counter;
  readonly tcpSent: Counter;
  readonly tcpReceived: Counter;
  readonly overflow: Counter;
  /** The series of a request label tuple (cached, bounded). */
  request(values: RequestLabelValues): RequestSeries;
  tcp(values: TcpLabelValues): TcpSeries;
}

export function createTelemetryStats(registry: Registry, opts: { maxTuples?: number } = {}): TelemetryStats {
  const max = opts.maxTuples ?? DEFAULT_MAX_TUPLES;
  const requests = registry.counter('trellis_requests_total', 'HTTP/gRPC requests completed, by source, destination, route and outcome.', REQUEST_LABELS);
  const duration = registry.histogram('trellis_request_duration_seconds', 'Time from the first request byte to the end of the response.', REQUEST_LABELS);
  const requestBytes = registry.counter('trellis_request_bytes_total', 'Request body bytes received from the downstream.', REQUEST_LABELS);
  const responseBytes = registry.counter('trellis_response_bytes_total', 'Response body bytes sent to the downstream.', REQUEST_LABELS);
  const tcpOpened = registry.counter('trellis_tcp_connections_opened_total', 'Opaque TCP connections proxied (opened).', TCP_LABELS);
  const tcpClosed = registry.counter('trellis_tcp_connections_closed_total', 'Opaque TCP connections closed.', TCP_LABELS);
  const tcpSent = registry.counter('trellis_tcp_sent_bytes_total', 'Opaque TCP bytes sent to the downstream (responses).', TCP_LABELS);
  const tcpReceived = registry.counter('trellis_tcp_received_bytes_total', 'Opaque TCP bytes received from the downstream (requests).', TCP_LABELS);
  const overflow = registry.counter('trellis_telemetry_series_overflow_total', 'Label tuples folded into the "other" series because the telemetry series cache was full.', ['metric']);

  const reqCache = new Map<string, RequestSeries>();
  const tcpCache = new Map<string, TcpSeries>();
  const reqOverflow = new Map<string, RequestSeries>();
  const tcpOverflow = new Map<string, TcpSeries>();
  const makeReq = (v: readonly string[]): RequestSeries => ({
    requests: requests.labels(...v),
    duration: duration.labels(...v),
    requestBytes: requestBytes.labels(...v),
    responseBytes: responseBytes.labels(...v),
  });
  const makeTcp = (v: readonly string[]): TcpSeries => ({
    opened: tcpOpened.labels(...v),
    closed: tcpClosed.labels(...v),
    sent: tcpSent.labels(...v),
    received: tcpReceived.labels(...v),
  });
  const overflowValues = (direction: string, n: number): string[] => [direction, ...new Array<string>(n - 1).fill(OTHER)];

  return {
    registry,
    requests,
    duration,
    requestBytes,
    responseBytes,
    tcpOpened,
    tcpClosed,
    tcpSent,
    tcpReceived,
    overflow,
    request(v) {
      const key = v.join('\u0000');
      const hit = reqCache.get(key);
      if (hit) return hit;
      if (reqCache.size >= max) {
        overflow.labels('trellis_requests_total').inc();
        let o = reqOverflow.get(v[0]);
        if (!o) reqOverflow.set(v[0], (o = makeReq(overflowValues(v[0], REQUEST_LABELS.length))));
        return o;
      }
      const s = makeReq(v);
      reqCache.set(key, s);
      return s;
    },
    tcp(v) {
      const key = v.join('\u0000');
      const hit = tcpCache.get(key);
      if (hit) return hit;
      if (tcpCache.size >= max) {
        overflow.labels('trellis_tcp_connections_opened_total').inc();
        let o = tcpOverflow.get(v[0]);
        if (!o) tcpOverflow.set(v[0], (o = makeTcp(overflowValues(v[0], TCP_LABELS.length))));
        return o;
      }
      const s = makeTcp(v);
      tcpCache.set(key, s);
      return s;
    },
  };
}
