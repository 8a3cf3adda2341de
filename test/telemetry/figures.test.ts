// Every figure the CLI shows, against traffic the test generates: exactly 40
// requests at a fixed 20 rps from web to the service reviews, which a route
// splits over two backends as an HTTPRoute does (`/one` to reviews-v1,
// everything else to reviews-v2), through real sidecars. Then stat (rate over
// the time the aggregator has actually watched, not the whole 1m window),
// routes by parent service and by backend, edges, workloads, tap (one line
// per request, both proxies' views joined) and top (one count per request).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { app, call, startSidecar, type Sidecar } from './mesh-fixture.ts';
import { Scraper } from '../../src/control-plane/telemetry/scraper.ts';
import { createGoldenMetrics } from '../../src/control-plane/telemetry/golden.ts';
import { metricsRoutes } from '../../src/control-plane/telemetry/metrics-routes.ts';
import { Router } from '../../src/control-plane/api/router.ts';
import { tapRoutes } from '../../src/control-plane/telemetry/tap-proxy.ts';
import { captureIO } from '../../src/cli/command-io.ts';
import * as stat from '../../src/cli/commands/stat.ts';
import * as routesCommand from '../../src/cli/commands/routes.ts';
import * as edgesCommand from '../../src/cli/commands/edges.ts';
import * as tapCommand from '../../src/cli/commands/tap.ts';
import * as topCommand from '../../src/cli/commands/top.ts';
import type { TapRequest } from '../../src/cli/tap-join.ts';

const N = 40;
const RPS = 20;
const REVIEWS = 'reviews.shop.svc.cluster.local';

async function mesh(t: TestContext) {
  const backend = async (name: string): Promise<Sidecar> => {
    const port = await app(t, (req, res) => {
      req.resume();
      res.end(name);
    });
    return startSidecar(t, { workload: name, namespace: 'shop', appPort: port, service: REVIEWS });
  };
  const v1 = await backend('reviews-v1');
  const v2 = await backend('reviews-v2');
  const web = await startSidecar(t, {
    workload: 'web',
    namespace: 'shop',
    upstreams: [
      { service: 'reviews-v1', namespace: 'shop', port: 9080, inboundPort: v1.inboundPort!, workload: 'reviews-v1' },
      { service: 'reviews-v2', namespace: 'shop', port: 9080, inboundPort: v2.inboundPort!, workload: 'reviews-v2' },
    ],
    virtualHosts: [{
      name: 'reviews.shop.svc:9080',
      domains: ['reviews.shop:9080', 'reviews:9080'],
      routes: [
        { name: 'shop/reviews/rule-0/match-0', match: { prefix: '/one' }, route: { cluster: 'reviews-v1.shop.svc:9080' } },
        { name: 'shop/reviews/rule-1/match-0', match: { prefix: '/' }, route: { cluster: 'reviews-v2.shop.svc:9080' } },
      ],
    }],
  });
  const tokens = new Map([web, v1, v2].map((s) => [`127.0.0.1:${s.adminPort}`, s.proxy.adminToken]));
  return { v1, v2, web, admins: [...tokens.keys()], tokens };
}

/** Exactly N requests on a fixed schedule (one every 1000/RPS ms), alternating /one and /two. */
async function traffic(webPort: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const t0 = performance.now();
  const calls: Promise<{ status: number }>[] = [];
  for (let i = 0; i < N; i++) {
    const wait = t0 + (i * 1000) / RPS - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    calls.push(call(webPort, 'reviews.shop:9080', `${i % 2 === 0 ? '/one' : '/two'}?i=${i}`, {}, agent));
  }
  const results = await Promise.all(calls);
  agent.destroy();
  assert.deepEqual(new Set(results.map((r) => r.status)), new Set([200]));
  return (performance.now() - t0) / 1000;
}

