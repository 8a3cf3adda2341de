// The dashboard's static routes on an API server: the SPA and its assets,
// the SPA fallback, the API's JSON 404s kept, no path traversal, a clear 503
// when nothing is built; and the build itself (esbuild, no network).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createApiServer } from '../../src/control-plane/api/server.ts';
import { createResourceService } from '../../src/control-plane/resources/service.ts';
import { openMemoryStore } from '../../src/control-plane/store/memory.ts';
import { dashboardRoutes } from '../../src/dashboard/serve.ts';
import { buildDashboard } from '../../src/dashboard/build.ts';
import { parseFieldPath } from '../../src/dashboard/app/field-path.ts';
import { sloOf, healthOf } from '../../src/dashboard/app/format.ts';

async function serve(t: import('node:test').TestContext, distDir: string): Promise<string> {
  const store = openMemoryStore();
  const api = createApiServer({ resources: createResourceService(store) });
  api.addRoutes(dashboardRoutes({ distDir }));
  const { url } = await api.listen(0, '127.0.0.1');
  t.after(async () => {
    await api.close();
    await store.close();
  });
  return url;
}

test('static files, SPA fallback, API 404s kept, no traversal', async (t) => {
  const dist = mkdtempSync(path.join(tmpdir(), 'trellis-dist-'));
  t.after(() => rmSync(dist, { recursive: true, force: true }));
  writeFileSync(path.join(dist, 'index.html'), '<!doctype html><div id="app"></div>');
  writeFileSync(path.join(dist, 'app.js'), 'console.log(1)');
  writeFileSync(path.join(dist, 'app.css'), 'body{}');
  const url = await serve(t, dist);

  const index = await fetch(`${url}/`);
  assert.equal(index.status, 200);
  assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.match(index.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  assert.match(await index.text(), /id="app"/);
  assert.equal((await fetch(`${url}/assets/app.css`)).headers.get('content-type'), 'text/css; charset=utf-8');
  assert.equal((await (await fetch(`${url}/some/deep/link`)).text()).includes('id="app"'), true, 'SPA fallback');
  for (const p of ['/assets/..%2Fsecret', '/assets/missing.js']) assert.equal((await fetch(`${url}${p}`)).status, 404, p);
  const api404 = await fetch(`${url}/api/v1/nothing-here`);
  assert.equal(api404.status, 404);
  assert.equal(((await api404.json()) as { error: { code: string } }).error.code, 'not_found');
  assert.equal((await fetch(`${url}/api/v1/kinds`)).status, 200, 'API routes still win');
  const post = await fetch(`${url}/anything`, { method: 'POST' });
  assert.equal(post.status, 405);
  const head = await fetch(`${url}/`, { method: 'HEAD' });
  assert.equal(head.status, 200);
});

test('a missing build is a clear 503, not a crash', async (t) => {
  const dist = mkdtempSync(path.join(tmpdir(), 'trellis-dist-'));
  t.after(() => rmSync(dist, { recursive: true, force: true }));
  const url = await serve(t, dist);
  const r = await fetch(`${url}/`);
  assert.equal(r.status, 503);
  assert.match(await r.text(), /not built/);
});

test('the bundle builds offline with esbuild', async (t) => {
  const dist = mkdtempSync(path.join(tmpdir(), 'trellis-dist-'));
  t.after(() => rmSync(dist, { recursive: true, force: true }));
  const r = await buildDashboard({ distDir: dist });
  assert.ok(r.ok, r.ok ? '' : r.message);
  for (const f of ['index.html', 'app.js', 'app.css']) assert.ok(existsSync(path.join(dist, f)), f);
  assert.ok(r.bytes < 1_000_000, `bundle is ${r.bytes} bytes`);
});

test('field paths and objectives', () => {
  assert.deepEqual(parseFieldPath('spec.rules[0].backendRefs[1].weight'), ['spec', 'rules', 0, 'backendRefs', 1, 'weight']);
  assert.deepEqual(parseFieldPath('metadata.labels["app.kubernetes.io/name"]'), ['metadata', 'labels', 'app.kubernetes.io/name']);
  assert.equal(sloOf(undefined), 0.99);
  assert.ok(Math.abs(sloOf({ 'trellis.dev/slo-success-rate': '99.9%' }) - 0.999) < 1e-9);
  assert.equal(sloOf({ 'trellis.dev/slo-success-rate': '0.95' }), 0.95);
  assert.equal(sloOf({ 'trellis.dev/slo-success-rate': 'nonsense' }), 0.99);
  assert.equal(healthOf(0.985), 'bad');
  assert.equal(healthOf(0.993), 'warn');
  assert.equal(healthOf(1), 'good');
  assert.equal(healthOf(null), 'idle');
});
