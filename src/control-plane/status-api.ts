// What the control plane knows about its proxies: xDS sync state per proxy
// (connected, versions sent and ACKed, the last NACK and its message) and
// the translation's warnings. Served for `trellis proxy-status` and the
// dashboard.
import type { XdsServer } from '../xds/server.ts';
import type { MeshSnapshotSource } from './snapshots.ts';
import { sendJson, type ApiRoute } from './api/server.ts';

export function statusRoutes(deps: { xds: XdsServer; snapshots: MeshSnapshotSource; id: string }): ApiRoute[] {
  return [
    {
      method: 'GET',
      pattern: '/api/v1/proxies',
      handle(_req, res) {
        sendJson(res, 200, { controlPlane: deps.id, revision: deps.snapshots.revision(), proxies: deps.xds.status() });
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
