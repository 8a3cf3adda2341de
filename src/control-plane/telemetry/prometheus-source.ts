// GroupQuery (golden.ts) answered by a real Prometheus that scrapes the
// proxies, through its HTTP API (`/api/v1/query`). The PromQL equivalents of
// what the embedded aggregator computes, for a selector S and labels B:
//
//   requests   sum by (B) (increase(trellis_requests_total{S}[w]))
//   successes  sum by (B) (increase(trellis_requests_total{S,response_code!~"5..",grpc_status!~"2|4|12|13|14|15"}[w]))
//   mtls       sum by (B) (increase(trellis_requests_total{S,mtls="true"}[w]))
//   pXX        histogram_quantile(0.XX, sum by (B, le) (increase(trellis_request_duration_seconds_bucket{S}[w])))
//   proxies    count by (B) (sum by (B, instance) (increase(trellis_requests_total{S}[w])))
//   tcp        sum by (B) (increase(trellis_tcp_connections_opened_total{S}[w]))
//   covered    time() - min(min_over_time(timestamp(up)[w:w/60]))
//              (how long Prometheus has been scraping, at most w: rates
//              divide by it, as the embedded aggregator's do)
//
// Prometheus extrapolates increase() to the window's edges and cannot see a
// new series' first value, so its counts differ from the embedded ones by a
// few percent on young series; ratios and quantiles agree closely.
import { GRPC_FAILURE_CODES, WINDOWS, type GroupQuery, type GroupSpec, type GroupStats, type Window } from './golden.ts';

export interface PrometheusSourceOptions {
  /** e.g. `http://127.0.0.1:9090`. */
  readonly url: string;
  readonly timeoutMs?: number;
}

interface VectorResult {
  metric: Record<string, string>;
  value: [number, string];
}

export class PrometheusError extends Error {
  readonly code = 'PROMETHEUS_QUERY_FAILED';
}

export function escapePromValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export function selector(spec: GroupSpec, extra = ''): string {
  const parts = [`direction="${spec.direction}"`];
  for (const [k, v] of Object.entries(spec.match ?? {})) {
    if (typeof v === 'string') parts.push(`${k}="${escapePromValue(v)}"`);
    else parts.push(`${k}=~"${v.map((x) => escapePromValue(x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('|')}"`);
  }
  if (extra) parts.push(extra);
  return `{${parts.join(',')}}`;
}

export function groupQueries(spec: GroupSpec, window: Window): Record<'requests' | 'successes' | 'mtls' | 'p50' | 'p95' | 'p99' | 'proxies' | 'tcp', string> {
  const by = spec.by.join(',');
  const s = selector(spec);
  const inc = (metric: string, sel: string): string => `increase(${metric}${sel}[${window}])`;
  const byLe = [...spec.by, 'le'].join(',');
  const q = (p: string): string => `histogram_quantile(${p}, sum by (${byLe}) (${inc('trellis_request_duration_seconds_bucket', s)}))`;
  return {
    requests: `sum by (${by}) (${inc('trellis_requests_total', s)})`,
    successes: `sum by (${by}) (${inc('trellis_requests_total', selector(spec, `response_code!~"5..",grpc_status!~"${GRPC_FAILURE_CODES.join('|')}"`))})`,
    mtls: `sum by (${by}) (${inc('trellis_requests_total', selector(spec, 'mtls="true"'))})`,
    p50: q('0.5'),
    p95: q('0.95'),
    p99: q('0.99'),
    proxies: `count by (${by}) (sum by (${[...spec.by, 'instance'].join(',')}) (${inc('trellis_requests_total', s)}))`,
    tcp: `sum by (${by}) (${inc('trellis_tcp_connections_opened_total', s)})`,
  };
}

/** Seconds Prometheus has been scraping within the window (the oldest `up`
 * sample), at the window's resolution / 60. */
export function coveredQuery(window: Window): string {
  const step = `${Math.max(1, Math.round(WINDOWS[window] / 60_000))}s`;
  return `time() - min(min_over_time(timestamp(up)[${window}:${step}]))`;
}

export class PrometheusSource implements GroupQuery {
  private readonly o: PrometheusSourceOptions;
  constructor(o: PrometheusSourceOptions) {
    this.o = o;
  }

  /** Run one instant query; the result vector. */
  async query(promql: string): Promise<VectorResult[]> {
    const url = new URL('/api/v1/query', this.o.url);
    url.searchParams.set('query', promql);
    const res = await fetch(url, { signal: AbortSignal.timeout(this.o.timeoutMs ?? 5_000) });
    const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: VectorResult[] } };
    if (body.status !== 'success' || !body.data) throw new PrometheusError(`prometheus: ${body.error ?? `HTTP ${res.status}`} (query: ${promql})`);
    if (body.data.resultType !== 'vector') throw new PrometheusError(`prometheus: expected a vector, got ${body.data.resultType}`);
    return body.data.result;
  }

  async groups(spec: GroupSpec, window: Window): Promise<GroupStats[]> {
    const qs = groupQueries(spec, window);
    const names = Object.keys(qs) as (keyof typeof qs)[];
    const [covered, ...results] = await Promise.all([this.query(coveredQuery(window)), ...names.map((n) => this.query(qs[n]))]);
    const coveredSeconds = Number(covered?.[0]?.value[1]);
    const coveredMs = Number.isFinite(coveredSeconds) && coveredSeconds > 0 ? Math.min(WINDOWS[window], coveredSeconds * 1000) : WINDOWS[window];
    const keyOf = (m: Record<string, string>): string => spec.by.map((b) => m[b] ?? '').join('\u0000');
    const table = new Map<string, { labels: Record<string, string>; v: Partial<Record<keyof typeof qs, number>> }>();
    names.forEach((n, i) => {
      for (const r of results[i]!) {
        const k = keyOf(r.metric);
        let e = table.get(k);
        if (!e) {
          const labels: Record<string, string> = {};
          for (const b of spec.by) labels[b] = r.metric[b] ?? '';
          table.set(k, (e = { labels, v: {} }));
        }
        e.v[n] = Number(r.value[1]);
      }
    });
    const out: GroupStats[] = [];
    for (const { labels, v } of table.values()) {
      const requests = v.requests ?? 0;
      const tcp = v.tcp ?? 0;
      if (requests === 0 && tcp === 0) continue;
      const ms = (x: number | undefined): number | null => (x === undefined || !Number.isFinite(x) ? null : x * 1000);
      out.push({
        labels,
        requests,
        successes: v.successes ?? 0,
        mtls: v.mtls ?? 0,
        latencyMs: { p50: ms(v.p50), p95: ms(v.p95), p99: ms(v.p99) },
        proxies: v.proxies ?? 0,
        tcpConnections: tcp,
        coveredMs,
      });
    }
    return out;
  }
}
