// proxy-wasm filters built with real SDKs (examples/plugins/wasm/: the
// AssemblyScript SDK from npm, the Rust SDK from crates.io; built into a
// cache outside the repository by scripts/build-test-wasm.ts) run unchanged
// in a real `trellis proxy` process: each adds a header both ways and
// answers 403 itself to the configured user, counted in its own metric on
// /stats/prometheus. A module that is not proxy-wasm is refused by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { bootstrapDoc, getText, httpListener, request, routeConfig, staticCluster } from '../proxy/helpers.ts';
import { testWasm, type Sdk } from '../../scripts/build-test-wasm.ts';
import { pluginFilter, startEchoApp, tinyProxyWasm } from './kit.ts';
import { addr, cluster, hcmFilter, metric } from '../authz/kit.ts';
import { buildProxyConfig } from '../../src/proxy/config/envoy.ts';
import { startProxy } from '../../src/proxy/proxy.ts';

const BIN = path.resolve(import.meta.dirname, '..', '..', 'bin', 'trellis.ts');

function withFilters(listener: object, filters: object[]): object {
  const l = listener as { filterChains: { filters: { typedConfig: { httpFilters: object[] } }[] }[] };
  const hcm = l.filterChains[0]!.filters[0]!.typedConfig;
  hcm.httpFilters = [...filters, ...hcm.httpFilters];
  return listener;
}

async function startProxyProcess(t: TestContext, doc: object): Promise<{ port: number; admin: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-wasm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'proxy.json');
  writeFileSync(file, JSON.stringify(doc));
  const child = spawn(process.execPath, [BIN, 'proxy', '--config', file, '--admin-port', '0'], { env: { ...process.env, NODE_NO_WARNINGS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((r) => child.once('exit', r));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`proxy did not start within 20 s: ${stderr}`)), 20_000);
    let buf = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let ev: { event?: string; listeners?: Record<string, number>; admin?: { port: number } };
        try {
          ev = JSON.parse(line);
        } catch {
          continue;
        }
        if (ev.event === 'started') {
          clearTimeout(timer);
          resolve({ port: ev.listeners!.out!, admin: ev.admin!.port });
        }
      }
    });
    void exited.then((code) => reject(new Error(`proxy exited ${String(code)}: ${stderr}`)));
  });
}

function metricValue(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

for (const [sdk, tag] of [['assemblyscript', 'wasm-as'], ['rust', 'wasm-rust']] as [Sdk, string][]) {
  test(`${sdk} SDK: the filter adds a header both ways and blocks the configured user, in a trellis proxy process`, async (t) => {
    const built = testWasm(sdk);
    if (!built.ok) {
      t.skip(built.reason);
      return;
    }
    const backends: string[] = [];
    const app = await startEchoApp(t);
    const filter = pluginFilter(`guard-${sdk}`, Buffer.alloc(0), { runtime: 'wasm', configuration: 'mallory' }) as { typedConfig: { config: { rootId: string; vmConfig: { code: object } } } };
    // The module by file, as an operator deploys it; the AssemblyScript SDK looks its root context up by root id.
    filter.typedConfig.config.vmConfig.code = { local: { filename: built.path } };
    filter.typedConfig.config.rootId = 'guard';
    const { port, admin } = await startProxyProcess(t, bootstrapDoc({
      listeners: [withFilters(httpListener('out', { routeConfigName: 'r' }), [filter])],
      clusters: [staticCluster('app', [app])],
      routes: [routeConfig('r', [{ cluster: 'app' }])],
    }));
    const ok = await request(port, { agent: false, headers: { 'x-user': 'alice' } });
    assert.equal(ok.status, 200);
    assert.equal(JSON.parse(ok.body).headers['x-plugin'], tag, 'the app saw the header the filter added');
    assert.equal(ok.headers['x-plugin'], tag, 'the caller saw the response header');
    backends.push(String(ok.headers['x-app']));
    const blocked = await request(port, { agent: false, headers: { 'x-user': 'mallory' } });
    assert.equal(blocked.status, 403);
    assert.equal(blocked.body, `blocked by ${tag}\n`);
    assert.equal(blocked.headers['x-app'], undefined, 'the app was never asked');
    const stats = (await getText(admin, '/stats/prometheus')).body;
    assert.equal(metricValue(stats, 'trellis_plugin_blocked_total', `plugin="guard-${sdk}"`), 1, stats.split('\n').filter((l) => l.includes('plugin')).join('\n'));
    assert.ok((metricValue(stats, 'trellis_plugin_cpu_seconds_total', `plugin="guard-${sdk}"`) ?? 0) > 0);
    assert.deepEqual(backends, ['echo']);
  });
}

test('a module that is not proxy-wasm (or not wasm) rejects the config, naming the filter', async (t) => {
  const app = await startEchoApp(t);
  const notWasm = Buffer.from('not a module');
  // A valid wasm module without the proxy-wasm ABI: (module) is 8 bytes.
  const bare = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  for (const [code, why] of [[notWasm, /not a WebAssembly module/], [bare, /not a proxy-wasm module/]] as const) {
    const built = buildProxyConfig({
      version: 'w1',
      listeners: [{ name: 'inbound', address: addr(0), trafficDirection: 'INBOUND', filterChains: [{ name: 'in', filters: [hcmFilter('inbound', 'app', [pluginFilter('bad', code, { runtime: 'wasm' })])] }] }],
      clusters: [cluster('app', app)],
    }, { references: 'error' });
    assert.ok(built.ok, JSON.stringify(built));
    const r = await startProxy({ config: built.config, node: { id: 'w', cluster: 'w', locality: { region: '', zone: '', subZone: '' }, metadata: {} }, admin: false });
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.errors.some((e) => e.includes('plugin "bad"') && why.test(e)), JSON.stringify(r));
  }
});

