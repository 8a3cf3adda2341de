// One service: golden metrics and charts (over a chosen time range: 1, 5 or
// 15 minutes, the windows the metrics API computes), per-version and
// per-caller breakdowns, per-route metrics, the traffic
// split of its HTTPRoutes (canary progress, live from the resource watch),
// its endpoints (registry + what each proxy's balancer sees: health, outlier
// ejection, locality) and the policies that target it or its routes.
import { h } from '../h.ts';
import { type VNode } from 'preact';
import { useMetrics } from '../metrics-store.ts';
import { useEffect, useState } from 'preact/hooks';
import { api, useFetch, useWatchedKind, type EdgeRow, type HistoryPoint, type KindInfo, type Resource, type StatRow } from '../api.ts';
import { Badge, Live, Page, SortTable, TimeChart, type Column } from '../components.ts';
import { healthOf, ms, pct, rps, sloOf } from '../format.ts';

interface RegistryWorkload { name: string; namespace: string; address: string; labels: Record<string, string>; locality: { region: string; zone: string }; ports: { port: number; name?: string; proxyPort?: number }[] }
interface EndpointView { key: string; address: string; port: number; weight: number; locality: { region?: string; zone?: string } | null; health: string; ejected: boolean; eligible: boolean; active: number; ewmaMs: number; successes: number; failures: number }
interface ProxyClusters { proxy: string; workload: string; error?: string; clusters: { name: string; endpoints: EndpointView[] }[] }

interface WorkloadSecurity { workload: string; identity: string | null; ports: { port: number; mode: string; policy: string | null }[]; authorization: { policy: string; action: string }[]; authentication: string[] }

interface BackendRef { name: string; namespace?: string; port?: number; weight?: number }
interface Rule { name?: string; matches?: unknown[]; backendRefs?: BackendRef[] }

const isServiceParent = (p: { group?: string; kind?: string; name: string }, svc: string): boolean =>
  (p.kind ?? 'Gateway') === 'Service' && (p.group === undefined || p.group === '' || p.group === 'trellis.dev') && p.name === svc;

export function routesOf(routes: readonly Resource[], ns: string, svc: string): Resource[] {
  return routes.filter((r) => (r.metadata.namespace ?? 'default') === ns && ((r.spec?.['parentRefs'] ?? []) as { group?: string; kind?: string; name: string }[]).some((p) => isServiceParent(p, svc)));
}

function matchText(m: unknown): string {
  const o = (m ?? {}) as { path?: { type?: string; value?: string }; headers?: { name: string; value: string }[]; method?: string };
  const parts: string[] = [];
  if (o.path) parts.push(`path ${o.path.type === 'Exact' ? '=' : '^'} ${o.path.value}`);
  for (const hd of o.headers ?? []) parts.push(`${hd.name}: ${hd.value}`);
  if (o.method) parts.push(o.method);
  return parts.join(', ') || 'all';
}

const CODE_COLORS: Record<string, string> = { '2xx': '#2e9d5b', '3xx': '#3b82f6', '4xx': '#d49b00', '5xx': '#ef4444', 'grpc 0': '#2e9d5b' };
const SPLIT_COLORS = ['#3b82f6', '#f59e0b', '#10b981', '#8b5cf6', '#ef4444', '#14b8a6'];

function Split(p: { route: Resource }): VNode {
  const rules = (p.route.spec?.['rules'] ?? []) as Rule[];
  return h('div', { class: 'route-split' },
    h('h3', null, `HTTPRoute ${p.route.metadata.name}`, ' ', h('a', { href: `#/config/HTTPRoute/${p.route.metadata.namespace ?? 'default'}/${p.route.metadata.name}`, class: 'small' }, 'edit')),
    rules.map((rule, i) => {
      const backends = rule.backendRefs ?? [];
      const total = backends.reduce((n, b) => n + (b.weight ?? 1), 0);
      return h('div', { class: 'rule', key: i },
        h('div', { class: 'rule-head' }, `rule ${rule.name ?? i}: `, (rule.matches ?? []).length === 0 ? 'all requests' : (rule.matches ?? []).map(matchText).join(' or ')),
        h('div', { class: 'split', role: 'img', 'aria-label': backends.map((b) => `${b.name} ${total > 0 ? Math.round(((b.weight ?? 1) / total) * 100) : 0}%`).join(', ') },
          backends.map((b, j) => {
            const share = total > 0 ? (b.weight ?? 1) / total : 0;
            return share > 0 ? h('span', { key: b.name, class: 'seg', style: { width: `${share * 100}%`, background: SPLIT_COLORS[j % SPLIT_COLORS.length] } }, share >= 0.08 ? `${Math.round(share * 100)}%` : '') : null;
          })),
        h('ul', { class: 'split-legend' }, backends.map((b, j) => h('li', { key: b.name, 'data-backend': b.name },
          h('span', { class: 'swatch', style: { background: SPLIT_COLORS[j % SPLIT_COLORS.length] } }),
          h('a', { href: `#/service/${b.namespace ?? p.route.metadata.namespace ?? 'default'}/${b.name}` }, b.name),
          ` weight ${b.weight ?? 1} (${total > 0 ? Math.round(((b.weight ?? 1) / total) * 100) : 0}%)`))));
    }));
}

