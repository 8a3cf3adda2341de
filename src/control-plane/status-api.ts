// What the control plane knows about its proxies: xDS sync state per proxy
// (connected, versions sent and ACKed, the last NACK and its message, and the
// admin address its node metadata advertises) and the translation's warnings. Served for `trellis proxy-status` and the
// dashboard. `POST /api/v1/proxies/identity/renew` asks every connected
// proxy (or `?admin=host:port`) to renew its certificate now, through its
// admin listener with the admin token it advertised (`trellis identity renew`).
import type { XdsServer } from '../xds/server.ts';
import type { MeshSnapshotSource } from './snapshots.ts';
import { sendJson, type ApiRoute } from './api/server.ts';
import type { ProxyNodes } from './telemetry/proxy-nodes.ts';

export function statusRoutes(deps: { xds: XdsServer; snapshots: MeshSnapshotSource; id: string; nodes?: ProxyNodes }): ApiRoute[] {
  return [
    {
      method: 'GET',
      pattern: '/api/v1/proxies',
      handle(_req, res) {
        const proxies = deps.xds.status().map((p) => {
          const admin = deps.nodes?.get(p.nodeId)?.admin;
          // What translation warned about this proxy's view (e.g. fields its gRPC client kind ignores).
          const warnings = deps.snapshots.warningsForNode(p.nodeId).map((w) => `${w.route}: ${w.message}`);
          return { ...p, ...(admin ? { admin } : {}), ...(warnings.length > 0 ? { warnings } : {}) };
        });
        sendJson(res, 200, { controlPlane: deps.id, revision: deps.snapshots.revision(), proxies });
      },
    },
    {
      method: 'POST',
      pattern: '/api/v1/proxies/identity/renew',
      async handle(req, res) {
        const nodes = deps.nodes;
        const only = new URL(req.url ?? '/', 'http://localhost').searchParams.getAll('admin');
        const targets = (nodes?.list() ?? []).filter((n) => n.admin !== undefined && (only.length === 0 || only.includes(n.admin)));
        const results = await Promise.all(targets.map(async (n) => {
          const admin = n.admin!;
          const token = nodes?.adminToken(admin);
          try {
            const r = await fetch(`http://${admin}/identity/renew`, { method: 'POST', signal: AbortSignal.timeout(5000), ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}) });
            const body = (await r.json().catch(() => ({}))) as Record<string, unknown>;
            return r.ok ? { nodeId: n.nodeId, admin, ok: true, identity: body } : { nodeId: n.nodeId, admin, ok: false, status: r.status, error: `HTTP ${r.status}` };
          } catch (err) {
            return { nodeId: n.nodeId, admin, ok: false, error: (err as Error).message };
          }
        }));
        sendJson(res, 200, { controlPlane: deps.id, results });
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/translation',
      handle(_req, res) {
        sendJson(res, 200, { controlPlane: deps.id, revision: deps.snapshots.revision(), reports: deps.snapshots.reports() });
      },
    },
    {
      method: 'GET',
      pattern: '/healthz',
      access: 'public',
      handle(_req, res) {
        sendJson(res, 200, { ok: true, controlPlane: deps.id });
      },
    },
  ];
}
