// POST /api/v1/apply carries the warnings of what the applied resources
// will break (control-plane/lockout.ts), dry run or not, so every client
// (`trellis apply`, the dashboard's config editor) shows the same ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startControlPlane } from '../../src/control-plane/control-plane.ts';
import type { ApplyResponse } from '../../src/cli/client.ts';

const workload = (name: string, tlsMode: 'mtls' | 'none', address: string): unknown => ({
  apiVersion: 'trellis.dev/v1alpha1', kind: 'Workload',
  metadata: { name, namespace: 'default', labels: { app: 'reviews', 'trellis.dev/meshed': 'true', 'trellis.dev/tls-mode': tlsMode } },
  spec: { address, serviceAccount: 'reviews', ports: [{ port: 9080 }] },
});
const strict = { apiVersion: 'trellis.dev/v1alpha1', kind: 'MeshTLS', metadata: { name: 'strict', namespace: 'default' }, spec: { mode: 'STRICT', selector: { app: 'reviews' } } };

async function apply(api: string, body: unknown, dryRun: boolean): Promise<ApplyResponse> {
  const res = await fetch(`${api}/api/v1/apply${dryRun ? '?dryRun=true' : ''}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as ApplyResponse;
}

test('apply API: a MeshTLS STRICT result warns about the selected workloads without a mesh identity; others carry no warnings', { timeout: 30_000 }, async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-apply-warn-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort: 0, id: 'cp-w', identity: false, dashboard: false, log: () => {} });
  t.after(() => cp.close());

  const first = await apply(cp.apiUrl, [workload('reviews-a', 'none', '10.0.0.1'), workload('reviews-b', 'mtls', '10.0.0.2')], false);
  assert.ok(first.results.every((r) => r.ok && r.warnings === undefined), JSON.stringify(first.results));

  // The mesh state follows the store: poll (bounded) until the workloads are in it.
  let warned: string[] | undefined;
  for (let i = 0; i < 40 && !warned; i++) {
    const r = (await apply(cp.apiUrl, strict, true)).results[0]!;
    assert.ok(r.ok);
    warned = r.warnings;
    if (!warned) await new Promise((res) => setTimeout(res, 100));
  }
  assert.deepEqual(warned, ['STRICT locks out 1 workload(s) that have no mesh identity, so their sidecars cannot accept mutual TLS and every call to them will fail: default/reviews-a; restart them with a join token (TRELLIS_JOIN_TOKEN) first']);

  // Applied for real, the response says the same.
  const real = (await apply(cp.apiUrl, strict, false)).results[0]!;
  assert.ok(real.ok);
  assert.deepEqual(real.warnings, warned);

  // PERMISSIVE locks nobody out.
  const permissive = (await apply(cp.apiUrl, { ...strict, spec: { mode: 'PERMISSIVE', selector: { app: 'reviews' } } }, true)).results[0]!;
  assert.ok(permissive.ok);
  assert.equal(permissive.warnings, undefined);
});