export const RANGES = { '1m': 60_000, '5m': 300_000, '15m': 900_000 } as const;
export type Range = keyof typeof RANGES;
const RANGE_TEXT: Record<Range, string> = { '1m': 'last minute', '5m': 'last 5 minutes', '15m': 'last 15 minutes' };

/** Rows summed into one: rates add up, the success rate is weighted by
 * requests, p99 is the worst member's (quantiles do not add). */
export interface Breakdown { key: string; parts: string[]; requests: number; rps: number; successRate: number | null; p99: number | null }
export function breakdown<T>(rows: readonly T[], keyOf: (r: T) => string | undefined, partOf: (r: T) => string, stat: (r: T) => { requests: number; rps: number; successRate: number | null; latencyMs: { p99: number | null } }): Breakdown[] {
  const out = new Map<string, Breakdown & { ok: number; judged: number }>();
  for (const r of rows) {
    const key = keyOf(r);
    if (key === undefined) continue;
    const s = stat(r);
    const b = out.get(key) ?? { key, parts: [], requests: 0, rps: 0, successRate: null, p99: null, ok: 0, judged: 0 };
    b.parts.push(partOf(r));
    b.requests += s.requests;
    b.rps += s.rps;
    if (s.successRate !== null) {
      b.ok += s.successRate * s.requests;
      b.judged += s.requests;
    }
    if (s.latencyMs.p99 !== null) b.p99 = Math.max(b.p99 ?? 0, s.latencyMs.p99);
    out.set(key, b);
  }
  return [...out.values()].map(({ ok, judged, ...b }) => ({ ...b, successRate: judged > 0 ? ok / judged : null }));
}

function targetsOf(r: Resource): { kind?: string; name: string }[] {
  const s = r.spec ?? {};
  const one = s['targetRef'] as { kind?: string; name: string } | undefined;
  const many = (s['targetRefs'] ?? []) as { kind?: string; name: string }[];
  return [...(one ? [one] : []), ...many];
}

