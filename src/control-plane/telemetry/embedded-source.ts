// The embedded aggregator: scrape history of every proxy (series-history.ts)
// answering GroupQuery (golden.ts) without a Prometheus. Holds enough history
// for the longest window (15 minutes) at the scrape interval.
import { GRPC_FAILURE_CODES, WINDOWS, histogramQuantile, type GroupQuery, type GroupSpec, type GroupStats, type Window } from './golden.ts';
import type { Sample } from './prom-text.ts';
import { TargetHistory, type SeriesMeta } from './series-history.ts';

/** The metric families the aggregator keeps from a scrape. */
export const KEPT_METRICS: ReadonlySet<string> = new Set([
  'trellis_requests_total',
  'trellis_request_duration_seconds_bucket',
  'trellis_tcp_connections_opened_total',
]);

export interface EmbeddedOptions {
  readonly scrapeIntervalMs: number;
  /** Milliseconds clock shared with the scraper (Date.now by default). */
  readonly now?: () => number;
}

interface Acc {
  labels: Record<string, string>;
  requests: number;
  successes: number;
  mtls: number;
  tcp: number;
  buckets: Map<number, number>;
  targets: Set<string>;
}

export class EmbeddedAggregator implements GroupQuery {
  private readonly targets = new Map<string, TargetHistory>();
  private readonly capacity: number;
  private readonly now: () => number;

  constructor(o: EmbeddedOptions) {
    // One snapshot before the longest window starts, plus slack.
    this.capacity = Math.ceil(WINDOWS['15m'] / o.scrapeIntervalMs) + 2;
    this.now = o.now ?? Date.now;
  }

  /** Record one scrape of `target` taken at `t`. */
  record(target: string, t: number, samples: readonly Sample[]): void {
    let h = this.targets.get(target);
    if (!h) this.targets.set(target, (h = new TargetHistory(target, this.capacity)));
    h.add(t, samples);
  }

  /** Forget targets that are no longer listed. */
  retain(targets: ReadonlySet<string>): void {
    for (const t of this.targets.keys()) if (!targets.has(t)) this.targets.delete(t);
  }

  targetNames(): string[] {
    return [...this.targets.keys()];
  }

  async groups(spec: GroupSpec, window: Window): Promise<GroupStats[]> {
    const now = this.now();
    const groups = new Map<string, Acc>();
    const accFor = (meta: SeriesMeta): Acc | undefined => {
      const l = meta.labels;
      if (l['direction'] !== spec.direction) return undefined;
      if (spec.match) for (const [k, v] of Object.entries(spec.match)) if (typeof v === 'string' ? l[k] !== v : !v.includes(l[k] ?? '')) return undefined;
      let key = '';
      for (const b of spec.by) key += `${l[b] ?? ''}\u0000`;
      let a = groups.get(key);
      if (!a) {
        const labels: Record<string, string> = {};
        for (const b of spec.by) labels[b] = l[b] ?? '';
        groups.set(key, (a = { labels, requests: 0, successes: 0, mtls: 0, tcp: 0, buckets: new Map(), targets: new Set() }));
      }
      return a;
    };
    // The time the counts cover: the window, or the history there is while
    // the aggregator is younger than the window (rates divide by this).
    let coveredMs = 0;
    for (const h of this.targets.values()) {
      const span = h.increases(now, WINDOWS[window], (meta, inc) => {
        const a = accFor(meta);
        if (!a) return;
        a.targets.add(h.target);
        const l = meta.labels;
        switch (meta.name) {
          case 'trellis_requests_total':
            a.requests += inc;
            if (!(l['response_code'] ?? '').startsWith('5') && !GRPC_FAILURE_CODES.includes(l['grpc_status'] ?? '')) a.successes += inc;
            if (l['mtls'] === 'true') a.mtls += inc;
            break;
          case 'trellis_request_duration_seconds_bucket': {
            const le = l['le'] === '+Inf' ? Infinity : Number(l['le']);
            a.buckets.set(le, (a.buckets.get(le) ?? 0) + inc);
            break;
          }
          case 'trellis_tcp_connections_opened_total':
            a.tcp += inc;
            break;
        }
      });
      coveredMs = Math.max(coveredMs, span);
    }
    const out: GroupStats[] = [];
    for (const a of groups.values()) {
      if (a.requests === 0 && a.tcp === 0) continue;
      const b = [...a.buckets.entries()].sort((x, y) => x[0] - y[0]);
      const q = (p: number): number | null => {
        const v = histogramQuantile(p, b);
        return v === null ? null : v * 1000;
      };
      out.push({ labels: a.labels, requests: a.requests, successes: a.successes, mtls: a.mtls, latencyMs: { p50: q(0.5), p95: q(0.95), p99: q(0.99) }, proxies: a.targets.size, tcpConnections: a.tcp, coveredMs });
    }
    return out;
  }
}
