// Golden metrics (success rate, request rate, latency percentiles, mTLS share)
// per service, route, workload and edge, and the topology graph, computed
// from one primitive every backend implements: `GroupQuery.groups()`, the
// counter increases of the standard request metrics over a window, summed by
// a set of labels. The embedded aggregator (embedded-source.ts) and the
// Prometheus-backed one (prometheus-source.ts) both implement GroupQuery, so
// everything here is shared and the two agree by construction.
//
// Which proxy's view answers what (docs/telemetry.md):
//   services, workloads, edges  the server side (direction="inbound"): it sees
//                               unmeshed callers too and knows whether mTLS was used
//   routes                      the client side (direction="outbound", and
//                               "gateway" for ingress gateways): routes are the
//                               caller's HTTPRoute rules

import { nsOf, type MeshState } from '../translate/model.ts';
import { selects } from '../translate/services.ts';

export const WINDOWS = { '1m': 60_000, '5m': 300_000, '15m': 900_000 } as const;
export type Window = keyof typeof WINDOWS;

export function parseWindow(v: string | null | undefined): { ok: true; window: Window } | { ok: false; error: string } {
  const w = v ?? '1m';
  if (w in WINDOWS) return { ok: true, window: w as Window };
  return { ok: false, error: `window: must be one of ${Object.keys(WINDOWS).join(', ')} (got "${w}")` };
}

/** gRPC statuses that count as failures (server-side errors), as Linkerd/Istio dashboards do. */
export const GRPC_FAILURE_CODES: readonly string[] = ['2', '4', '12', '13', '14', '15'];

export function isFailure(responseCode: string, grpcStatus: string): boolean {
  return responseCode.startsWith('5') || GRPC_FAILURE_CODES.includes(grpcStatus);
}

export interface GroupSpec {
  readonly direction: 'inbound' | 'outbound' | 'gateway';
  /** Labels to group by. */
  readonly by: readonly string[];
  /** Exact label matches; a list matches any of its values. */
  readonly match?: Readonly<Record<string, string | readonly string[]>>;
}

/** A Service and the workloads its selector picks (the control plane's
 * registry and resources): its figures are what those workloads served. */
export interface ServiceMembers {
  readonly name: string;
  readonly namespace: string;
  readonly workloads: readonly string[];
}

export interface Latency {
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
}

export interface GroupStats {
  readonly labels: Readonly<Record<string, string>>;
  /** Requests completed in the window. */
  readonly requests: number;
  readonly successes: number;
  readonly mtls: number;
  /** Milliseconds. */
  readonly latencyMs: Latency;
  /** Distinct proxies that reported into this group. */
  readonly proxies: number;
  /** Opaque TCP connections opened in the window. */
  readonly tcpConnections: number;
  /** Milliseconds of history the counts cover: the window, or less while
   * the source has been watching for less than the window (a control plane
   * that just started). Rates divide by this, never by time nobody saw. */
  readonly coveredMs: number;
}

export interface GroupQuery {
  groups(spec: GroupSpec, window: Window): Promise<GroupStats[]>;
}

export interface StatRow {
  readonly kind: 'service' | 'workload' | 'route' | 'caller';
  readonly name: string;
  readonly namespace: string;
  /** Service host for services; for routes the backend service the route sent to. */
  readonly service?: string;
  /** Routes: the service the callers addressed (the route's parent), which
   * an HTTPRoute may split over other backends. */
  readonly parent?: string;
  readonly requests: number;
  readonly rps: number;
  readonly successRate: number | null;
  readonly latencyMs: Latency;
  readonly mtlsShare: number | null;
  readonly meshed: number;
  readonly tcpConnections: number;
}

export interface EdgeRow {
  readonly source: { readonly workload: string; readonly namespace: string };
  readonly destination: { readonly workload: string; readonly namespace: string };
  readonly requests: number;
  readonly rps: number;
  readonly successRate: number | null;
  readonly latencyMs: Latency;
  readonly mtlsShare: number | null;
}

export interface TopologyNode {
  readonly id: string;
  readonly workload: string;
  readonly namespace: string;
  readonly rps: number;
  readonly successRate: number | null;
  readonly meshed: boolean;
}

export interface Topology {
  readonly window: Window;
  readonly nodes: readonly TopologyNode[];
  readonly edges: readonly EdgeRow[];
}

export interface GoldenMetrics {
  services(q: { window: Window; namespace?: string | undefined }): Promise<StatRow[]>;
  workloads(q: { window: Window; namespace?: string | undefined }): Promise<StatRow[]>;
  routes(q: { window: Window; service?: string | undefined; namespace?: string | undefined }): Promise<StatRow[]>;
  edges(q: { window: Window; namespace?: string | undefined }): Promise<EdgeRow[]>;
  /** Who calls `service` (its workloads' inbound side), one row per calling
   * workload, over all of the service's workloads together: quantiles from
   * the merged histograms, not a combination of per-workload ones. */
  callers(q: { window: Window; service: string; namespace?: string | undefined }): Promise<StatRow[]>;
  topology(q: { window: Window; namespace?: string | undefined }): Promise<Topology>;
}