export function ServicePage(p: { namespace: string; name: string }): VNode {
  const { namespace: ns, name } = p;
  const m = useMetrics();
  const services = useWatchedKind('Service');
  const httpRoutes = useWatchedKind('HTTPRoute');
  const svc = services.items.find((s) => s.metadata.name === name && (s.metadata.namespace ?? 'default') === ns);
  const slo = sloOf(svc?.metadata.annotations);
  const stat = m.latest?.services.find((s) => s.name === name && s.namespace === ns);
  const [range, setRange] = useState<Range>('1m');
  const fullHist = m.history.get(`${ns}/${name}`) ?? [];
  const newest = fullHist.at(-1)?.at ?? 0;
  const hist = fullHist.filter((x) => x.at >= newest - RANGES[range]);
  // Response classes per scrape round come from the server's history only.
  const served = useFetch<{ items: Record<string, HistoryPoint[]> }>(`/api/v1/dashboard/history?service=${encodeURIComponent(`${ns}/${name}`)}`, [m.tick]);
  const codePoints = (served.data?.items[`${ns}/${name}`] ?? []).filter((x) => x.codes && x.at >= newest - RANGES[range]);
  const codeClasses = [...new Set(codePoints.flatMap((x) => Object.keys(x.codes ?? {})))].sort();
  const codeSeries = codeClasses.map((c, i) => ({ label: c, color: CODE_COLORS[c] ?? SPLIT_COLORS[i % SPLIT_COLORS.length]!, points: codePoints.map((x): [number, number | null] => [x.at, x.codes?.[c] ?? 0]) }));
  // Per-route rows come from the callers' side: the routes callers addressed
  // this service by (its HTTPRoutes, whichever backend served) and those that
  // sent to it as a backend, one row per (route, backend).
  const routeStats = useFetch<{ items: StatRow[] }>(`/api/v1/metrics/routes?window=${range}&service=${encodeURIComponent(name)}&namespace=${encodeURIComponent(ns)}`, [m.tick]);
  const workloadStats = useFetch<{ items: StatRow[] }>(`/api/v1/metrics/workloads?window=${range}&namespace=${encodeURIComponent(ns)}`, [m.tick]);
  const edgeStats = useFetch<{ items: EdgeRow[] }>(`/api/v1/metrics/edges?window=${range}&namespace=${encodeURIComponent(ns)}`, [m.tick]);
  const callerStats = useFetch<{ items: StatRow[] }>(`/api/v1/metrics/callers?window=${range}&service=${encodeURIComponent(name)}&namespace=${encodeURIComponent(ns)}`, [m.tick]);
  const registry = useFetch<{ items: RegistryWorkload[] }>('/api/v1/registry/workloads', [Math.floor(m.tick / 3)]);
  const routes = routesOf(httpRoutes.items, ns, name);
  const routeRows = routeStats.data?.items ?? [];
  const backendNames = [...new Set([name, ...routes.flatMap((r) => ((r.spec?.['rules'] ?? []) as Rule[]).flatMap((x) => (x.backendRefs ?? []).map((b) => b.name)))])];
  const endpoints = useFetch<{ items: ProxyClusters[] }>(`/api/v1/dashboard/endpoints?service=${encodeURIComponent(name)}&namespace=${encodeURIComponent(ns)}`, [Math.floor(m.tick / 3)]);
  const kinds = useFetch<{ kinds: KindInfo[] }>('/api/v1/kinds');
  const security = useFetch<{ items: WorkloadSecurity[] }>(`/api/v1/dashboard/security?service=${encodeURIComponent(name)}&namespace=${encodeURIComponent(ns)}`, [Math.floor(m.tick / 3)]);
  const policyKinds = (kinds.data?.kinds ?? []).filter((k) => !['HTTPRoute', 'GRPCRoute', 'TCPRoute', 'Gateway', 'Service', 'Workload'].includes(k.kind));

  const selector = (svc?.spec?.['selector'] ?? {}) as Record<string, string>;
  const members = (registry.data?.items ?? []).filter((w) => w.namespace === ns && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => w.labels[k] === v));
  const views = (endpoints.data?.items ?? []).flatMap((pc) => pc.clusters.flatMap((c) => c.endpoints.map((e) => ({ proxy: pc.workload, cluster: c.name, e }))));
  const endpointRows = members.map((w) => {
    const seen = views.filter((v) => v.e.address === w.address && w.ports.some((pt) => (pt.proxyPort ?? pt.port) === v.e.port));
    const ejectedBy = [...new Set(seen.filter((v) => v.e.ejected).map((v) => v.proxy))];
    const unhealthy = seen.filter((v) => v.e.health !== 'healthy' && v.e.health !== 'unknown');
    return { w, seen, ejectedBy, unhealthy };
  });
  type EpRow = (typeof endpointRows)[number];
  const memberNames = new Map(members.map((w) => [w.name, w] as const));
  const byVersion = breakdown(workloadStats.data?.items ?? [], (r) => (memberNames.has(r.name) ? memberNames.get(r.name)!.labels['version'] ?? r.name : undefined), (r) => r.name, (r) => r);
  // Callers: the figures of each calling workload over all of the service's
  // workloads together (exact quantiles, /api/v1/metrics/callers); the edges
  // say which of the workloads each one called.
  const calledBy = new Map<string, Set<string>>();
  for (const e of edgeStats.data?.items ?? []) {
    if (!memberNames.has(e.destination.workload)) continue;
    const key = `${e.source.namespace}/${e.source.workload}`;
    calledBy.set(key, (calledBy.get(key) ?? new Set()).add(e.destination.workload));
  }
  const byCaller: Breakdown[] = (callerStats.data?.items ?? []).map((r) => {
    const key = `${r.namespace}/${r.name}`;
    return { key, parts: [...(calledBy.get(key) ?? [])], requests: r.requests, rps: r.rps, successRate: r.successRate, p99: r.latencyMs.p99 };
  });
  const breakdownColumns = (what: string): Column<Breakdown>[] => [
    { key: 'key', label: what, sort: (r) => r.key, render: (r) => r.key },
    { key: 'parts', label: what === 'Version' ? 'Workloads' : 'Calls to', render: (r) => [...new Set(r.parts)].sort().join(', ') },
    { key: 'sr', label: 'Success', numeric: true, sort: (r) => r.successRate, render: (r) => h('span', { class: `tone-${healthOf(r.successRate, slo)}` }, pct(r.successRate)) },
    { key: 'rps', label: 'RPS', numeric: true, sort: (r) => r.rps, render: (r) => rps(r.rps) },
    // Callers' p99 is exact; a version's rows are summed from its workloads
    // and quantiles do not add, so it shows the highest, and says so.
    what === 'Caller'
      ? { key: 'p99', label: 'p99', numeric: true, sort: (r) => r.p99, render: (r) => ms(r.p99) }
      : { key: 'p99', label: 'Highest p99', numeric: true, sort: (r) => r.p99, render: (r) => h('span', { title: new Set(r.parts).size > 1 ? `the highest p99 among ${[...new Set(r.parts)].sort().join(', ')}, not the p99 of their requests together` : 'p99 of this workload' }, ms(r.p99)) },
  ];
  const epColumns: Column<EpRow>[] = [
    { key: 'name', label: 'Workload', sort: (r) => r.w.name, render: (r) => r.w.name },
    { key: 'version', label: 'Version', sort: (r) => r.w.labels['version'] ?? '', render: (r) => r.w.labels['version'] ?? '–' },
    { key: 'addr', label: 'Address', render: (r) => r.w.ports.map((pt) => `${r.w.address}:${pt.proxyPort ?? pt.port}`).join(', ') },
    { key: 'loc', label: 'Locality', sort: (r) => `${r.w.locality.region}/${r.w.locality.zone}`, render: (r) => (r.w.locality.region || r.w.locality.zone ? `${r.w.locality.region}/${r.w.locality.zone}` : '–') },
    { key: 'health', label: 'Health', sort: (r) => r.unhealthy.length + r.ejectedBy.length, render: (r) => r.ejectedBy.length > 0
      ? h(Badge, { tone: 'bad', title: `ejected by ${r.ejectedBy.join(', ')}` }, `ejected (${r.ejectedBy.length} proxies)`)
      : r.unhealthy.length > 0 ? h(Badge, { tone: 'warn' }, r.unhealthy[0]!.e.health) : h(Badge, { tone: 'good' }, r.seen.length > 0 ? 'healthy' : 'registered') },
    { key: 'callers', label: 'Seen by', numeric: true, sort: (r) => r.seen.length, render: (r) => String(new Set(r.seen.map((v) => v.proxy)).size) },
    { key: 'ewma', label: 'EWMA', numeric: true, sort: (r) => (r.seen.length ? Math.max(...r.seen.map((v) => v.e.ewmaMs)) : null), render: (r) => (r.seen.length ? ms(Math.max(...r.seen.map((v) => v.e.ewmaMs))) : '–') },
  ];

  const configLink = (kind: string, ref: string): VNode => h('a', { href: `#/config/${kind}/${ref}` }, ref);
  const MODE_TONE: Record<string, 'good' | 'warn' | 'bad'> = { STRICT: 'good', PERMISSIVE: 'warn', DISABLE: 'bad', OFF: 'bad' };
  const secColumns: Column<WorkloadSecurity>[] = [
    { key: 'workload', label: 'Workload', sort: (r) => r.workload, render: (r) => r.workload },
    { key: 'identity', label: 'Identity', sort: (r) => r.identity ?? '', render: (r) => (r.identity ? h('code', null, r.identity) : h('span', { class: 'muted' }, 'mTLS off')) },
    { key: 'mtls', label: 'mTLS mode', render: (r) => r.ports.map((pt) => h('div', { key: pt.port, 'data-port': pt.port },
      h(Badge, { tone: MODE_TONE[pt.mode] ?? 'info' }, pt.mode), ` port ${pt.port} `,
      pt.policy ? h('small', null, 'by MeshTLS ', configLink('MeshTLS', pt.policy)) : h('small', { class: 'muted' }, '(mesh default)'))) },
    { key: 'authz', label: 'Authorization', render: (r) => (r.authorization.length === 0
      ? h('span', { class: 'muted' }, 'no AuthorizationPolicy: all allowed')
      : r.authorization.map((a) => h('div', { key: a.policy }, h(Badge, { tone: a.action === 'DENY' ? 'bad' : 'info' }, a.action), ' ', configLink('AuthorizationPolicy', a.policy)))) },
    { key: 'authn', label: 'Request authentication', render: (r) => (r.authentication.length === 0 ? '–' : r.authentication.map((a) => h('div', { key: a }, configLink('RequestAuthentication', a)))) },
  ];

  const routeColumns: Column<StatRow>[] = [
    { key: 'name', label: 'Route', sort: (r) => r.name, render: (r) => r.name },
    { key: 'parent', label: 'Parent', sort: (r) => r.parent ?? '', render: (r) => (r.parent ?? '').split('.')[0] },
    { key: 'backend', label: 'Backend', sort: (r) => r.service ?? '', render: (r) => (r.service ?? '').split('.')[0] },
    { key: 'sr', label: 'Success', numeric: true, sort: (r) => r.successRate, render: (r) => h('span', { class: `tone-${healthOf(r.successRate, slo)}` }, pct(r.successRate)) },
    { key: 'rps', label: 'RPS', numeric: true, sort: (r) => r.rps, render: (r) => rps(r.rps) },
    { key: 'p50', label: 'p50', numeric: true, sort: (r) => r.latencyMs.p50, render: (r) => ms(r.latencyMs.p50) },
    { key: 'p95', label: 'p95', numeric: true, sort: (r) => r.latencyMs.p95, render: (r) => ms(r.latencyMs.p95) },
    { key: 'p99', label: 'p99', numeric: true, sort: (r) => r.latencyMs.p99, render: (r) => ms(r.latencyMs.p99) },
    { key: 'tap', label: '', render: (r) => h('a', { href: `#/tap?service=${encodeURIComponent(name)}&route=${encodeURIComponent(r.name)}` }, 'tap') },
  ];
  const health = healthOf(stat?.successRate, slo);
  return h(Page, {
    title: `Service ${ns === 'default' ? name : `${ns}/${name}`}`,
    actions: [
      h('label', { class: 'range' }, 'Time range ', h('select', { value: range, onChange: (e: Event) => setRange((e.target as HTMLSelectElement).value as Range) },
        Object.keys(RANGES).map((r) => h('option', { key: r, value: r }, r)))),
      h('a', { class: 'button', href: `#/tap?service=${encodeURIComponent(name)}` }, 'Tap'), h(Live, { connected: m.connected, what: 'metrics' })],
  },
    h('div', { class: 'tiles' },
      h('div', { class: `tile ${health}` }, h('span', null, 'Success'), h('strong', null, pct(stat?.successRate)), h('small', null, `objective ${pct(slo, 1)}`)),
      h('div', { class: 'tile' }, h('span', null, 'Requests/s'), h('strong', null, rps(stat?.rps ?? 0))),
      h('div', { class: 'tile' }, h('span', null, 'p50 / p95 / p99'), h('strong', null, `${ms(stat?.latencyMs.p50)} / ${ms(stat?.latencyMs.p95)} / ${ms(stat?.latencyMs.p99)}`)),
      h('div', { class: 'tile' }, h('span', null, 'Meshed instances'), h('strong', null, String(stat?.meshed ?? members.length))),
      h('div', { class: 'tile' }, h('span', null, 'mTLS'), h('strong', null, pct(stat?.mtlsShare, 0)))),
    h('div', { class: 'charts' },
      h(TimeChart, { title: `Requests per second (1 m window, ${RANGE_TEXT[range]})`, points: hist.map((x) => [x.at, x.rps]), format: rps, floor: 0 }),
      h(TimeChart, { title: 'Success rate', points: hist.map((x) => [x.at, x.successRate]), format: (v) => pct(v, 1), ceiling: 1, color: '#2e9d5b' }),
      h(TimeChart, { title: 'Latency p50 / p95 / p99', label: 'p99', points: hist.map((x) => [x.at, x.p99]), format: ms, floor: 0, color: '#d49b00',
        more: [{ label: 'p95', color: '#8b5cf6', points: hist.map((x): [number, number | null] => [x.at, x.p95 ?? null]) }, { label: 'p50', color: '#3b82f6', points: hist.map((x): [number, number | null] => [x.at, x.p50 ?? null]) }] }),
      h(TimeChart, { title: 'Responses per second by class', label: codeSeries[0]?.label ?? 'responses', color: codeSeries[0]?.color ?? '#2e9d5b', points: codeSeries[0]?.points ?? [], more: codeSeries.slice(1), format: rps, floor: 0 })),
    h('h2', null, `By version (${RANGE_TEXT[range]})`),
    h(SortTable<Breakdown>, { label: `Versions of ${name}`, columns: breakdownColumns('Version'), rows: byVersion, rowKey: (r) => r.key, initial: { key: 'key', desc: false }, empty: `No traffic to ${name}'s workloads in the ${RANGE_TEXT[range]}.` }),
    h('h2', null, `By caller (${RANGE_TEXT[range]})`),
    h(SortTable<Breakdown>, { label: `Callers of ${name}`, columns: breakdownColumns('Caller'), rows: byCaller, rowKey: (r) => r.key, initial: { key: 'rps', desc: true }, empty: `No meshed caller reached ${name} in the ${RANGE_TEXT[range]}.` }),
    h('h2', null, 'Traffic split'),
    routes.length === 0 ? h('p', { class: 'muted' }, `No HTTPRoute has ${name} as its parent: callers reach every endpoint of the Service.`) : routes.map((r) => h(Split, { route: r, key: r.metadata.name })),
    h('h2', null, 'Routes (as the callers see them)'),
    h(SortTable<StatRow>, { label: `Routes of ${name}`, columns: routeColumns, rows: routeRows, rowKey: (r) => `${r.parent ?? ''}/${r.service}/${r.name}`, initial: { key: 'rps', desc: true }, empty: `No routed traffic in the ${RANGE_TEXT[range]}.` }),
    h('h2', null, 'Endpoints'),
    h(SortTable<EpRow>, { label: `Endpoints of ${name}`, columns: epColumns, rows: endpointRows, rowKey: (r) => r.w.name, empty: 'No registered workload matches the selector.' }),
    backendNames.length > 1 ? h('p', { class: 'muted' }, 'Backends: ', backendNames.filter((b) => b !== name).map((b, i) => [i > 0 ? ', ' : '', h('a', { href: `#/service/${ns}/${b}` }, b)])) : null,
    h('h2', null, 'Security in force'),
    security.error ? h('p', { class: 'alert', role: 'alert' }, security.error.message) : null,
    h(SortTable<WorkloadSecurity>, { label: `Security of ${name}`, columns: secColumns, rows: security.data?.items ?? [], rowKey: (r) => r.workload, empty: 'No workload is selected by this service.' }),
    h('h2', null, 'Policies'),
    h(Policies, { ns, name, routes: routes.map((r) => r.metadata.name), kinds: policyKinds, tick: Math.floor(m.tick / 3) }));
}

