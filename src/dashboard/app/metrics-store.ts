// One metrics stream for the whole app (mounted once in main.ts): the latest
// scrape round's services and edges, and per-service history for the
// sparklines (seeded from /api/v1/dashboard/history, then extended by each
// event, trimmed to 15 minutes).
import { createContext, type ComponentChildren, type VNode } from 'preact';
import { h } from './h.ts';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';
import { api, useEventStream, METRICS_STREAM, type HistoryPoint, type MetricsEvent } from './api.ts';

const HISTORY_MS = 15 * 60_000;

export interface MetricsState {
  latest: MetricsEvent | undefined;
  history: ReadonlyMap<string, readonly HistoryPoint[]>;
  connected: boolean;
  /** Increments on every event: pages refetch their details on it. */
  tick: number;
}

const Ctx = createContext<MetricsState>({ latest: undefined, history: new Map(), connected: false, tick: 0 });

export function MetricsProvider(p: { children: ComponentChildren }): VNode {
  const history = useRef(new Map<string, HistoryPoint[]>());
  const [tick, setTick] = useState(0);
  useEffect(() => {
    void api<{ items: Record<string, HistoryPoint[]> }>('/api/v1/dashboard/history').then((r) => {
      if (!r.ok) return;
      for (const [k, pts] of Object.entries(r.value.items)) {
        const cur = history.current.get(k) ?? [];
        const first = cur[0]?.at ?? Infinity;
        history.current.set(k, [...pts.filter((x) => x.at < first), ...cur]);
      }
      setTick((n) => n + 1);
    });
  }, []);
  const { value, connected } = useEventStream<MetricsEvent>(METRICS_STREAM, 'metrics', (ev) => {
    const at = Date.parse(ev.at);
    for (const s of ev.services) {
      const k = `${s.namespace}/${s.name}`;
      const list = history.current.get(k) ?? [];
      list.push({ at, rps: s.rps, successRate: s.successRate, p50: s.latencyMs.p50, p95: s.latencyMs.p95, p99: s.latencyMs.p99 });
      while (list.length > 0 && list[0]!.at < at - HISTORY_MS) list.shift();
      history.current.set(k, list);
    }
    setTick((n) => n + 1);
  });
  return h(Ctx.Provider as (props: { value: MetricsState; children?: ComponentChildren }) => ComponentChildren, { value: { latest: value, history: history.current, connected, tick } }, p.children);
}

export const useMetrics = (): MetricsState => useContext(Ctx);
