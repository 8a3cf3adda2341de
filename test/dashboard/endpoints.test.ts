// The dashboard's endpoints API against the demo mesh: productpage reaches
// reviews through the version Services' clusters (reviews-v1..v3), so the
// join must include those clusters, or every endpoint reads 0 requests and
// EWMA 0.0 ms while reviews serves traffic (issue 17).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { checkPortsFree, demoPorts, startDemo } from '../../src/cli/commands/demo.ts';

interface EndpointView { key: string; address: string; port: number; ewmaMs: number; successes: number }
interface Item { workload: string; clusters: { name: string; endpoints: EndpointView[] }[] }

test('endpoints API: the EWMA and request counts of reviews\' endpoints come from the clusters that carry the traffic', { timeout: 60_000 }, async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-dash-ep-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  let ports: ReturnType<typeof demoPorts> | undefined;
  for (let i = 0; i < 10 && !ports; i++) {
    const p = demoPorts(20_000 + Math.floor(Math.random() * 12_000));
    if ((await checkPortsFree(p)).ok) ports = p;
  }
  assert.ok(ports, 'no free port range for the demo mesh');
  const d = await startDemo({ ports, dataDir, rps: 10, mtls: true, log: () => {} });
  t.after(() => d.stop());
  const api = d.cp.apiUrl;

  let items: Item[] = [];
  const deadline = Date.now() + 30_000;
  for (let i = 0; i < 60 && Date.now() < deadline; i++) {
    items = ((await (await fetch(`${api}/api/v1/dashboard/endpoints?service=reviews`)).json()) as { items: Item[] }).items;
    const pp = items.find((v) => v.workload === 'productpage-v1');
    const served = new Set(pp?.clusters.flatMap((c) => c.endpoints.filter((e) => e.successes > 0 && e.ewmaMs > 0).map((e) => e.key)));
    if (served.size >= 3) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const pp = items.find((v) => v.workload === 'productpage-v1');
  assert.ok(pp, `productpage's proxy: ${JSON.stringify(items.map((v) => v.workload))}`);
  const names = pp.clusters.map((c) => c.name).sort();
  assert.deepEqual(names, ['reviews-v1.default.svc:9080', 'reviews-v2.default.svc:9080', 'reviews-v3.default.svc:9080', 'reviews.default.svc:9080']);
  // Every reviews endpoint has served productpage and has a latency estimate
  // (the demo's reviews answer in milliseconds, not microseconds).
  const reviews = pp.clusters.find((c) => c.name === 'reviews.default.svc:9080')!;
  assert.equal(reviews.endpoints.length, 3);
  for (const ep of reviews.endpoints) {
    const seen = pp.clusters.flatMap((c) => c.endpoints).filter((e) => e.key === ep.key);
    assert.ok(seen.some((e) => e.successes > 0 && e.ewmaMs >= 0.05), `${ep.key}: ${JSON.stringify(seen)}`);
  }
  // Clusters of other services stay out.
  assert.ok(items.every((v) => v.clusters.every((c) => c.name.startsWith('reviews'))), JSON.stringify(items.map((v) => v.clusters.map((c) => c.name))));
});