function Policies(p: { ns: string; name: string; routes: string[]; kinds: KindInfo[]; tick: number }): VNode {
  const [lists, setLists] = useState<{ kind: string; items: Resource[] }[]>([]);
  const kindNames = p.kinds.map((k) => k.kind).join(',');
  useEffect(() => {
    let live = true;
    void Promise.all(p.kinds.map(async (k) => {
      const r = await api<{ items: Resource[] }>(`/api/v1/resources/${k.plural}?namespace=${encodeURIComponent(p.ns)}`);
      return { kind: k.kind, items: r.ok ? r.value.items : [] };
    })).then((v) => live && setLists(v));
    return () => {
      live = false;
    };
  }, [kindNames, p.ns, p.tick]);
  const applying: { kind: string; res: Resource; why: string }[] = [];
  for (const { kind, items } of lists) {
    const k = { kind };
    for (const r of items) {
      if ((r.metadata.namespace ?? 'default') !== p.ns) continue;
      const t = targetsOf(r);
      const hit = t.find((x) => ((x.kind ?? 'Service') === 'Service' && x.name === p.name) || ((x.kind === 'HTTPRoute' || x.kind === 'GRPCRoute') && p.routes.includes(x.name)));
      if (hit) applying.push({ kind: k.kind, res: r, why: `targets ${hit.kind ?? 'Service'}/${hit.name}` });
      else if (t.length === 0 && k.kind === 'MeshTLS') {
        const sel = Object.entries((r.spec?.['selector'] ?? {}) as Record<string, string>);
        applying.push({ kind: k.kind, res: r, why: sel.length === 0 ? 'namespace-wide' : `workloads with ${sel.map(([a, b]) => `${a}=${b}`).join(', ')}` });
      }
    }
  }
  if (applying.length === 0) return h('p', { class: 'muted' }, 'No policy targets this service or its routes: mesh defaults apply.');
  return h('ul', { class: 'policies' }, applying.map((a) => h('li', { key: `${a.kind}/${a.res.metadata.name}` },
    h('a', { href: `#/config/${a.kind}/${a.res.metadata.namespace ?? 'default'}/${a.res.metadata.name}` }, `${a.kind} ${a.res.metadata.name}`), ` — ${a.why}`)));
}