test('host features (Rust SDK): an HTTP call pauses the request and resumes or answers it; shared data, ticks, queues and metrics', async (t) => {
  const built = testWasm('rust-features');
  if (!built.ok) {
    t.skip(built.reason);
    return;
  }
  const app = await startEchoApp(t);
  const auth = http.createServer((req, res) => {
    res.writeHead(req.headers['x-token'] === 'good' ? 200 : 403, { 'x-auth-user': 'alice', 'content-length': '0' });
    res.end();
  });
  await new Promise<void>((r) => auth.listen(0, '127.0.0.1', r));
  t.after(() => auth.close());
  const cfg = buildProxyConfig({
    version: 'f1',
    listeners: [{ name: 'inbound', address: addr(0), trafficDirection: 'INBOUND', filterChains: [{ name: 'in', filters: [hcmFilter('inbound', 'app', [pluginFilter('features', readFileSync(built.path), { runtime: 'wasm' })])] }] }],
    clusters: [cluster('app', app), cluster('auth', (auth.address() as { port: number }).port)],
  }, { references: 'error' });
  assert.ok(cfg.ok, JSON.stringify(cfg));
  const r = await startProxy({ config: cfg.config, node: { id: 'f', cluster: 'f', locality: { region: '', zone: '', subZone: '' }, metadata: {} }, admin: false });
  assert.ok(r.ok, JSON.stringify(r));
  const proxy = r.proxy;
  t.after(() => proxy.stop({ drainMs: 0 }));
  const port = proxy.ports.get('inbound')!;

  const first = await request(port, { agent: false, path: '/x' });
  assert.equal(JSON.parse(first.body).headers['x-hits'], '1');
  assert.equal(JSON.parse((await request(port, { agent: false, path: '/x' })).body).headers['x-hits'], '2', 'shared data carries the count between requests');

  const good = await request(port, { agent: false, path: '/auth/orders', headers: { 'x-token': 'good' } });
  assert.equal(good.status, 200);
  assert.equal(JSON.parse(good.body).headers['x-auth-user'], 'alice', 'resumed after the HTTP call, with a header from its answer');
  const bad = await request(port, { agent: false, path: '/auth/orders', headers: { 'x-token': 'bad' } });
  assert.equal(bad.status, 401);
  assert.equal(bad.body, 'auth said 403\n');
  assert.equal(bad.headers['x-plugin'], 'wasm-rust-features');

  // Ticks every 20 ms go through the shared queue into a gauge and a histogram.
  const deadline = Date.now() + 10_000;
  let ticks = 0;
  while (Date.now() < deadline && ticks < 3) {
    await new Promise((res) => setTimeout(res, 100));
    ticks = metric(proxy, 'trellis_plugin_ticks', { plugin: 'features' });
  }
  assert.ok(ticks >= 3, `ticks gauge ${ticks}`);
  assert.ok(metric(proxy, 'trellis_plugin_tick_delay_ms_count', { plugin: 'features' }) >= 3);
});

