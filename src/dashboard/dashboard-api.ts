// Server-side helpers for the dashboard, mounted on the API port:
//
//   GET /api/v1/dashboard/history     per-service series over the last 15 min
//        {items: {"<ns>/<name>": [{at, rps, successRate, p50, p95, p99, codes}]}}
//        (one point per scrape round, 1 m window each; what the sparklines
//        draw). `codes`: requests/s by class, "2xx".."5xx" for HTTP and
//        "grpc <status>" for gRPC, summed over the Service's workloads (its
//        selector), as they served them. `?service=<ns>/<name>` keeps one.
//   GET /api/v1/dashboard/proxies     xDS sync state per proxy joined with its
//        node metadata (workload, namespace, kind, admin) and its identity
//        (SPIFFE ID, certificate expiry) read from the proxy's admin /identity
//   GET /api/v1/dashboard/endpoints?service=&namespace=
//        what each proxy's balancer sees of the service's endpoints (admin
//        /clusters): the service's clusters and every cluster holding one of
//        their endpoints (version Services, subsets), with health, outlier
//        ejection, locality, in-flight, EWMA
//   GET /api/v1/dashboard/proxy?node=
//        one proxy: its sync state and NACKs, its config as it has it (admin
//        /config_dump) and its clusters with endpoint health (admin /clusters)
//   GET /api/v1/dashboard/security?service=&namespace=
//        per workload of the service: its SPIFFE ID, the MeshTLS mode of each
//        target port and the policy that decided it, and the
//        AuthorizationPolicies in force (translate/mtls.ts, translate/authz.ts:
//        the same resolution the proxies' config comes from)
//
// Reads from proxies run concurrently with a short timeout; a proxy that does
// not answer is reported, never waited for.
import type { ApiRoute } from '../control-plane/api/router.ts';
import { apiError, sendError, sendJson } from '../control-plane/api/http-errors.ts';
import { serviceMembers, type GoldenMetrics, type GroupQuery } from '../control-plane/telemetry/golden.ts';
import type { Scraper } from '../control-plane/telemetry/scraper.ts';
import type { ProxyNodes } from '../control-plane/telemetry/proxy-nodes.ts';
import type { XdsServer } from '../xds/server.ts';
import type { MeshState } from '../control-plane/translate/model.ts';
import { nsOf } from '../control-plane/translate/model.ts';
import { selects, targetPortOf } from '../control-plane/translate/services.ts';
import { spiffeIdOf, tlsModeSource } from '../control-plane/translate/mtls.ts';
import { policiesFor } from '../control-plane/translate/authz.ts';

export const HISTORY_MS = 15 * 60_000;
export const MAX_HISTORY_POINTS = 1000;
const PROXY_TIMEOUT_MS = 1500;

export interface HistoryPoint {
  readonly at: number;
  readonly rps: number;
  readonly successRate: number | null;
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
  readonly codes: Readonly<Record<string, number>>;
}

export interface DashboardApiOptions {
  readonly metrics?: GoldenMetrics | undefined;
  readonly scraper?: Scraper | undefined;
  /** History sample period without a scraper (Prometheus mode). Default 5000 ms. */
  readonly intervalMs?: number;
  /** Raw counter groups (the golden metrics' source: the scraper's aggregator or Prometheus): response codes per workload. */
  readonly groups?: GroupQuery | undefined;
  readonly xds: Pick<XdsServer, 'status'>;
  readonly nodes: ProxyNodes;
  /** The mesh state as translation sees it (MeshTLS and security filled in). */
  readonly state?: () => MeshState;
  readonly now?: () => number;
}

export interface DashboardApi {
  readonly routes: ApiRoute[];
  /** Takes one history sample now (the scraper's rounds call this). */
  sample(): Promise<void>;
  stop(): void;
}

