// One proxy: its xDS sync state and recent NACKs (the proxy's own reasons),
// its clusters with each endpoint's health as its balancer sees it, and its
// config as the proxy has it (admin /config_dump via the control plane).
import { h } from '../h.ts';
import { type VNode } from 'preact';
import { useMetrics } from '../metrics-store.ts';
import { useFetch } from '../api.ts';
import { Badge, Live, Page, SortTable, type Column } from '../components.ts';
import { ago, ms } from '../format.ts';

interface Endpoint { address: string; port: number; health: string; ejected: boolean; active: number; ewmaMs: number }
interface ProxyDetail {
  nodeId: string;
  workload: string;
  kind: string;
  admin: string | null;
  snapshotLabel: string | null;
  status: 'synced' | 'stale' | 'rejected';
  nacks: { type: string; version: string; message: string; at: string }[];
  configDump: unknown;
  configError: string | null;
  clusters: { name: string; endpoints: Endpoint[] }[];
  clustersError: string | null;
}
interface EpRow { cluster: string; e: Endpoint }

const TONE = { synced: 'good', stale: 'warn', rejected: 'bad' } as const;

export function ProxyPage(p: { nodeId: string }): VNode {
  const m = useMetrics();
  const { data, error } = useFetch<ProxyDetail>(`/api/v1/dashboard/proxy?node=${encodeURIComponent(p.nodeId)}`, [Math.floor(m.tick / 3)]);
  const rows: EpRow[] = (data?.clusters ?? []).flatMap((c) => c.endpoints.map((e) => ({ cluster: c.name, e })));
  const columns: Column<EpRow>[] = [
    { key: 'cluster', label: 'Cluster', sort: (r) => r.cluster, render: (r) => r.cluster },
    { key: 'addr', label: 'Endpoint', sort: (r) => `${r.e.address}:${r.e.port}`, render: (r) => `${r.e.address}:${r.e.port}` },
    { key: 'health', label: 'Health', sort: (r) => (r.e.ejected ? 'ejected' : r.e.health), render: (r) => (r.e.ejected ? h(Badge, { tone: 'bad' }, 'ejected')
      : h(Badge, { tone: r.e.health === 'healthy' ? 'good' : r.e.health === 'unknown' ? 'idle' : 'warn' }, r.e.health)) },
    { key: 'active', label: 'In flight', numeric: true, sort: (r) => r.e.active, render: (r) => String(r.e.active) },
    { key: 'ewma', label: 'EWMA', numeric: true, sort: (r) => r.e.ewmaMs, render: (r) => ms(r.e.ewmaMs) },
  ];
  return h(Page, { title: `Proxy ${data?.workload ?? p.nodeId}`, actions: h(Live, { connected: m.connected, what: 'refreshed each few scrapes' }) },
    error ? h('p', { class: 'alert', role: 'alert' }, error.message) : null,
    data ? h('p', null, h(Badge, { tone: TONE[data.status] }, data.status), ` ${data.kind} · ${data.nodeId} · config version `, h('code', { class: 'config-version' }, data.snapshotLabel ?? '–'), ` · admin ${data.admin ?? '–'}`) : null,
    h('h2', null, 'Recent NACKs'),
    (data?.nacks.length ?? 0) === 0 ? h('p', { class: 'muted' }, 'No rejected config: the proxy accepted every version it was sent.')
      : h('ul', { class: 'nacks' }, data!.nacks.map((n) => h('li', { key: n.type, class: 'nack' }, h('strong', null, `${n.type} ${n.version}`), ` ${ago(n.at)}: `, n.message))),
    h('h2', null, 'Clusters and endpoints'),
    data?.clustersError ? h('p', { class: 'alert' }, `clusters: ${data.clustersError}`) : null,
    h(SortTable<EpRow>, { label: 'Endpoints this proxy sees', columns, rows, rowKey: (r) => `${r.cluster}/${r.e.address}:${r.e.port}`, empty: 'No cluster has endpoints.' }),
    h('h2', null, 'Config as the proxy has it'),
    data?.configError ? h('p', { class: 'alert' }, `config_dump: ${data.configError}`)
      : h('details', null, h('summary', null, 'config_dump'), h('pre', { class: 'config-dump' }, JSON.stringify(data?.configDump ?? null, null, 2))));
}
