// Topology: workloads and the calls between them (the server side's view,
// 1 m window), drawn with cytoscape. Edges carry rate, success rate and p99,
// are coloured by health and drawn solid when the calls were mutual TLS
// (dashed otherwise). Click (or Enter on the table below) to drill in.
import { h } from '../h.ts';
import { type VNode } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import cytoscape from 'cytoscape';
import { useMetrics } from '../metrics-store.ts';
import { useFetch, useWatchedKind, type EdgeRow, type Resource } from '../api.ts';
import { Live, Page, SortTable, type Column } from '../components.ts';
import { HEALTH_COLOR, healthOf, ms, pct, rps } from '../format.ts';

interface RegistryWorkload { name: string; namespace: string; labels: Record<string, string> }

/** The Service a workload belongs to: the matching selector with the fewest keys. */
export function serviceOfWorkload(w: RegistryWorkload | undefined, services: readonly Resource[]): string | undefined {
  if (!w) return undefined;
  let best: { name: string; keys: number } | undefined;
  for (const s of services) {
    if ((s.metadata.namespace ?? 'default') !== w.namespace) continue;
    const sel = (s.spec?.['selector'] ?? {}) as Record<string, string>;
    const keys = Object.keys(sel);
    if (keys.length === 0 || !keys.every((k) => w.labels[k] === sel[k])) continue;
    if (!best || keys.length < best.keys || (keys.length === best.keys && s.metadata.name < best.name)) best = { name: s.metadata.name, keys: keys.length };
  }
  return best?.name;
}

const edgeId = (e: EdgeRow): string => `${e.source.namespace}/${e.source.workload}>${e.destination.namespace}/${e.destination.workload}`;
const edgeLabel = (e: EdgeRow): string => `${rps(e.rps)}/s ${pct(e.successRate, 1)} ${ms(e.latencyMs.p99)}`;