async function getJson(address: string, p: string): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> {
  try {
    const res = await fetch(`http://${address}${p}`, { signal: AbortSignal.timeout(PROXY_TIMEOUT_MS) });
    if (res.status !== 200) {
      await res.body?.cancel();
      return { ok: false, error: `HTTP ${res.status}` };
    }
    return { ok: true, value: await res.json() };
  } catch (err) {
    return { ok: false, error: (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message };
  }
}

/** Cluster names the translation gives a service: `<svc>.<ns>.svc:<port>`. */
function clusterBelongs(cluster: string, service: string, namespace: string): boolean {
  return cluster.startsWith(`${service}.${namespace}.svc:`);
}

type SyncStatus = ReturnType<XdsServer['status']>[number];
const nacksOf = (s: SyncStatus): { type: string; version: string; message: string; at: string }[] =>
  Object.entries(s.perType).filter(([, t]) => t.nacked).map(([type, t]) => ({ type, version: t.nacked!.version, message: t.nacked!.message, at: t.nacked!.at }));

export function dashboardApi(o: DashboardApiOptions): DashboardApi {
  const now = o.now ?? Date.now;
  const history = new Map<string, HistoryPoint[]>();
  let sampling = false;

  const codesByService = async (): Promise<Map<string, Record<string, number>>> => {
    const out = new Map<string, Record<string, number>>();
    const state = o.state?.();
    if (!o.groups || !state) return out;
    const gs = await o.groups.groups({ direction: 'inbound', by: ['destination_workload', 'destination_namespace', 'response_code', 'grpc_status'] }, '1m');
    for (const m of serviceMembers(state)) {
      const c: Record<string, number> = {};
      for (const g of gs) {
        if (g.labels['destination_namespace'] !== m.namespace || !m.workloads.includes(g.labels['destination_workload'] ?? '')) continue;
        const grpc = g.labels['grpc_status'] ?? '';
        const cls = grpc !== '' ? `grpc ${grpc}` : `${(g.labels['response_code'] ?? '0')[0]}xx`;
        c[cls] = (c[cls] ?? 0) + g.requests / ((g.coveredMs > 0 ? g.coveredMs : 60_000) / 1000);
      }
      out.set(`${m.namespace}/${m.name}`, c);
    }
    return out;
  };

  const sample = async (): Promise<void> => {
    if (!o.metrics || sampling) return;
    sampling = true;
    try {
      const [rows, codes] = await Promise.all([o.metrics.services({ window: '1m' }), codesByService()]);
      const at = now();
      for (const r of rows) {
        const key = `${r.namespace}/${r.name}`;
        const list = history.get(key) ?? [];
        list.push({ at, rps: r.rps, successRate: r.successRate, p50: r.latencyMs.p50, p95: r.latencyMs.p95, p99: r.latencyMs.p99, codes: codes.get(key) ?? {} });
        while (list.length > MAX_HISTORY_POINTS || (list[0] && list[0].at < at - HISTORY_MS)) list.shift();
        history.set(key, list);
      }
      for (const [k, list] of history) if ((list.at(-1)?.at ?? 0) < at - HISTORY_MS) history.delete(k);
    } catch {
      // the metrics backend is away: no point this round
    } finally {
      sampling = false;
    }
  };
  let off: (() => void) | undefined;
  if (o.scraper) off = o.scraper.onRound(() => void sample());
  else if (o.metrics) {
    const t = setInterval(() => void sample(), o.intervalMs ?? 5_000);
    t.unref();
    off = () => clearInterval(t);
  }

  const routes: ApiRoute[] = [
    {
      method: 'GET',
      pattern: '/api/v1/dashboard/history',
      handle(req, res) {
        const one = new URL(req.url ?? '/', 'http://localhost').searchParams.get('service');
        sendJson(res, 200, { windowMs: HISTORY_MS, items: one === null ? Object.fromEntries(history) : { [one]: history.get(one) ?? [] } });
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/dashboard/proxies',
      async handle(_req, res) {
        const status = o.xds.status();
        const items = await Promise.all(status.map(async (s) => {
          const info = o.nodes.get(s.nodeId);
          let identity: unknown = null;
          let identityError: string | null = null;
          if (info?.admin) {
            const r = await getJson(info.admin, '/identity');
            if (r.ok) identity = r.value;
            else identityError = r.error === 'HTTP 404' ? 'no workload identity (mTLS off for this proxy)' : r.error;
          } else identityError = 'admin address not advertised';
          const nacks = nacksOf(s);
          return {
            ...s,
            workload: info?.workload ?? s.cluster,
            namespace: info?.namespace ?? 'default',
            kind: info?.kind ?? 'unknown',
            admin: info?.admin ?? null,
            identity,
            identityError,
            nacks,
          };
        }));
        sendJson(res, 200, { items });
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/dashboard/endpoints',
      async handle(req, res) {
        const q = new URL(req.url ?? '/', 'http://localhost').searchParams;
        const service = q.get('service');
        const namespace = q.get('namespace') || 'default';
        if (!service) return sendError(res, apiError('bad_request', 'service: is required', { fields: [{ path: 'service', message: 'is required' }] }));
        const proxies = o.nodes.list().filter((n) => n.admin);
        type ClusterView = { name: string; endpoints?: { key: string }[] };
        const fetched = await Promise.all(proxies.map(async (p) => {
          const r = await getJson(p.admin!, '/clusters');
          if (!r.ok) return { proxy: p.nodeId, workload: p.workload, error: r.error, clusters: [] as ClusterView[] };
          return { proxy: p.nodeId, workload: p.workload, clusters: ((r.value as { clusters?: unknown[] }).clusters ?? []) as ClusterView[] };
        }));
        // The service's endpoints are those of its own clusters; routes to
        // subsets or version Services (reviews -> reviews-v1) reach them
        // through other clusters, which carry the traffic and so the load
        // figures: every cluster holding one of those endpoints belongs here.
        const keys = new Set(fetched.flatMap((v) => v.clusters.filter((c) => clusterBelongs(c.name, service, namespace)).flatMap((c) => (c.endpoints ?? []).map((e) => e.key))));
        const views = fetched.map((v) => ({ ...v, clusters: v.clusters.filter((c) => clusterBelongs(c.name, service, namespace) || (c.endpoints ?? []).some((e) => keys.has(e.key))) }));
        sendJson(res, 200, { service, namespace, items: views.filter((v) => v.clusters.length > 0 || 'error' in v) });
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/dashboard/proxy',
      async handle(req, res) {
        const node = new URL(req.url ?? '/', 'http://localhost').searchParams.get('node');
        if (!node) return sendError(res, apiError('bad_request', 'node: is required', { fields: [{ path: 'node', message: 'is required' }] }));
        const s = o.xds.status().find((x) => x.nodeId === node);
        if (!s) return sendError(res, apiError('not_found', `node: no connected proxy is "${node}"`, { fields: [{ path: 'node', message: 'is not connected' }] }));
        const info = o.nodes.get(node);
        const [dump, clusters] = info?.admin
          ? await Promise.all([getJson(info.admin, '/config_dump'), getJson(info.admin, '/clusters')])
          : [{ ok: false as const, error: 'admin address not advertised' }, { ok: false as const, error: 'admin address not advertised' }];
        sendJson(res, 200, {
          ...s,
          workload: info?.workload ?? s.cluster,
          namespace: info?.namespace ?? 'default',
          kind: info?.kind ?? 'unknown',
          admin: info?.admin ?? null,
          nacks: nacksOf(s),
          configDump: dump.ok ? dump.value : null,
          configError: dump.ok ? null : dump.error,
          clusters: clusters.ok ? ((clusters.value as { clusters?: unknown[] }).clusters ?? []) : [],
          clustersError: clusters.ok ? null : clusters.error,
        });
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/dashboard/security',
      handle(req, res) {
        const q = new URL(req.url ?? '/', 'http://localhost').searchParams;
        const service = q.get('service');
        const namespace = q.get('namespace') || 'default';
        if (!service) return sendError(res, apiError('bad_request', 'service: is required', { fields: [{ path: 'service', message: 'is required' }] }));
        const state = o.state?.();
        if (!state) return sendError(res, apiError('unavailable', 'mesh state: not available on this server'));
        const svc = state.services.find((s) => s.metadata.name === service && nsOf(s.metadata) === namespace);
        if (!svc) return sendError(res, apiError('not_found', `service: ${namespace}/${service} does not exist`, { fields: [{ path: 'service', message: 'does not exist' }] }));
        const sec = state.security ?? { authorizationPolicies: [], requestAuthentications: [] };
        const items = state.workloads.filter((w) => selects(svc, w)).map((w) => {
          const ref = (m: { metadata: { name: string; namespace?: string } }): string => `${nsOf(m.metadata)}/${m.metadata.name}`;
          const p = policiesFor(sec, state, w);
          return {
            workload: w.name,
            identity: state.meshTls ? spiffeIdOf(state.meshTls.trustDomain, w) : null,
            ports: svc.spec.ports.map((sp) => {
              const port = targetPortOf(sp, w)?.port ?? (typeof sp.targetPort === 'number' ? sp.targetPort : sp.port);
              if (!state.meshTls) return { port, mode: 'OFF', policy: null };
              const m = tlsModeSource(state.meshTls, w, port);
              return { port, mode: m.mode, policy: m.policy ? ref(m.policy) : null };
            }),
            authorization: [...p.deny, ...p.allow].map((a) => ({ policy: ref(a), action: a.spec.action ?? 'ALLOW' })),
            authentication: p.authn.map(ref),
          };
        });
        sendJson(res, 200, { service, namespace, items });
      },
    },
  ];
  return { routes, sample, stop: () => off?.() };
}
