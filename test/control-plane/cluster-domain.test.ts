// `trellis control-plane --cluster-domain` (startControlPlane({clusterDomain})):
// the service names sidecars route end in it, not in a hard-coded cluster.local.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlPlane } from '../../src/control-plane/control-plane.ts';
import { snapshotResources } from '../../src/xds/snapshot.ts';
import { TypeUrl } from '../../src/xds/protos.ts';
import { unpackAny } from '../../src/xds/codec.ts';
import { call, service } from './fixtures.ts';

test('the control plane routes <name>.<ns>.svc.<cluster domain>', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-domain-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort: 0, log: () => {}, identity: false, dashboard: false, clusterDomain: 'mesh.example' });
  t.after(() => cp.close());
  const r = await call(cp.apiUrl, 'POST', '/api/v1/apply', service('reviews', { app: 'reviews' }));
  assert.ok(r.status < 300, JSON.stringify(r.json));
  const node = { id: 'default/web', cluster: 'web', locality: { region: '', zone: '', subZone: '' }, metadata: { trellis: { kind: 'sidecar', namespace: 'default' } }, userAgentName: 'trellis-proxy', userAgentVersion: '' };
  let domains: string[] = [];
  for (let i = 0; i < 100 && domains.length === 0; i++) {
    const snap = cp.snapshots.snapshotFor(node);
    const rc = snap ? [...snapshotResources(snap, TypeUrl.route as never).values()].map((x) => unpackAny(x.any) as { name: string; virtualHosts: { name: string; domains: string[] }[] }).find((x) => x.name === 'outbound') : undefined;
    domains = rc?.virtualHosts.find((v) => v.name === 'reviews.default.svc:9080')?.domains ?? [];
    if (domains.length === 0) await sleep(50);
  }
  assert.ok(domains.includes('reviews.default.svc.mesh.example:9080'), JSON.stringify(domains));
  assert.ok(!domains.some((d) => d.includes('cluster.local')), JSON.stringify(domains));
});
