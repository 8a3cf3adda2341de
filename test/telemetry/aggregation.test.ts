// Control-plane aggregation over real proxies: the scraper and embedded
// aggregator answer golden-metric queries through the API routes, and a real
// Prometheus (Debian's `prometheus`, started by the test with its own config
// scraping the same proxies) answers the same queries through PromQL; the
// two agree within tolerance on the same traffic, and a control plane started
// with `prometheusUrl` (`trellis control-plane --prometheus-url`) gives those
// answers through its API and `trellis stat`, and lists its proxies for
// Prometheus's HTTP service discovery.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { app, call, eventually, startSidecar } from './mesh-fixture.ts';
import { freePort } from '../proxy/helpers.ts';
import { Scraper } from '../../src/control-plane/telemetry/scraper.ts';
import { createGoldenMetrics, type GoldenMetrics, type StatRow } from '../../src/control-plane/telemetry/golden.ts';
import { metricsRoutes } from '../../src/control-plane/telemetry/metrics-routes.ts';
import { PrometheusSource } from '../../src/control-plane/telemetry/prometheus-source.ts';
import { Router } from '../../src/control-plane/api/router.ts';
import { httpMetrics } from '../../src/cli/metrics-client.ts';
import { captureIO } from '../../src/cli/command-io.ts';
import * as stat from '../../src/cli/commands/stat.ts';
import { startControlPlane } from '../../src/control-plane/control-plane.ts';
import { startXdsSource } from '../../src/proxy/xds-source.ts';

const REVIEWS = 'reviews.shop:9080';

async function mesh(t: TestContext) {
  const ratingsApp = await app(t, (req, res) => {
    req.resume();
    res.end('5');
  });
  const ratings = await startSidecar(t, { workload: 'ratings-v1', namespace: 'shop', appPort: ratingsApp });
  let reviewsOut = 0;
  const reviewsApp = await app(t, (req, res) => {
    req.resume();
    const url = req.url ?? '/';
    if (url.startsWith('/fail')) return void res.writeHead(500).end('boom');
    if (url.startsWith('/slow')) return void setTimeout(() => res.end('slow'), 40);
    if (url.startsWith('/chain')) {
      call(reviewsOut, 'ratings.shop:9080', '/r').then((r) => res.end(r.body), () => res.writeHead(502).end());
      return;
    }
    res.end('ok');
  });
  const reviews = await startSidecar(t, {
    workload: 'reviews-v1',
    namespace: 'shop',
    appPort: reviewsApp,
    upstreams: [{ service: 'ratings', namespace: 'shop', port: 9080, inboundPort: ratings.inboundPort!, workload: 'ratings-v1' }],
  });
  reviewsOut = reviews.outboundPort!;
  const web = await startSidecar(t, { workload: 'web', namespace: 'shop', upstreams: [{ service: 'reviews', namespace: 'shop', port: 9080, inboundPort: reviews.inboundPort!, workload: 'reviews-v1' }] });
  const targets = [web, reviews, ratings].map((s) => ({ address: `127.0.0.1:${s.adminPort}` }));
  return { web, reviews, ratings, targets };
}

/** 100 ok, 20 failing, 10 slow, 20 chained to ratings: in parallel batches. */
async function traffic(webPort: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const paths = [...Array(100).fill('/ok'), ...Array(20).fill('/fail'), ...Array(10).fill('/slow'), ...Array(20).fill('/chain')] as string[];
  for (let i = 0; i < paths.length; i += 10) await Promise.all(paths.slice(i, i + 10).map((p) => call(webPort, REVIEWS, p, {}, agent)));
  agent.destroy();
}