async function serveApi(t: TestContext, scraper: Scraper, admins: string[], tokens: Map<string, string>): Promise<string> {
  const router = new Router();
  const streams = new Set<http.ServerResponse>();
  // The live tap as the control plane serves it (it joins both sides).
  router.add(tapRoutes({ targets: () => admins, token: (a) => tokens.get(a), streams }));
  // The Services as the control plane knows them: reviews over both
  // versions, and one Service per version (the Gateway API subset way).
  const members = [
    { name: 'reviews', namespace: 'shop', workloads: ['reviews-v1', 'reviews-v2'] },
    { name: 'reviews-v1', namespace: 'shop', workloads: ['reviews-v1'] },
    { name: 'reviews-v2', namespace: 'shop', workloads: ['reviews-v2'] },
  ];
  router.add(metricsRoutes({ metrics: createGoldenMetrics(scraper.aggregator, { members: () => members }), scraper }));
  const server = http.createServer((req, res) => void router.dispatch(req, res));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of streams) s.destroy();
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const num = (s: string): number => Number(/([\d.]+)rps/.exec(s)?.[1]);

test(`figures against known traffic: ${N} requests at ${RPS} rps through an HTTPRoute-style split`, { timeout: 60_000 }, async (t) => {
  const { v1, v2, web, admins, tokens } = await mesh(t);
  const scraper = new Scraper({ targets: () => admins.map((address) => ({ address })), intervalMs: 60_000 });
  t.after(() => scraper.stop());
  const url = await serveApi(t, scraper, admins, tokens);

  // Tap and top watch the traffic from every proxy (both sides of each request).
  const tapIo = captureIO();
  const topIo = captureIO(); // not a terminal: one table at the end
  const tapDone = tapCommand.exec(['-o', 'json', '--duration', '5s', '--server', url], tapIo);
  const topDone = topCommand.exec(['--duration', '5s', '--server', url], topIo);
  for (let i = 0; i < 200 && [web, v1, v2].some((s) => s.proxy.telemetry.tap.subscribers() < 2); i++) await new Promise((r) => setTimeout(r, 20));

  await scraper.scrapeOnce(); // the aggregator starts watching now: no series yet
  const seconds = await traffic(web.outboundPort!);
  await scraper.scrapeOnce();

  // stat: 40 requests over the ~2 s the aggregator has watched, not over 60 s.
  const statIo = captureIO(200);
  assert.equal(await stat.exec(['-n', 'shop', '--server', url, '-o', 'json'], statIo), 0);
  const services = (JSON.parse(statIo.stdout.join('')) as { items: { name: string; requests: number; rps: number }[] }).items;
  const reviews = services.find((s) => s.name === 'reviews')!;
  assert.equal(reviews.requests, N);
  assert.ok(reviews.rps > N / (seconds + 1.5) && reviews.rps <= RPS * 1.05, `reviews at ${RPS} rps reads ${reviews.rps} rps (traffic took ${seconds.toFixed(2)} s)`);
  // The version Services, which no sidecar names as the service it serves,
  // read their workloads' traffic (the dashboard showed 0.00 rps, 0 meshed).
  for (const v of ['reviews-v1', 'reviews-v2']) {
    const row = services.find((s) => s.name === v) as { requests: number; rps: number; meshed: number } | undefined;
    assert.ok(row, `${v} has a row`);
    assert.equal(row.requests, N / 2);
    assert.equal(row.meshed, 1);
    assert.ok(row.rps > N / 2 / (seconds + 1.5) && row.rps <= (RPS / 2) * 1.05, `${v}: ${row.rps} rps`);
  }
  const statTable = captureIO(200);
  assert.equal(await stat.exec(['-n', 'shop', '--server', url], statTable), 0);
  const statLine = statTable.stdout.join('\n').split('\n').find((l) => l.startsWith('reviews'))!;
  assert.ok(num(statLine) > 12, statLine);
  const wlIo = captureIO();
  assert.equal(await stat.exec(['workloads', '-n', 'shop', '--server', url, '-o', 'json'], wlIo), 0);
  const wls = (JSON.parse(wlIo.stdout.join('')) as { items: { name: string; requests: number; rps: number }[] }).items;
  assert.deepEqual(wls.map((w) => [w.name, w.requests]), [['reviews-v1', N / 2], ['reviews-v2', N / 2]]);
  for (const w of wls) assert.ok(w.rps > N / 2 / (seconds + 1.5) && w.rps <= (RPS / 2) * 1.05, `${w.name}: ${w.rps} rps`);

  // routes: by the parent service callers addressed, and by backend.
  const routesOf = async (service: string): Promise<[string, string, string, number][]> => {
    const io = captureIO();
    assert.equal(await routesCommand.exec([service, '-n', 'shop', '--server', url, '-o', 'json'], io), 0);
    return (JSON.parse(io.stdout.join('')) as { items: { name: string; parent: string; service: string; requests: number }[] }).items.map((r) => [r.name, r.parent, r.service, r.requests]);
  };
  assert.deepEqual(await routesOf('reviews'), [
    ['shop/reviews/rule-0/match-0', REVIEWS, 'reviews-v1.shop.svc.cluster.local', N / 2],
    ['shop/reviews/rule-1/match-0', REVIEWS, 'reviews-v2.shop.svc.cluster.local', N / 2],
  ]);
  assert.deepEqual(await routesOf('reviews-v2'), [['shop/reviews/rule-1/match-0', REVIEWS, 'reviews-v2.shop.svc.cluster.local', N / 2]]);
  const routesTable = captureIO(200);
  assert.equal(await routesCommand.exec(['reviews', '-n', 'shop', '--server', url], routesTable), 0);
  assert.match(routesTable.stdout.join('\n'), /^shop\/reviews\/rule-0\/match-0\s+reviews\s+reviews-v1\s+100\.00%\s+[\d.]+rps/m);

  // edges: web -> each backend, half the traffic each.
  const edgesIo = captureIO();
  assert.equal(await edgesCommand.exec(['-n', 'shop', '--server', url, '-o', 'json'], edgesIo), 0);
  const edges = (JSON.parse(edgesIo.stdout.join('')) as { items: { source: { workload: string }; destination: { workload: string }; requests: number; rps: number }[] }).items;
  assert.deepEqual(edges.map((e) => [e.source.workload, e.destination.workload, e.requests]), [['web', 'reviews-v1', N / 2], ['web', 'reviews-v2', N / 2]]);
  for (const e of edges) assert.ok(e.rps > N / 2 / (seconds + 1.5) && e.rps <= (RPS / 2) * 1.05, `edge ${e.destination.workload}: ${e.rps} rps`);

  // tap: one line per request, with the caller's and the callee's views.
  assert.equal(await tapDone, 0);
  const lines = tapIo.stdout.map((l) => JSON.parse(l) as TapRequest);
  assert.equal(lines.length, N, `${lines.length} tap lines for ${N} requests`);
  assert.ok(lines.every((r) => r.client?.direction === 'outbound' && r.server?.direction === 'inbound' && r.attempts === 1), 'every line joins both sides');
  assert.deepEqual(new Set(lines.map((r) => r.request_id)).size, N);
  assert.equal(lines.filter((r) => r.server!.destination_workload === 'reviews-v1').length, N / 2);

  // top: one count per request.
  assert.equal(await topDone, 0);
  assert.equal(topIo.stdout.length, 1);
  const rows = topIo.stdout[0]!.split('\n');
  assert.match(rows.find((l) => l.includes('/one'))!, /^shop\/web\s+shop\/reviews-v1\s+GET\s+reviews\.shop:9080\/one\s+20\s+100\.00%/);
  assert.match(rows.find((l) => l.includes('/two'))!, /^shop\/web\s+shop\/reviews-v2\s+GET\s+reviews\.shop:9080\/two\s+20\s+100\.00%/);
});
