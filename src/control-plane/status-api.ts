// What the control plane knows about its proxies: xDS sync state per proxy
// (connected, versions sent and ACKed, the last NACK and its message, and the
// admin address its node metadata advertises) and the translation's warnings. Served for `trellis proxy-status` and the
// dashboard.
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
          return admin ? { ...p, admin } : p;
        });
        sendJson(res, 200, { controlPlane: deps.id, revision: deps.snapshots.revision(), proxies });
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
      handle(_req, res) {
        sendJson(res, 200, { ok: true, controlPlane: deps.id });
      },
    },
  ];
}