/** Prometheus' histogram_quantile over cumulative buckets [le, count] sorted by le. */
export function histogramQuantile(q: number, buckets: readonly (readonly [number, number])[]): number | null {
  if (buckets.length < 2) return null;
  const last = buckets[buckets.length - 1]!;
  if (last[0] !== Infinity) return null;
  const total = last[1];
  if (!(total > 0)) return null;
  const rank = q * total;
  let i = 0;
  while (i < buckets.length - 1 && buckets[i]![1] < rank) i++;
  if (i === buckets.length - 1) return buckets[buckets.length - 2]![0];
  const [end, count] = buckets[i]!;
  const [start, below] = i === 0 ? [0, 0] : buckets[i - 1]!;
  if (i === 0 && end <= 0) return end;
  const inBucket = count - below;
  if (inBucket <= 0) return end;
  return start + (end - start) * ((rank - below) / inBucket);
}

/** Short name of a service host: `reviews.shop.svc.cluster.local` -> `reviews`. */
export function shortService(host: string): string {
  const m = /^([^.]+)\.[^.]+\.svc(\.cluster\.local)?$/.exec(host);
  return m ? m[1]! : host;
}

/** `reviews` + namespace -> `reviews.<ns>.svc.cluster.local`; hosts pass through. */
export function serviceHostFor(name: string, namespace: string): string {
  return name.includes('.') ? name : `${name}.${namespace}.svc.cluster.local`;
}

/** Requests per second over the time the counts cover (GroupStats.coveredMs;
 * the window when a source cannot say). */
function rate(g: GroupStats, windowMs: number): number {
  return g.requests / ((g.coveredMs > 0 ? g.coveredMs : windowMs) / 1000);
}
function ratio(n: number, d: number): number | null {
  return d > 0 ? n / d : null;
}

/** Every Service of `state` with the workloads it selects. */
export function serviceMembers(state: Pick<MeshState, 'services' | 'workloads'>): ServiceMembers[] {
  return state.services.map((svc) => ({
    name: svc.metadata.name,
    namespace: nsOf(svc.metadata),
    workloads: state.workloads.filter((w) => selects(svc, w)).map((w) => w.name),
  }));
}

/** `members`: the Services and the workloads they select. A Service the
 * inbound side does not name (a version subset, reviews-v1, whose workloads'
 * sidecars serve reviews) gets the figures of its workloads. */