async function serveApi(t: TestContext, metrics: GoldenMetrics, scraper: Scraper): Promise<string> {
  const router = new Router();
  const streams = new Set<http.ServerResponse>();
  router.add(metricsRoutes({ metrics, scraper, streams }));
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

test('embedded aggregation: golden metrics per service, route, workload and edge through the API, SSE and the CLI', async (t) => {
  const { web, targets } = await mesh(t);
  const scraper = new Scraper({ targets: () => targets, intervalMs: 200 });
  t.after(() => scraper.stop());
  const t0 = Date.now();
  await scraper.scrapeOnce(); // baseline before any traffic
  await traffic(web.outboundPort!);
  await scraper.scrapeOnce();
  const watchedSeconds = (Date.now() - t0) / 1000;
  const golden = createGoldenMetrics(scraper.aggregator);
  const url = await serveApi(t, golden, scraper);
  const api = httpMetrics(url);

  const services = await api.services({ window: '1m' });
  const byName = new Map(services.map((s) => [s.name, s]));
  const rv = byName.get('reviews')!;
  assert.equal(rv.requests, 150);
  assert.equal(rv.successRate, 130 / 150);
  // Over the time the aggregator has watched (two scrapes around the
  // traffic), not the whole minute.
  assert.ok(rv.rps >= 150 / watchedSeconds, `rps ${rv.rps} over at most ${watchedSeconds} s`);
  assert.equal(rv.mtlsShare, 0);
  assert.equal(rv.meshed, 1);
  assert.ok(rv.latencyMs.p50! > 0 && rv.latencyMs.p50! <= rv.latencyMs.p95! && rv.latencyMs.p95! <= rv.latencyMs.p99!);
  assert.ok(rv.latencyMs.p99! >= 25, `p99 ${rv.latencyMs.p99} ms reflects the 40 ms responses`);
  assert.equal(byName.get('ratings')!.requests, 20);
  assert.equal(byName.get('ratings')!.successRate, 1);

  const edges = await api.edges({ window: '1m' });
  assert.deepEqual(edges.map((e) => [e.source.workload, e.destination.workload, e.requests]), [['reviews-v1', 'ratings-v1', 20], ['web', 'reviews-v1', 150]]);
  const routes = await api.routes({ window: '1m', service: 'reviews', namespace: 'shop' });
  assert.deepEqual(routes.map((r) => [r.name, r.requests, r.successRate]), [['shop/reviews/rule-0/match-0', 150, 130 / 150]]);
  const workloads = await api.workloads({ window: '5m', namespace: 'shop' });
  assert.deepEqual(workloads.map((w) => w.name), ['ratings-v1', 'reviews-v1']);
  const topo = await api.topology({ window: '1m' });
  assert.deepEqual(topo.nodes.map((n) => n.id), ['shop/ratings-v1', 'shop/reviews-v1', 'shop/web']);
  assert.equal(topo.edges.length, 2);
  assert.deepEqual((await api.targets()).map((x) => x.ok), [true, true, true]);

  const bad = await fetch(`${url}/api/v1/metrics/services?window=7m`);
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: { message: string } }).error.message, /window: must be one of 1m, 5m, 15m/);

  // Live stream: an event right away, another after the next scrape round.
  const ac = new AbortController();
  const res = await fetch(`${url}/api/v1/metrics/stream?window=1m`, { signal: ac.signal });
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const reader = res.body!.getReader();
  let text = '';
  const dec = new TextDecoder();
  scraper.start();
  await eventually(async () => {
    const { value } = await reader.read();
    text += dec.decode(value, { stream: true });
    return (text.match(/event: metrics/g) ?? []).length >= 2 ? true : undefined;
  }, 'two stream events');
  ac.abort();
  const first = /data: (.*)\n/.exec(text)![1]!;
  assert.equal((JSON.parse(first) as { services: StatRow[] }).services.find((s) => s.name === 'reviews')!.requests, 150);

  // The CLI against the API.
  const io = captureIO(200);
  assert.equal(await stat.exec(['-n', 'shop', '--server', url], io), 0);
  const lines = io.stdout.join('\n').split('\n');
  assert.match(lines[0]!, /^NAME\s+MESHED\s+SUCCESS\s+RPS\s+LATENCY_P50/);
  assert.match(lines.find((l) => l.startsWith('reviews'))!, /^reviews\s+1\s+86\.67%\s+[\d.]+rps/);
});

