// Proxies: every proxy connected over xDS with its identity, certificate
// expiry, config version and sync state (synced / stale / rejected with the
// proxy's own reason). Refreshed after each metrics round.
import { h } from '../h.ts';
import { type VNode } from 'preact';
import { useMetrics } from '../metrics-store.ts';
import { useFetch } from '../api.ts';
import { Badge, Live, Page, SortTable, type Column } from '../components.ts';
import { ago } from '../format.ts';

interface ProxyRow {
  nodeId: string;
  workload: string;
  namespace: string;
  kind: string;
  admin: string | null;
  userAgent: string;
  connectedAt: string;
  snapshotLabel: string | null;
  status: 'synced' | 'stale' | 'rejected';
  perType: Record<string, { ackedVersion: string | null; latestVersion: string | null }>;
  identity: { spiffeId: string | null; expiresAt: string | null; renewAt: string | null; lastError: string | null } | null;
  identityError: string | null;
  nacks: { type: string; version: string; message: string; at: string }[];
}

const TONE = { synced: 'good', stale: 'warn', rejected: 'bad' } as const;

export function Proxies(): VNode {
  const m = useMetrics();
  const { data, error } = useFetch<{ items: ProxyRow[] }>('/api/v1/dashboard/proxies', [m.tick]);
  const rows = data?.items ?? [];
  const columns: Column<ProxyRow>[] = [
    { key: 'workload', label: 'Proxy', sort: (r) => r.nodeId, render: (r) => h('span', null, h('a', { href: `#/proxy/${encodeURIComponent(r.nodeId)}` }, h('strong', null, r.workload)), h('br'), h('small', { class: 'muted' }, `${r.kind} · ${r.nodeId}`)) },
    { key: 'identity', label: 'Identity', sort: (r) => r.identity?.spiffeId ?? '', render: (r) => (r.identity?.spiffeId ? h('code', null, r.identity.spiffeId) : h('span', { class: 'muted' }, r.identityError ?? 'none')) },
    { key: 'expiry', label: 'Cert expires', sort: (r) => r.identity?.expiresAt ?? null, render: (r) => {
      const exp = r.identity?.expiresAt;
      if (!exp) return '–';
      const left = Date.parse(exp) - Date.now();
      return h(Badge, { tone: left < 0 ? 'bad' : left < 10 * 60_000 ? 'warn' : 'good', title: exp }, ago(exp));
    } },
    { key: 'version', label: 'Config version', sort: (r) => r.snapshotLabel ?? '', render: (r) => r.snapshotLabel ?? '–' },
    { key: 'status', label: 'Sync', sort: (r) => r.status, render: (r) => h('span', null, h(Badge, { tone: TONE[r.status] }, r.status),
      r.nacks.map((n) => h('div', { class: 'nack', key: n.type }, h('strong', null, `${n.type} ${n.version}: `), n.message))) },
    { key: 'connected', label: 'Connected', sort: (r) => r.connectedAt, render: (r) => ago(r.connectedAt) },
    { key: 'admin', label: 'Admin', render: (r) => r.admin ?? '–' },
  ];
  const counts = { synced: rows.filter((r) => r.status === 'synced').length, stale: rows.filter((r) => r.status === 'stale').length, rejected: rows.filter((r) => r.status === 'rejected').length };
  return h(Page, { title: 'Proxies', actions: h(Live, { connected: m.connected, what: 'refreshed each scrape' }) },
    error ? h('p', { class: 'alert', role: 'alert' }, error.message) : null,
    h('p', null, `${rows.length} connected: ${counts.synced} synced, ${counts.stale} stale, ${counts.rejected} rejected.`),
    h(SortTable<ProxyRow>, { label: 'Connected proxies', columns, rows, rowKey: (r) => r.nodeId, rowClass: (r) => (r.status === 'rejected' ? 'below-slo' : ''), empty: 'No proxy is connected.' }));
}