export function createGoldenMetrics(src: GroupQuery, opts: { members?: () => readonly ServiceMembers[] } = {}): GoldenMetrics {
  const ns = (namespace: string | undefined, label: string): Record<string, string> => (namespace ? { [label]: namespace } : {});
  const row = (kind: StatRow['kind'], name: string, namespace: string, g: GroupStats, w: Window, service?: string): StatRow => ({
    kind,
    name,
    namespace,
    ...(service !== undefined ? { service } : {}),
    requests: g.requests,
    rps: rate(g, WINDOWS[w]),
    successRate: ratio(g.successes, g.requests),
    latencyMs: g.latencyMs,
    mtlsShare: ratio(g.mtls, g.requests),
    meshed: g.proxies,
    tcpConnections: g.tcpConnections,
  });
  const byName = (a: { namespace: string; name: string }, b: { namespace: string; name: string }): number => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name);

  const edges: GoldenMetrics['edges'] = async ({ window, namespace }) => {
    const gs = await src.groups({ direction: 'inbound', by: ['source_workload', 'source_namespace', 'destination_workload', 'destination_namespace'], match: ns(namespace, 'destination_namespace') }, window);
    return gs
      .map((g) => ({
        source: { workload: g.labels['source_workload'] ?? 'unknown', namespace: g.labels['source_namespace'] ?? 'unknown' },
        destination: { workload: g.labels['destination_workload'] ?? 'unknown', namespace: g.labels['destination_namespace'] ?? 'unknown' },
        requests: g.requests,
        rps: rate(g, WINDOWS[window]),
        successRate: ratio(g.successes, g.requests),
        latencyMs: g.latencyMs,
        mtlsShare: ratio(g.mtls, g.requests),
      }))
      .sort((a, b) => `${a.source.namespace}/${a.source.workload}>${a.destination.namespace}/${a.destination.workload}`.localeCompare(`${b.source.namespace}/${b.source.workload}>${b.destination.namespace}/${b.destination.workload}`));
  };

  const workloads: GoldenMetrics['workloads'] = async ({ window, namespace }) => {
    const gs = await src.groups({ direction: 'inbound', by: ['destination_workload', 'destination_namespace'], match: ns(namespace, 'destination_namespace') }, window);
    return gs.map((g) => row('workload', g.labels['destination_workload'] ?? 'unknown', g.labels['destination_namespace'] ?? 'unknown', g, window)).sort(byName);
  };

  return {
    async services({ window, namespace }) {
      const gs = await src.groups({ direction: 'inbound', by: ['destination_service', 'destination_namespace'], match: ns(namespace, 'destination_namespace') }, window);
      const rows = gs.map((g) => {
        const host = g.labels['destination_service'] ?? 'unknown';
        return row('service', shortService(host), g.labels['destination_namespace'] ?? 'unknown', g, window, host);
      });
      const named = new Set(rows.map((r) => `${r.namespace}/${r.name}`));
      const subsets = (opts.members?.() ?? []).filter((m) => m.workloads.length > 0 && !named.has(`${m.namespace}/${m.name}`) && (!namespace || m.namespace === namespace));
      const extra = await Promise.all(subsets.map(async (m) => {
        const [g] = await src.groups({ direction: 'inbound', by: [], match: { destination_namespace: m.namespace, destination_workload: m.workloads } }, window);
        return g ? row('service', m.name, m.namespace, g, window, serviceHostFor(m.name, m.namespace)) : undefined;
      }));
      return [...rows, ...extra.filter((r): r is StatRow => r !== undefined)].sort(byName);
    },
    workloads,
    async callers({ window, service, namespace }) {
      const ns = namespace ?? 'default';
      const members = (opts.members?.() ?? []).find((m) => m.name === service && m.namespace === ns)?.workloads ?? [];
      // Without a member list (no mesh state given), the service's own label.
      const match: Record<string, string | readonly string[]> = members.length > 0
        ? { destination_namespace: ns, destination_workload: members }
        : { destination_namespace: ns, destination_service: serviceHostFor(service, ns) };
      const gs = await src.groups({ direction: 'inbound', by: ['source_workload', 'source_namespace'], match }, window);
      return gs.map((g) => row('caller', g.labels['source_workload'] ?? 'unknown', g.labels['source_namespace'] ?? 'unknown', g, window)).sort(byName);
    },
    async routes({ window, service, namespace }) {
      // A service's routes are those its callers addressed it by (parent:
      // `routes reviews` while an HTTPRoute splits reviews over reviews-v1..3)
      // and those that sent traffic to it as a backend (`routes reviews-v2`),
      // one row per (route, parent, backend).
      const by = ['route', 'parent_service', 'destination_service', 'destination_namespace'];
      const matches: Record<string, string>[] = [];
      if (service) {
        const host = serviceHostFor(service, namespace ?? 'default');
        matches.push({ parent_service: host }, { destination_service: host });
      } else matches.push(namespace ? { destination_namespace: namespace } : {});
      // Callers are sidecars (outbound) and gateways (an ingress routing to
      // productpage): both sides carry the routes.
      const specs = matches.flatMap((match) => (['outbound', 'gateway'] as const).map((direction) => ({ direction, by, match })));
      const rows = new Map<string, StatRow>();
      const results = await Promise.all(specs.map((spec) => src.groups(spec, window)));
      for (const [i, gs] of results.entries()) {
        for (const g of gs) {
          // A route seen from both kinds of caller stays two rows (quantiles do not add).
          const key = `${specs[i]!.direction}\u0000${by.map((b) => g.labels[b] ?? '').join('\u0000')}`;
          if (rows.has(key)) continue;
          const r = row('route', g.labels['route'] ?? 'none', g.labels['destination_namespace'] ?? 'unknown', g, window, g.labels['destination_service'] ?? 'unknown');
          rows.set(key, { ...r, parent: g.labels['parent_service'] || (g.labels['destination_service'] ?? 'unknown') });
        }
      }
      return [...rows.values()].sort((a, b) => (a.parent ?? '').localeCompare(b.parent ?? '') || a.name.localeCompare(b.name) || (a.service ?? '').localeCompare(b.service ?? ''));
    },
    edges,
    async topology({ window, namespace }) {
      const [es, ws] = await Promise.all([edges({ window, namespace }), workloads({ window, namespace })]);
      const nodes = new Map<string, TopologyNode>();
      for (const w of ws) nodes.set(`${w.namespace}/${w.name}`, { id: `${w.namespace}/${w.name}`, workload: w.name, namespace: w.namespace, rps: w.rps, successRate: w.successRate, meshed: true });
      for (const e of es) {
        for (const end of [e.source, e.destination]) {
          const id = `${end.namespace}/${end.workload}`;
          if (!nodes.has(id)) nodes.set(id, { id, workload: end.workload, namespace: end.namespace, rps: 0, successRate: null, meshed: end.workload !== 'unknown' });
        }
      }
      return { window, nodes: [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id)), edges: es };
    },
  };
}
