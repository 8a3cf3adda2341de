// The dashboard end to end: a real mesh (`trellis demo` machinery: control
// plane, ingress gateway, six workloads with sidecars, a traffic generator),
// the dashboard served by the control plane, and a real headless Chromium
// (Debian's /usr/bin/chromium driven by playwright-core). Checks what a person
// would look at: services with live rates, the expected edges, a field error
// next to its YAML line, a canary weight change on the service page, live tap
// rows. Screenshots go to test-results/dashboard/ (git-ignored).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildDashboard } from '../../src/dashboard/build.ts';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = path.resolve(import.meta.dirname, '..', '..');
const SHOTS = path.join(ROOT, 'test-results', 'dashboard');
const DEMO = path.join(ROOT, 'src', 'cli', 'commands', 'demo.ts');

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < 400 && Date.now() < deadline; i++) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

async function startMesh(t: TestContext): Promise<{ api: string }> {
  const demo = await import(DEMO) as typeof import('../../src/cli/commands/demo.ts');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-dash-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  let ports: ReturnType<typeof demo.demoPorts> | undefined;
  for (let i = 0; i < 10 && !ports; i++) {
    // Below the ephemeral range (32768+), so listen(0) and outgoing
    // connections elsewhere cannot take these fixed ports meanwhile.
    const p = demo.demoPorts(20_000 + Math.floor(Math.random() * 12_000));
    if ((await demo.checkPortsFree(p)).ok) ports = p;
  }
  assert.ok(ports, 'no free port range for the demo mesh');
  const lines: string[] = [];
  const d = await demo.startDemo({ ports, dataDir, rps: 25, mtls: true, log: (l) => { lines.push(l); } }).catch((err: Error) => {
    throw new Error(`${err.message}\n${lines.slice(-30).join('\n')}`);
  });
  t.after(() => d.stop());
  return { api: d.cp.apiUrl };
}

async function json<T>(url: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(url, init);
  return { status: res.status, body: (await res.json()) as T };
}