test('Prometheus-backed queries agree with the embedded aggregator on the same traffic', async (t) => {
  const bin = spawnSync('prometheus', ['--version'], { encoding: 'utf8' });
  if (bin.error) {
    t.skip('prometheus binary not found (apt-get install prometheus)');
    console.log('# SKIP: the prometheus binary is not installed');
    return;
  }
  const { web, targets } = await mesh(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-prom-'));
  const promPort = await freePort();
  fs.writeFileSync(
    path.join(dir, 'prometheus.yml'),
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      'scrape_configs:',
      '  - job_name: trellis',
      '    metrics_path: /stats/prometheus',
      '    static_configs:',
      `      - targets: [${targets.map((x) => `'${x.address}'`).join(', ')}]`,
      '',
    ].join('\n'),
  );
  const prom = spawn('prometheus', [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let promErr = '';
  prom.stderr.on('data', (c: Buffer) => (promErr = (promErr + String(c)).slice(-4000)));
  t.after(async () => {
    if (prom.exitCode === null) {
      prom.kill('SIGTERM');
      await Promise.race([once(prom, 'exit'), new Promise((r) => setTimeout(r, 3000))]);
      if (prom.exitCode === null) prom.kill('SIGKILL');
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const promUrl = `http://127.0.0.1:${promPort}`;
  await eventually(async () => ((await fetch(`${promUrl}/-/ready`).catch(() => undefined))?.status === 200 ? true : undefined), `prometheus to be ready (${promErr})`, 15_000);
  const source = new PrometheusSource({ url: promUrl });

  const scraper = new Scraper({ targets: () => targets, intervalMs: 1000 });
  t.after(() => scraper.stop());
  scraper.start();
  // Warm up: every series exists in both before the measured traffic.
  await call(web.outboundPort!, REVIEWS, '/ok');
  await call(web.outboundPort!, REVIEWS, '/fail');
  await call(web.outboundPort!, REVIEWS, '/chain');
  await call(web.outboundPort!, REVIEWS, '/slow');
  await eventually(async () => ((await source.query('count(trellis_requests_total)')).length > 0 && (await source.query('count(count_over_time(trellis_requests_total[1m]) >= 3)')).length > 0 ? true : undefined), 'prometheus to scrape the warm-up three times', 15_000);
  await traffic(web.outboundPort!);
  // Both have seen the final counts: 154 inbound at reviews.
  await eventually(async () => {
    const r = await source.query('sum(trellis_requests_total{direction="inbound",destination_workload="reviews-v1"})');
    return Number(r[0]?.value[1]) === 154 ? true : undefined;
  }, 'prometheus to scrape the traffic', 15_000);
  await eventually(async () => {
    const s = await createGoldenMetrics(scraper.aggregator).services({ window: '1m' });
    return s.find((x) => x.name === 'reviews')?.requests === 154 ? true : undefined;
  }, 'the aggregator to scrape the traffic', 15_000);
  // Two more Prometheus scrapes past the traffic: the longer the sampled
  // interval, the smaller increase()'s extrapolation.
  await new Promise((r) => setTimeout(r, 2200));

  // A subset Service no sidecar names (as reviews-v1 is): its row comes from
  // the workloads it selects, in both backends (PromQL: a =~ match, by ()).
  const members = () => [{ name: 'reviews-subset', namespace: 'shop', workloads: ['reviews-v1', 'reviews-v9'] }];
  const embedded = createGoldenMetrics(scraper.aggregator, { members });
  const viaProm = createGoldenMetrics(source, { members });
  const [a, b] = await Promise.all([embedded.services({ window: '1m' }), viaProm.services({ window: '1m' })]);
  assert.deepEqual(b.map((s) => s.name), a.map((s) => s.name));
  assert.ok(a.some((s) => s.name === 'reviews-subset'), 'the subset Service has a row');
  const near = (x: number | null, y: number | null, rel: number, what: string): void => {
    assert.ok(x !== null && y !== null, `${what}: both present (${x}, ${y})`);
    if (process.env.TRELLIS_TEST_DEBUG) console.error(what, x, y);
    assert.ok(Math.abs(x - y) <= rel * Math.max(Math.abs(x), Math.abs(y)), `${what}: embedded ${x} vs prometheus ${y}`);
  };
  for (const e of a) {
    const p = b.find((s) => s.name === e.name)!;
    // increase() extrapolates to the window's edges and misses a young
    // series' first value: seen 5-15% apart here. (Rates divide by the time
    // each backend has watched, which differs here: Prometheus starts
    // scraping seconds after it is ready.)
    near(e.requests, p.requests, 0.3, `${e.name} requests`);
    near(e.successRate, p.successRate, 0.05, `${e.name} success`);
    near(e.latencyMs.p50, p.latencyMs.p50, 0.3, `${e.name} p50`);
    near(e.latencyMs.p95, p.latencyMs.p95, 0.3, `${e.name} p95`);
    assert.equal(p.meshed, e.meshed, `${e.name} meshed`);
  }
  const [ea, eb] = await Promise.all([embedded.edges({ window: '1m' }), viaProm.edges({ window: '1m' })]);
  assert.deepEqual(eb.map((e) => `${e.source.workload}>${e.destination.workload}`), ea.map((e) => `${e.source.workload}>${e.destination.workload}`));
  const [ra, rb] = await Promise.all([embedded.routes({ window: '1m', service: 'reviews', namespace: 'shop' }), viaProm.routes({ window: '1m', service: 'reviews', namespace: 'shop' })]);
  assert.deepEqual(rb.map((r) => r.name), ra.map((r) => r.name));
  near(ra[0]!.successRate, rb[0]!.successRate, 0.05, 'route success');

  // The control plane in Prometheus mode: the answers of PrometheusSource
  // (compared with the embedded aggregator above) through its API and the
  // CLI, and no embedded scraper. Its store has no Services, so the
  // reference has no Service members either.
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-prom-cp-'));
  const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort: 0, log: () => {}, identity: false, dashboard: false, prometheusUrl: promUrl });
  t.after(async () => {
    await cp.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  assert.equal(cp.scraper, undefined);
  const reference = createGoldenMetrics(source);
  const viaCp = httpMetrics(cp.apiUrl);
  const [r, re, c, ce] = await Promise.all([reference.services({ window: '1m' }), reference.edges({ window: '1m' }), viaCp.services({ window: '1m' }), viaCp.edges({ window: '1m' })]);
  assert.deepEqual(c.map((s) => s.name), r.map((s) => s.name));
  assert.ok(c.some((s) => s.name === 'reviews'), JSON.stringify(c));
  for (const e of r) {
    const p = c.find((s) => s.name === e.name)!;
    near(e.rps, p.rps, 0.1, `control plane ${e.name} rps`);
    near(e.successRate, p.successRate, 0.02, `control plane ${e.name} success`);
    near(e.latencyMs.p95, p.latencyMs.p95, 0.1, `control plane ${e.name} p95`);
  }
  assert.deepEqual(ce.map((e) => `${e.source.workload}>${e.destination.workload}`), re.map((e) => `${e.source.workload}>${e.destination.workload}`));
  assert.deepEqual(ce.map((e) => `${e.source.workload}>${e.destination.workload}`), ea.map((e) => `${e.source.workload}>${e.destination.workload}`));
  const io = captureIO(200);
  assert.equal(await stat.exec(['-n', 'shop', '--server', cp.apiUrl], io), 0);
  assert.match(io.stdout.join('\n').split('\n').find((l) => l.startsWith('reviews'))!, /^reviews\s+1\s+8\d\.\d\d%\s+\d/);

  // Service discovery for that Prometheus: a connected proxy's advertised admin address.
  const admin = targets[0]!.address;
  const xds = startXdsSource({ serverUri: cp.xdsAddress, node: { id: 'web', cluster: 'web', metadata: { trellis: { kind: 'sidecar', namespace: 'shop', workload: 'web', admin } } } });
  t.after(() => xds.close());
  await eventually(async () => {
    const sd = (await (await fetch(`${cp.apiUrl}/api/v1/metrics/prometheus-sd`)).json()) as { targets: string[]; labels: Record<string, string> }[];
    return sd.length === 1 ? sd : undefined;
  }, 'the proxy in the service-discovery list', 10_000).then((sd) => assert.deepEqual(sd, [{ targets: [admin], labels: { __metrics_path__: '/stats/prometheus' } }]));
});