test('a looping and a trapping wasm module are contained: the request fails closed, the module is replaced, traffic flows', async (t) => {
  const app = await startEchoApp(t);
  const many: Record<string, string> = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`x-h${i}`, '1']));
  for (const kind of ['loop', 'trap'] as const) {
    const cfg = buildProxyConfig({
      version: kind,
      listeners: [{ name: 'inbound', address: addr(0), trafficDirection: 'INBOUND', filterChains: [{ name: 'in', filters: [hcmFilter('inbound', 'app', [pluginFilter(kind, tinyProxyWasm(kind), { runtime: 'wasm', hookTimeout: '0.3s' })])] }] }],
      clusters: [cluster('app', app)],
    }, { references: 'error' });
    assert.ok(cfg.ok, JSON.stringify(cfg));
    const r = await startProxy({ config: cfg.config, node: { id: kind, cluster: kind, locality: { region: '', zone: '', subZone: '' }, metadata: {} }, admin: false });
    assert.ok(r.ok, JSON.stringify(r));
    const proxy = r.proxy;
    t.after(() => proxy.stop({ drainMs: 0 }));
    const port = proxy.ports.get('inbound')!;
    assert.equal((await request(port, { agent: false })).status, 200, `${kind}: a request with few headers passes`);
    const bad = await request(port, { agent: false, headers: many });
    assert.equal(bad.status, 500, `${kind}: ${bad.body}`);
    assert.equal(bad.headers['x-trellis-proxy-error'], 'PLUGIN_FAILED');
    assert.match(bad.body, kind === 'loop' ? /did not answer within 300 ms/ : /trapped/);
    // The module is replaced (at most once a second): requests flow again.
    const deadline = Date.now() + 10_000;
    let status = 0;
    while (Date.now() < deadline && status !== 200) {
      status = (await request(port, { agent: false })).status;
      if (status !== 200) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(status, 200, `${kind}: served again after the module was replaced`);
    assert.ok(metric(proxy, 'trellis_plugin_restarts_total', { plugin: kind }) + metric(proxy, 'trellis_plugin_errors_total', { plugin: kind, reason: 'crash' }) >= 1, proxy.stats.registry.expose().split('\n').filter((l) => l.includes('plugin')).join('\n'));
    assert.ok(metric(proxy, 'trellis_plugin_errors_total', { plugin: kind, reason: kind === 'loop' ? 'timeout' : 'throw' }) >= 1);
  }
});

test('bodies (Rust SDK, bodies: true): the module reads and replaces request and response bodies, or answers from a body callback', async (t) => {
  const built = testWasm('rust-features');
  if (!built.ok) {
    t.skip(built.reason);
    return;
  }
  const app = await startEchoApp(t);
  const cfg = buildProxyConfig({
    version: 'b1',
    listeners: [{ name: 'inbound', address: addr(0), trafficDirection: 'INBOUND', filterChains: [{ name: 'in', filters: [hcmFilter('inbound', 'app', [pluginFilter('bodies', readFileSync(built.path), { runtime: 'wasm', bodies: true })])] }] }],
    clusters: [cluster('app', app)],
  }, { references: 'error' });
  assert.ok(cfg.ok, JSON.stringify(cfg));
  const r = await startProxy({ config: cfg.config, node: { id: 'b', cluster: 'b', locality: { region: '', zone: '', subZone: '' }, metadata: {} }, admin: false });
  assert.ok(r.ok, JSON.stringify(r));
  t.after(() => r.proxy.stop({ drainMs: 0 }));
  const port = r.proxy.ports.get('inbound')!;
  const ok = await request(port, { agent: false, method: 'POST', path: '/upload', body: 'hello wasm' });
  assert.equal(ok.status, 200);
  assert.ok(ok.body.startsWith('wrapped:'), ok.body);
  const echoed = JSON.parse(ok.body.slice('wrapped:'.length)) as { body: string; headers: Record<string, string> };
  assert.equal(echoed.body, 'HELLO WASM', 'the app got the body the module wrote');
  assert.equal(echoed.headers['content-length'], '10');
  assert.equal(ok.headers['content-length'], String(Buffer.byteLength(ok.body)));
  const refused = await request(port, { agent: false, method: 'POST', path: '/upload', body: 'this is forbidden' });
  assert.equal(refused.status, 400);
  assert.equal(refused.body, 'forbidden body\n');
});