test('dashboard against a running mesh: overview, topology, config errors, canary, tap, proxies', { timeout: 110_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) return t.skip(`${CHROMIUM} is not installed (Debian package chromium)`);
  if (!existsSync(DEMO)) return t.skip('the demo mesh (src/cli/commands/demo.ts) is not in this tree');
  const built = await buildDashboard();
  assert.ok(built.ok, built.ok ? '' : built.message);

  const t0 = Date.now();
  const phase = (what: string): void => t.diagnostic(`${what}: ${Date.now() - t0} ms`);
  const { api } = await startMesh(t);
  phase('mesh up');
  mkdirSync(SHOTS, { recursive: true });

  // The served app and the API's own 404s.
  const index = await fetch(`${api}/`);
  assert.equal(index.status, 200);
  assert.match(await index.text(), /<div id="app">/);
  assert.equal((await fetch(`${api}/assets/app.js`)).headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal((await fetch(`${api}/assets/..%2Fbuild.ts`)).status, 404);
  assert.equal((await json<{ error: { code: string } }>(`${api}/api/v1/nope`)).body.error.code, 'not_found');

  // Traffic has been scraped: services with non-zero rates.
  await until('scraped traffic', async () => {
    const r = await json<{ items: { name: string; rps: number }[] }>(`${api}/api/v1/metrics/services`);
    return ['details', 'reviews'].every((n) => r.body.items.some((s) => s.name === n && s.rps > 0)) ? true : undefined;
  }, 40_000);

  // The version Services (reviews-v1..v3, which no sidecar names as the
  // service it serves) read their workloads' traffic: not 0 rps, 0 meshed.
  await until('version services with traffic', async () => {
    const r = await json<{ items: { name: string; rps: number; meshed: number }[] }>(`${api}/api/v1/metrics/services`);
    const versions = r.body.items.filter((s) => /^reviews-v\d$/.test(s.name));
    return versions.length >= 2 && versions.every((s) => s.rps > 0 && s.meshed >= 1) ? true : undefined;
  }, 30_000);
  phase('traffic scraped');
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(path.join(tmpdir(), 'trellis-chromium-'));
  t.after(() => rmSync(profile, { recursive: true, force: true }));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1366, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.after(() => browser.close());
  const page = await browser.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.setDefaultTimeout(20_000);

  // Overview: the services, with live non-zero rates.
  await page.goto(`${api}/#/`);
  const rates = await page.waitForFunction(() => {
    const out: Record<string, number> = {};
    for (const tr of Array.from(document.querySelectorAll('table[aria-label^="Services"] tbody tr'))) {
      const cells = Array.from(tr.querySelectorAll('td')).map((td) => td.textContent ?? '');
      if (cells.length > 2) out[cells[0]!] = Number(cells[2]);
    }
    return (out['details'] ?? 0) > 0 && (out['reviews'] ?? 0) > 0 ? out : null;
  });
  const r = await rates.jsonValue() as Record<string, number>;
  assert.ok(r['details']! > 0 && r['reviews']! > 0, JSON.stringify(r));
  // Sorting by RPS (keyboard: focus the header button, press Enter).
  await page.getByRole('button', { name: /^RPS/ }).focus();
  await page.keyboard.press('Enter');
  assert.equal(await page.locator('th[aria-sort="descending"]').textContent(), 'RPS ▾');
  await page.screenshot({ path: path.join(SHOTS, 'overview.png'), fullPage: true });

  phase('overview checked');
  // Topology: the demo's call graph.
  await page.goto(`${api}/#/topology`);
  const expected = ['productpage-v1>details-v1', 'productpage-v1>reviews-v1', 'productpage-v1>reviews-v2', 'productpage-v1>reviews-v3', 'reviews-v2>ratings-v1', 'reviews-v3>ratings-v1'];
  await page.waitForFunction((want) => {
    const have = new Set(Array.from(document.querySelectorAll('table[aria-label="Edges between workloads"] tbody tr')).map((tr) => {
      const c = tr.querySelectorAll('td');
      return `${c[0]?.textContent}>${c[1]?.textContent}`;
    }));
    return want.every((e) => have.has(e));
  }, expected);
  assert.equal(await page.locator('.graph canvas').count() > 0, true, 'cytoscape drew the graph');
  // Edge details name both ends' SPIFFE identities (the demo runs with mTLS).
  await page.locator('table[aria-label="Edges between workloads"] tbody tr', { hasText: 'reviews-v3' }).filter({ hasText: 'ratings-v1' }).getByRole('button', { name: 'details' }).click();
  await page.waitForFunction(() => /^spiffe:/.test(document.querySelector('dd.identity-destination')?.textContent ?? ''));
  assert.match(await page.locator('dd.identity-source').textContent() ?? '', /^spiffe:\/\/[^/]+\/ns\/default\/sa\/\S+$/);
  assert.match(await page.locator('dd.identity-destination').textContent() ?? '', /^spiffe:\/\/[^/]+\/ns\/default\/sa\/\S+$/);
  await page.waitForTimeout(500); // let the layout settle for the screenshot
  await page.screenshot({ path: path.join(SHOTS, 'topology.png'), fullPage: true });

  phase('topology checked');
  // Config: an invalid weight is refused with the error next to its line.
  await page.goto(`${api}/#/config/HTTPRoute/default/reviews`);
  const editor = page.getByLabel('Resource YAML');
  await page.waitForFunction(() => (document.querySelector('textarea')?.value ?? '').includes('reviews-v2'));
  const original = await editor.inputValue();
  const bad = original.replace(/weight: 25/, 'weight: -5');
  assert.notEqual(bad, original);
  await editor.fill(bad);
  await page.getByRole('button', { name: /Review changes/ }).click();
  const note = page.locator('.notes .field-error');
  await note.waitFor();
  assert.match(await note.textContent() ?? '', /backendRefs\[1\]\.weight: must be >= 0/);
  const badLine = bad.split('\n').findIndex((l) => l.includes('weight: -5')) + 1;
  assert.equal(await note.getAttribute('data-line'), String(badLine), 'the error sits on the weight line');
  assert.equal(await page.locator('.gutter .err').textContent(), String(badLine));
  await page.screenshot({ path: path.join(SHOTS, 'config-error.png'), fullPage: true });

  // A valid canary step through the UI: dry-run diff first, then apply.
  const step = original.replace(/weight: 50/, 'weight: 20').replace(/weight: 25\n(\s+- group: ""\n\s+kind: Service\n\s+name: reviews-v3)/, 'weight: 40\n$1').replace(/(name: reviews-v3\n\s+port: 9080\n\s+weight: )25/, '$140');
  await editor.fill(step);
  await page.getByRole('button', { name: /Review changes/ }).click();
  await page.locator('pre.diff .add').first().waitFor();
  assert.match(await page.locator('pre.diff').textContent() ?? '', /weight: 20/);
  await page.screenshot({ path: path.join(SHOTS, 'config-diff.png'), fullPage: true });
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.getByText(/HTTPRoute default\/reviews configured/).waitFor();

  // The service page shows the split, and follows a change made elsewhere, live.
  await page.goto(`${api}/#/service/default/reviews`);
  await page.waitForFunction(() => /20%/.test(document.querySelector('li[data-backend="reviews-v1"]')?.textContent ?? ''));
  const route = (await json<{ spec: { rules: { backendRefs: { name: string; weight?: number }[] }[] } } & Record<string, unknown>>(`${api}/api/v1/resources/httproutes/default/reviews`)).body;
  const rule = route.spec.rules[route.spec.rules.length - 1]!;
  rule.backendRefs = rule.backendRefs.map((b) => ({ ...b, weight: b.name === 'reviews-v2' ? 90 : b.name === 'reviews-v3' ? 10 : 0 }));
  const applied = await json<unknown>(`${api}/api/v1/apply`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ apiVersion: route['apiVersion'], kind: 'HTTPRoute', metadata: { name: 'reviews', namespace: 'default' }, spec: route.spec }) });
  assert.equal(applied.status, 200, JSON.stringify(applied.body));
  await page.waitForFunction(() => /weight 90 \(90%\)/.test(document.querySelector('li[data-backend="reviews-v2"]')?.textContent ?? ''));
  await page.waitForTimeout(500); // the split bar animates its widths
  // The routes of reviews: its HTTPRoute's rows by backend, not "No routed traffic".
  await page.waitForFunction(() => document.querySelectorAll('table[aria-label="Routes of reviews"] tbody tr td a').length > 0);
  assert.match(await page.locator('table[aria-label="Routes of reviews"] tbody').textContent() ?? '', /default\/reviews\/rule-\d+\/match-\d+reviewsreviews-v\d/);
  // A success rate steady at a value reads on a 0..100% axis at most.
  const axis = await page.locator('figure.chart', { hasText: 'Success rate' }).textContent() ?? '';
  assert.ok([...axis.matchAll(/([\d.]+)%/g)].every((m) => Number(m[1]) <= 100), `success-rate axis: ${axis}`);
  // Why is reviews unhealthy: per version, v3 is the one failing (the demo's
  // reviews-v3 answers ~20% 503s) while v2 succeeds; the caller is productpage.
  const versions = await (await page.waitForFunction(() => {
    const out: Record<string, { sr: number; rps: number }> = {};
    for (const tr of Array.from(document.querySelectorAll('table[aria-label="Versions of reviews"] tbody tr'))) {
      const c = Array.from(tr.querySelectorAll('td')).map((td) => td.textContent ?? '');
      if (c.length >= 5) out[c[0]!] = { sr: parseFloat(c[2]!), rps: Number(c[3]) };
    }
    return out['v2'] && out['v3'] && out['v3'].rps > 0 ? out : null;
  })).jsonValue() as Record<string, { sr: number; rps: number }>;
  assert.ok(versions['v3']!.sr < 95 && versions['v3']!.sr > 50, `v3 fails some requests: ${JSON.stringify(versions)}`);
  assert.ok(versions['v2']!.sr > 99, `v2 succeeds: ${JSON.stringify(versions)}`);
  const callers = await page.locator('table[aria-label="Callers of reviews"] tbody').textContent() ?? '';
  assert.match(callers, /default\/productpage-v1reviews-v\d/, `callers: ${callers}`);
  // Latency chart: p50, p95 and p99 lines, ordered p50 <= p95 <= p99.
  const latency = page.locator('figure.chart', { hasText: 'Latency p50 / p95 / p99' });
  await page.waitForFunction(() => document.querySelectorAll('figure.chart polyline[data-series]').length >= 3);
  const legend = Object.fromEntries(await Promise.all(['p50', 'p95', 'p99'].map(async (q) => [q, parseFloat((await latency.locator(`li[data-series="${q}"]`).textContent() ?? '').replace(q, ''))] as const)));
  assert.ok(legend['p50']! > 0 && legend['p50']! <= legend['p95']! && legend['p95']! <= legend['p99']!, `latency legend: ${JSON.stringify(legend)}`);
  // Response classes over time: reviews serves 2xx and (v3's) 5xx.
  const codes = page.locator('figure.chart', { hasText: 'Responses per second by class' });
  await page.waitForFunction(() => document.querySelectorAll('figure.chart li[data-series="5xx"]').length > 0);
  const classRate = async (c: string): Promise<number> => parseFloat((await codes.locator(`li[data-series="${c}"]`).textContent() ?? '').replace(c, ''));
  assert.ok(await classRate('2xx') > 0 && await classRate('5xx') > 0, `2xx ${await classRate('2xx')}/s, 5xx ${await classRate('5xx')}/s`);
  assert.ok(await classRate('2xx') > await classRate('5xx'));
  // The time range picker changes the window the tables ask for.
  const asked = page.waitForResponse((res) => res.url().includes('/api/v1/metrics/workloads?window=15m'));
  await page.getByLabel('Time range').selectOption('15m');
  assert.equal((await asked).status(), 200);
  await page.getByRole('heading', { name: 'By version (last 15 minutes)' }).waitFor();
  assert.match(await page.locator('figure.chart').first().textContent() ?? '', /last 15 minutes/);
  await page.screenshot({ path: path.join(SHOTS, 'service.png'), fullPage: true });
  // productpage's callers are the ingress gateway: its route rows show too.
  await page.goto(`${api}/#/service/default/productpage`);
  await page.waitForFunction(() => document.querySelectorAll('table[aria-label="Routes of productpage"] tbody tr td a').length > 0);
  assert.match(await page.locator('table[aria-label="Routes of productpage"] tbody').textContent() ?? '', /productpage/);
  // ratings speaks gRPC: its responses are counted by gRPC status.
  await page.goto(`${api}/#/service/default/ratings`);
  await page.waitForFunction(() => document.querySelectorAll('figure.chart li[data-series^="grpc "]').length > 0);

  // Security in force on reviews: v3 STRICT by a selector MeshTLS, the others
  // on the mesh default; a DENY AuthorizationPolicy targeting the Service on
  // every workload; SPIFFE identities.
  for (const doc of [
    { apiVersion: 'trellis.dev/v1alpha1', kind: 'MeshTLS', metadata: { name: 'reviews-v3-strict', namespace: 'default' }, spec: { selector: { version: 'v3' }, mode: 'STRICT' } },
    { apiVersion: 'trellis.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'reviews-no-admin', namespace: 'default' }, spec: { targetRef: { kind: 'Service', name: 'reviews' }, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] } },
  ]) {
    const res = await json<unknown>(`${api}/api/v1/apply`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(doc) });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
  await page.goto(`${api}/#/service/default/reviews`);
  const secRow = (w: string) => page.locator('table[aria-label="Security of reviews"] tbody tr', { hasText: w });
  await page.waitForFunction(() => /STRICT/.test(Array.from(document.querySelectorAll('table[aria-label="Security of reviews"] tbody tr')).find((tr) => tr.textContent?.includes('reviews-v3'))?.textContent ?? ''));
  assert.match(await secRow('reviews-v3').textContent() ?? '', /STRICT port \d+ by MeshTLS default\/reviews-v3-strict/);
  assert.match(await secRow('reviews-v1').textContent() ?? '', /PERMISSIVE port \d+ \(mesh default\)/);
  for (const w of ['reviews-v1', 'reviews-v2', 'reviews-v3']) {
    const text = await secRow(w).textContent() ?? '';
    assert.match(text, /DENY default\/reviews-no-admin/, `${w}: ${text}`);
    assert.match(text, /spiffe:\/\/[^/]+\/ns\/default\/sa\//, `${w}: ${text}`);
  }
  assert.match(await page.locator('ul.policies').textContent() ?? '', /MeshTLS reviews-v3-strict — workloads with version=v3/);
  await page.screenshot({ path: path.join(SHOTS, 'service-security.png'), fullPage: true });
  const noService = await json<{ error: { code: string; message: string } }>(`${api}/api/v1/dashboard/security`);
  assert.equal(noService.status, 400);
  assert.equal(noService.body.error.message, 'service: is required');
  assert.equal((await json<unknown>(`${api}/api/v1/dashboard/security?service=nope`)).status, 404);

  phase('config and canary checked');
  // Live tap: requests stream in while the page is open.
  await page.goto(`${api}/#/tap?service=reviews`);
  await page.getByRole('button', { name: 'Start' }).click();
  await page.waitForFunction(() => document.querySelectorAll('tr.tap-row').length >= 5);
  assert.match(await page.locator('tr.tap-row').first().textContent() ?? '', /reviews/);
  // One row per request: both sidecars' views joined (out+in), never twice.
  await page.waitForFunction(() => Array.from(document.querySelectorAll('tr.tap-row td:nth-child(2)')).some((td) => td.textContent === 'out+in'));
  const sides = await page.locator('tr.tap-row td:nth-child(2)').allTextContents();
  assert.ok(sides.filter((s) => s === 'out+in').length >= sides.length / 2, `joined rows: ${sides.join(',')}`);
  await page.screenshot({ path: path.join(SHOTS, 'tap.png') });
  await page.getByRole('button', { name: 'Stop' }).click();

  // Proxies: every sidecar connected and synced.
  await page.goto(`${api}/#/proxies`);
  await page.waitForFunction(() => document.querySelectorAll('table[aria-label="Connected proxies"] tbody tr').length >= 6);
  assert.match(await page.locator('table[aria-label="Connected proxies"]').textContent() ?? '', /synced/);
  await page.screenshot({ path: path.join(SHOTS, 'proxies.png'), fullPage: true });

  // One proxy's page (linked from the list): productpage's sidecar sees the
  // three reviews endpoints healthy, shows the config version it acked and
  // its config_dump, and no NACK.
  const listed = (await json<{ items: { nodeId: string; workload: string; snapshotLabel: string | null; kind: string }[] }>(`${api}/api/v1/dashboard/proxies`)).body.items;
  const pp = listed.find((x) => x.workload === 'productpage-v1' && x.kind !== 'gateway');
  assert.ok(pp, `productpage's proxy: ${JSON.stringify(listed.map((x) => x.workload))}`);
  await page.locator(`a[href="#/proxy/${encodeURIComponent(pp.nodeId)}"]`).first().click();
  await page.getByRole('heading', { name: 'Proxy productpage-v1' }).waitFor();
  await page.waitForFunction(() => Array.from(document.querySelectorAll('table[aria-label="Endpoints this proxy sees"] tbody tr')).filter((tr) => /^reviews\.default\.svc:\d+/.test(tr.textContent ?? '') && /healthy/.test(tr.textContent ?? '')).length >= 3);
  assert.match(await page.locator('code.config-version').textContent() ?? '', /\S/);
  assert.match(await page.getByText(/No rejected config/).textContent() ?? '', /accepted every version/);
  await page.screenshot({ path: path.join(SHOTS, 'proxy.png'), fullPage: true });
  await page.locator('details summary', { hasText: 'config_dump' }).click();
  const dump = JSON.parse(await page.locator('pre.config-dump').textContent() ?? 'null') as { version?: string; config?: unknown } | null;
  assert.ok(dump && typeof dump.version === 'string' && dump.config, 'config_dump shows the config the proxy has');
  assert.equal((await json<unknown>(`${api}/api/v1/dashboard/proxy?node=nope`)).status, 404);
  assert.equal((await json<unknown>(`${api}/api/v1/dashboard/proxy`)).status, 400);

  phase('tap and proxies checked');
  assert.deepEqual(pageErrors, [], 'no script errors in the page');
});