export function Topology(): VNode {
  const m = useMetrics();
  const services = useWatchedKind('Service');
  const registry = useFetch<{ items: RegistryWorkload[] }>('/api/v1/registry/workloads', [Math.floor(m.tick / 6)]);
  const box = useRef<HTMLDivElement>(null);
  const cy = useRef<cytoscape.Core | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const edges = m.latest?.edges ?? [];
  const workloads = new Map((registry.data?.items ?? []).map((w) => [`${w.namespace}/${w.name}`, w]));
  const serviceFor = (id: string): string | undefined => serviceOfWorkload(workloads.get(id), services.items);

  useEffect(() => {
    if (!box.current) return undefined;
    const c = cytoscape({
      container: box.current,
      wheelSensitivity: 0.3,
      minZoom: 0.3,
      maxZoom: 2.5,
      style: [
        { selector: 'node', style: { label: 'data(label)', 'text-wrap': 'wrap', 'text-valign': 'bottom', 'text-margin-y': 4, 'font-size': 11, color: '#1f2937', 'background-color': 'data(color)', width: 28, height: 28, 'border-width': 2, 'border-color': '#fff' } },
        { selector: 'node[?unmeshed]', style: { shape: 'round-rectangle', 'border-style': 'dashed', 'border-color': '#8a94a6' } },
        { selector: 'edge', style: { label: 'data(label)', 'font-size': 9, 'text-rotation': 'autorotate', 'text-margin-y': -7, 'text-background-color': '#fff', 'text-background-opacity': 0.85, 'text-background-padding': '2px', width: 'data(width)', 'line-color': 'data(color)', 'target-arrow-color': 'data(color)', 'target-arrow-shape': 'triangle', 'curve-style': 'bezier', 'line-style': 'data(line)' as 'solid' } },
        { selector: ':selected', style: { 'overlay-color': '#3b82f6', 'overlay-opacity': 0.25, 'overlay-padding': 6 } },
      ],
    });
    c.on('tap', 'node', (ev) => {
      const svc = ev.target.data('service') as string | undefined;
      const ns = ev.target.data('namespace') as string;
      if (svc) location.hash = `#/service/${ns}/${svc}`;
      else setSelected(ev.target.id());
    });
    c.on('tap', 'edge', (ev) => setSelected(ev.target.id()));
    cy.current = c;
    return () => {
      c.destroy();
      cy.current = null;
    };
  }, []);

  useEffect(() => {
    const c = cy.current;
    if (!c) return;
    const nodes = new Map<string, { id: string; workload: string; namespace: string }>();
    for (const e of edges) for (const end of [e.source, e.destination]) nodes.set(`${end.namespace}/${end.workload}`, { id: `${end.namespace}/${end.workload}`, ...end });
    const inRps = new Map<string, { rps: number; ok: number; n: number }>();
    for (const e of edges) {
      const id = `${e.destination.namespace}/${e.destination.workload}`;
      const cur = inRps.get(id) ?? { rps: 0, ok: 0, n: 0 };
      cur.rps += e.rps;
      cur.ok += (e.successRate ?? 0) * e.requests;
      cur.n += e.requests;
      inRps.set(id, cur);
    }
    const before = new Set(c.nodes().map((n) => n.id()));
    c.batch(() => {
      const edgeIds = new Set(edges.map(edgeId));
      c.edges().forEach((el) => {
        if (!edgeIds.has(el.id())) el.remove();
      });
      c.nodes().forEach((el) => {
        if (!nodes.has(el.id())) el.remove();
      });
      for (const n of nodes.values()) {
        const r = inRps.get(n.id);
        const sr = r && r.n > 0 ? r.ok / r.n : null;
        const data = { id: n.id, namespace: n.namespace, service: serviceFor(n.id), unmeshed: n.workload === 'unknown', color: HEALTH_COLOR[healthOf(sr)], label: `${n.workload}${r ? `\n${rps(r.rps)} rps` : ''}` };
        const el = c.getElementById(n.id);
        if (el.length > 0) el.data(data);
        else c.add({ group: 'nodes', data });
      }
      for (const e of edges) {
        const id = edgeId(e);
        const data = {
          id,
          source: `${e.source.namespace}/${e.source.workload}`,
          target: `${e.destination.namespace}/${e.destination.workload}`,
          label: edgeLabel(e),
          color: HEALTH_COLOR[healthOf(e.successRate)],
          width: Math.min(6, 1.5 + Math.log10(1 + e.rps) * 2),
          line: (e.mtlsShare ?? 0) >= 0.99 ? 'solid' : 'dashed',
        };
        const el = c.getElementById(id);
        if (el.length > 0) el.data(data);
        else c.add({ group: 'edges', data });
      }
    });
    const after = new Set(c.nodes().map((n) => n.id()));
    if (after.size !== before.size || [...after].some((id) => !before.has(id))) {
      const roots = c.nodes().filter((n) => n.indegree(false) === 0);
      c.layout({ name: 'breadthfirst', directed: true, spacingFactor: 1.5, padding: 24, ...(roots.length > 0 ? { roots } : {}) }).run();
    }
  }, [m.tick, registry.data, services.items.length]);

  const sel = edges.find((e) => edgeId(e) === selected);
  // The SPIFFE IDs the two ends' proxies hold (admin /identity), for the selected edge.
  const proxies = useFetch<{ items: { workload: string; namespace: string; kind: string; identity: { spiffeId: string | null } | null }[] }>(sel ? '/api/v1/dashboard/proxies' : null, [selected]);
  const identityOf = (end: { workload: string; namespace: string }): string =>
    proxies.data?.items.find((x) => x.workload === end.workload && x.namespace === end.namespace && x.identity?.spiffeId)?.identity?.spiffeId ?? (proxies.data ? 'no workload identity' : '…');
  const columns: Column<EdgeRow>[] = [
    { key: 'from', label: 'From', sort: (e) => e.source.workload, render: (e) => e.source.workload },
    { key: 'to', label: 'To', sort: (e) => e.destination.workload, render: (e) => {
      const svc = serviceFor(`${e.destination.namespace}/${e.destination.workload}`);
      return svc ? h('a', { href: `#/service/${e.destination.namespace}/${svc}` }, e.destination.workload) : e.destination.workload;
    } },
    { key: 'rps', label: 'RPS', numeric: true, sort: (e) => e.rps, render: (e) => rps(e.rps) },
    { key: 'sr', label: 'Success', numeric: true, sort: (e) => e.successRate, render: (e) => h('span', { class: `tone-${healthOf(e.successRate)}` }, pct(e.successRate)) },
    { key: 'p99', label: 'p99', numeric: true, sort: (e) => e.latencyMs.p99, render: (e) => ms(e.latencyMs.p99) },
    { key: 'mtls', label: 'mTLS', numeric: true, sort: (e) => e.mtlsShare, render: (e) => pct(e.mtlsShare, 0) },
    { key: 'more', label: '', render: (e) => h('button', { type: 'button', class: 'link', onClick: () => setSelected(edgeId(e)) }, 'details') },
  ];
  return h(Page, { title: 'Topology', actions: h(Live, { connected: m.connected, what: 'edges (1 m window)' }) },
    h('div', { class: 'topology' },
      h('div', { ref: box, class: 'graph', role: 'img', 'aria-label': `Service graph: ${edges.length} edges; the table below lists them` }),
      sel
        ? h('aside', { class: 'panel', 'aria-label': 'Selected edge' },
          h('h2', null, `${sel.source.workload} → ${sel.destination.workload}`),
          h('dl', null,
            h('dt', null, 'Requests/s'), h('dd', null, rps(sel.rps)),
            h('dt', null, 'Success'), h('dd', null, pct(sel.successRate)),
            h('dt', null, 'Latency p50 / p95 / p99'), h('dd', null, `${ms(sel.latencyMs.p50)} / ${ms(sel.latencyMs.p95)} / ${ms(sel.latencyMs.p99)}`),
            h('dt', null, 'mTLS'), h('dd', null, pct(sel.mtlsShare, 0)),
            h('dt', null, 'Source identity'), h('dd', { class: 'identity-source' }, h('code', null, identityOf(sel.source))),
            h('dt', null, 'Destination identity'), h('dd', { class: 'identity-destination' }, h('code', null, identityOf(sel.destination)))),
          (() => {
            const svc = serviceFor(`${sel.destination.namespace}/${sel.destination.workload}`);
            return svc ? h('a', { href: `#/service/${sel.destination.namespace}/${svc}` }, `Open service ${svc}`) : null;
          })(),
          h('button', { type: 'button', onClick: () => setSelected(null) }, 'Close'))
        : null),
    h('p', { class: 'legend' }, 'Edge labels: requests/s, success rate, p99. Colour: success rate (green ≥ 99.5%, amber ≥ 99%, red below). Solid line: mutual TLS; dashed: plaintext. Dashed box: unmeshed caller.'),
    h('h2', null, 'Edges'),
    h(SortTable<EdgeRow>, { label: 'Edges between workloads', columns, rows: edges, rowKey: edgeId, initial: { key: 'rps', desc: true }, empty: 'No traffic in the last minute.' }));
}
