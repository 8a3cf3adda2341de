// Overview: every service with its golden metrics, sortable, with 15-minute
// sparklines; a service below its success-rate objective stands out.
import { h } from '../h.ts';
import { type VNode } from 'preact';
import { useMetrics } from '../metrics-store.ts';
import { useWatchedKind, type StatRow } from '../api.ts';
import { Badge, Live, Page, SortTable, Sparkline, type Column } from '../components.ts';
import { HEALTH_COLOR, healthOf, ms, pct, rps, sloOf } from '../format.ts';

interface Row {
  key: string;
  name: string;
  namespace: string;
  stat: StatRow | undefined;
  slo: number;
}

export function Overview(): VNode {
  const m = useMetrics();
  const services = useWatchedKind('Service');
  const rows = new Map<string, Row>();
  for (const s of services.items) {
    const ns = s.metadata.namespace ?? 'default';
    rows.set(`${ns}/${s.metadata.name}`, { key: `${ns}/${s.metadata.name}`, name: s.metadata.name, namespace: ns, stat: undefined, slo: sloOf(s.metadata.annotations) });
  }
  for (const st of m.latest?.services ?? []) {
    const key = `${st.namespace}/${st.name}`;
    const r = rows.get(key);
    rows.set(key, { key, name: st.name, namespace: st.namespace, stat: st, slo: r?.slo ?? 0.99 });
  }
  const below = [...rows.values()].filter((r) => healthOf(r.stat?.successRate, r.slo) === 'bad');
  const hist = (r: Row) => m.history.get(r.key) ?? [];
  const columns: Column<Row>[] = [
    { key: 'name', label: 'Service', sort: (r) => r.key, render: (r) => (r.name === 'unknown'
      ? h('span', { class: 'muted', title: 'requests whose destination service the proxies could not name' }, 'unknown service')
      : h('a', { href: `#/service/${r.namespace}/${r.name}` }, r.namespace === 'default' ? r.name : `${r.namespace}/${r.name}`)) },
    {
      key: 'success', label: 'Success', numeric: true, sort: (r) => r.stat?.successRate ?? null,
      render: (r) => {
        const hl = healthOf(r.stat?.successRate, r.slo);
        return h(Badge, { tone: hl, title: `objective ${pct(r.slo, 1)}` }, pct(r.stat?.successRate), hl === 'bad' ? ` < ${pct(r.slo, 1)}` : '');
      },
    },
    { key: 'rps', label: 'RPS', numeric: true, sort: (r) => r.stat?.rps ?? 0, render: (r) => rps(r.stat?.rps ?? 0) },
    { key: 'p50', label: 'p50', numeric: true, sort: (r) => r.stat?.latencyMs.p50 ?? null, render: (r) => ms(r.stat?.latencyMs.p50) },
    { key: 'p95', label: 'p95', numeric: true, sort: (r) => r.stat?.latencyMs.p95 ?? null, render: (r) => ms(r.stat?.latencyMs.p95) },
    { key: 'p99', label: 'p99', numeric: true, sort: (r) => r.stat?.latencyMs.p99 ?? null, render: (r) => ms(r.stat?.latencyMs.p99) },
    { key: 'meshed', label: 'Meshed', numeric: true, sort: (r) => r.stat?.meshed ?? 0, render: (r) => String(r.stat?.meshed ?? 0) },
    { key: 'mtls', label: 'mTLS', numeric: true, sort: (r) => r.stat?.mtlsShare ?? null, render: (r) => pct(r.stat?.mtlsShare, 0) },
    { key: 'rpsTrend', label: 'RPS, 15 min', render: (r) => h(Sparkline, { values: hist(r).map((p) => p.rps), label: `${r.name} requests per second`, color: '#3b82f6' }) },
    { key: 'srTrend', label: 'Success, 15 min', render: (r) => h(Sparkline, { values: hist(r).map((p) => p.successRate), label: `${r.name} success rate`, color: HEALTH_COLOR[healthOf(r.stat?.successRate, r.slo)] }) },
  ];
  return h(Page, { title: 'Services', actions: h(Live, { connected: m.connected, what: 'metrics (1 m window)' }) },
    below.length > 0
      ? h('p', { class: 'alert', role: 'alert' }, `${below.length} service${below.length > 1 ? 's' : ''} below objective: `, below.map((r, i) => [i > 0 ? ', ' : '', h('a', { href: `#/service/${r.namespace}/${r.name}` }, r.name)]))
      : null,
    h(SortTable<Row>, {
      label: 'Services and their golden metrics',
      columns,
      rows: [...rows.values()],
      rowKey: (r) => r.key,
      rowClass: (r) => (healthOf(r.stat?.successRate, r.slo) === 'bad' ? 'below-slo' : ''),
      initial: { key: 'name', desc: false },
      empty: 'No services yet: apply a Service, or start `trellis demo`.',
    }));
}
