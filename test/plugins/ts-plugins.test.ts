// TypeScript plugins through a real proxy: the example plugin adds a header
// and blocks by a rule; body and trailers hooks; an HTTP call to a cluster;
// a throwing, a hanging and a looping plugin are contained (fail-closed /
// fail-open), counted in /stats/prometheus, and traffic keeps flowing; a
// plugin that does not load rejects the config and the old one serves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { buildProxyConfig } from '../../src/proxy/config/envoy.ts';
import { addr, cluster, hcmFilter, metric, startInboundProxy } from '../authz/kit.ts';
import { pluginFilter, startEchoApp } from './kit.ts';

const EXAMPLE = readFileSync(new URL('../../examples/plugins/typescript/header-and-block.ts', import.meta.url), 'utf8');

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: () => { method: string; path: string; headers: Record<string, string>; body: string };
}

function send(port: number, o: { method?: string; path?: string; headers?: Record<string, string>; body?: string; address?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: o.address ?? '127.0.0.1', port, method: o.method ?? 'GET', path: o.path ?? '/', headers: { host: 'app.shop', ...o.headers }, agent: false, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(o.body);
  });
}

test('the example plugin adds a header both ways and blocks a listed user with its own 403, counted', async (t) => {
  const app = await startEchoApp(t);
  const { proxy, port } = await startInboundProxy(t, app, [pluginFilter('guard', EXAMPLE, { configuration: JSON.stringify({ blockedUsers: ['mallory'] }) })]);
  const ok = await send(port, { path: '/orders', headers: { 'x-user': 'alice' } });
  assert.equal(ok.status, 200);
  assert.equal(ok.json().headers['x-plugin'], 'guard', 'the app saw the request header the plugin set');
  assert.equal(ok.headers['x-plugin'], 'guard', 'the caller saw the response header');
  assert.equal(ok.headers['x-app'], 'echo');
  const blocked = await send(port, { path: '/orders', headers: { 'x-user': 'mallory' } });
  assert.equal(blocked.status, 403);
  assert.equal(blocked.body, 'blocked by guard\n');
  assert.equal(blocked.headers['x-app'], undefined, 'the app was never asked');
  assert.equal(metric(proxy, 'trellis_plugin_blocked_total', { plugin: 'guard' }), 1);
  assert.ok(metric(proxy, 'trellis_plugin_cpu_seconds_total', { plugin: 'guard' }) > 0, 'CPU time is reported');
});

test('body and trailer hooks see the whole body and may replace it; the path can be rewritten; req.state spans the request', async (t) => {
  const app = await startEchoApp(t);
  const src = `
    definePlugin(() => ({
      onRequestHeaders(req) { req.state.asked = req.path; if (req.path === '/old') req.path = '/new'; },
      onRequestBody(body) { return new TextDecoder().decode(body).toUpperCase(); },
      onResponseHeaders(res, req) { res.headers.set('x-asked-for', String(req.state.asked)); },
      onResponseBody(body, res) { res.status = 201; const o = JSON.parse(new TextDecoder().decode(body)); return JSON.stringify({ seen: o.body, path: o.path, len: o.headers['content-length'] }); },
    }));`;
  const { port } = await startInboundProxy(t, app, [pluginFilter('shout', src)]);
  const r = await send(port, { method: 'POST', path: '/old', body: 'hello plugin' });
  assert.equal(r.status, 201);
  assert.deepEqual(JSON.parse(r.body), { seen: 'HELLO PLUGIN', path: '/new', len: '12' });
  assert.equal(r.headers['content-length'], String(Buffer.byteLength(r.body)));
  assert.equal(r.headers['x-asked-for'], '/old', 'req.state carries per-request values from one hook to the next');
});

test('an asynchronous hook calls a cluster (an auth service) and decides from its answer', async (t) => {
  const app = await startEchoApp(t);
  const auth = http.createServer((req, res) => {
    res.writeHead(req.headers['x-token'] === 'good' ? 200 : 401, { 'x-auth-user': 'alice' });
    res.end();
  });
  await new Promise<void>((r) => auth.listen(0, '127.0.0.1', r));
  t.after(() => auth.close());
  const src = `
    definePlugin((host) => ({
      async onRequestHeaders(req) {
        const r = await host.httpCall('auth', { path: '/check', headers: { 'x-token': req.headers.get('x-token') ?? '' } });
        if (r.status !== 200) return req.respond(401, 'auth said ' + r.status);
        req.headers.set('x-user', r.headers.get('x-auth-user'));
      },
    }));`;
  const built = buildProxyConfig({
    version: 'p1',
    listeners: [{ name: 'inbound', address: addr(0), trafficDirection: 'INBOUND', filterChains: [{ name: 'in', filters: [hcmFilter('inbound', 'app', [pluginFilter('ext-auth', src)])] }] }],
    clusters: [cluster('app', app), cluster('auth', (auth.address() as { port: number }).port)],
  }, { references: 'error' });
  assert.ok(built.ok, JSON.stringify(built));
  const { startProxy } = await import('../../src/proxy/proxy.ts');
  const r = await startProxy({ config: built.config, node: { id: 'p', cluster: 'p', locality: { region: '', zone: '', subZone: '' }, metadata: {} }, admin: false });
  assert.ok(r.ok, JSON.stringify(r));
  t.after(() => r.proxy.stop({ drainMs: 0 }));
  const port = r.proxy.ports.get('inbound')!;
  const good = await send(port, { headers: { 'x-token': 'good' } });
  assert.equal(good.status, 200);
  assert.equal(good.json().headers['x-user'], 'alice');
  const bad = await send(port, { headers: { 'x-token': 'bad' } });
  assert.equal(bad.status, 401);
  assert.equal(bad.body, 'auth said 401');
});

test('a throwing plugin: fail-closed answers PLUGIN_FAILED, fail-open lets the request through; both are counted', async (t) => {
  const app = await startEchoApp(t);
  const src = `definePlugin(() => ({ onRequestHeaders(req) { if (req.path === '/boom') throw new Error('kaput'); req.headers.set('x-ok', '1'); } }));`;
  const closed = await startInboundProxy(t, app, [pluginFilter('strict', src)]);
  const open = await startInboundProxy(t, app, [pluginFilter('lenient', src, { failOpen: true })]);
  const c = await send(closed.port, { path: '/boom' });
  assert.equal(c.status, 500);
  assert.equal(c.headers['x-trellis-proxy-error'], 'PLUGIN_FAILED');
  assert.match(c.body, /strict: Error: kaput/);
  const o = await send(open.port, { path: '/boom' });
  assert.equal(o.status, 200);
  assert.equal(o.json().headers['x-ok'], undefined, 'fail-open goes on unchanged');
  assert.equal((await send(closed.port, { path: '/fine' })).json().headers['x-ok'], '1', 'the next request is served normally');
  assert.equal(metric(closed.proxy, 'trellis_plugin_errors_total', { plugin: 'strict', reason: 'throw' }), 1);
  assert.equal(metric(open.proxy, 'trellis_plugin_errors_total', { plugin: 'lenient', reason: 'throw' }), 1);
});

test('a hook that never settles misses its deadline; the proxy answers and the plugin keeps serving', async (t) => {
  const app = await startEchoApp(t);
  const src = `definePlugin(() => ({ onRequestHeaders(req) { if (req.path === '/hang') return new Promise(() => {}); } }));`;
  const { proxy, port } = await startInboundProxy(t, app, [pluginFilter('hangs', src, { hookTimeout: '0.3s' })]);
  const r = await send(port, { path: '/hang' });
  assert.equal(r.status, 500);
  assert.match(r.body, /did not answer within 300 ms/);
  assert.equal((await send(port, { path: '/ok' })).status, 200);
  assert.equal(metric(proxy, 'trellis_plugin_errors_total', { plugin: 'hangs', reason: 'timeout' }), 1);
  assert.equal(metric(proxy, 'trellis_plugin_restarts_total', { plugin: 'hangs' }), 0, 'an idle worker answers the ping: no restart');
});

test('a runaway loop is stopped: the looping request fails, the worker restarts, other traffic never stalls', async (t) => {
  const app = await startEchoApp(t);
  const src = `definePlugin(() => ({ onRequestHeaders(req) { if (req.path === '/loop') for (;;) {} } }));`;
  const built = buildProxyConfig({
    version: 'loop-1',
    listeners: [
      { name: 'inbound', address: addr(0), trafficDirection: 'INBOUND', filterChains: [{ name: 'in', filters: [hcmFilter('inbound', 'app', [pluginFilter('loops', src, { hookTimeout: '1s' })])] }] },
      { name: 'plain', address: { socketAddress: { address: '127.0.0.2', portValue: 0 } }, trafficDirection: 'INBOUND', filterChains: [{ name: 'in', filters: [hcmFilter('plain', 'app', [])] }] },
    ],
    clusters: [cluster('app', app)],
  }, { references: 'error' });
  assert.ok(built.ok, JSON.stringify(built));
  const { startProxy } = await import('../../src/proxy/proxy.ts');
  const started = await startProxy({ config: built.config, node: { id: 'p', cluster: 'p', locality: { region: '', zone: '', subZone: '' }, metadata: {} }, admin: false });
  assert.ok(started.ok, JSON.stringify(started));
  const proxy = started.proxy;
  t.after(() => proxy.stop({ drainMs: 0 }));
  const port = proxy.ports.get('inbound')!;
  const plain = proxy.ports.get('plain')!;

  const looping = send(port, { path: '/loop' });
  let loopDone = false;
  void looping.then(() => (loopDone = true));
  // While the plugin's thread spins, the proxy's own thread serves other traffic.
  await new Promise((r) => setTimeout(r, 50));
  assert.equal((await send(plain, { path: '/x', address: '127.0.0.2' })).status, 200);
  assert.equal(loopDone, false, 'the plain request was answered while the plugin was still looping');
  const r = await looping;
  assert.equal(r.status, 500);
  assert.equal(r.headers['x-trellis-proxy-error'], 'PLUGIN_FAILED');
  // The worker is started again: requests through the plugin flow once more.
  const deadline = Date.now() + 10_000;
  let status = 0;
  while (Date.now() < deadline) {
    status = (await send(port, { path: '/after' })).status;
    if (status === 200) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(status, 200);
  assert.ok(metric(proxy, 'trellis_plugin_errors_total', { plugin: 'loops', reason: 'timeout' }) >= 1);
  assert.equal(metric(proxy, 'trellis_plugin_restarts_total', { plugin: 'loops' }), 1);
  const exposed = proxy.stats.registry.expose();
  assert.match(exposed, /trellis_plugin_errors_total\{plugin="loops",reason="timeout"\} \d/);
});

test('a plugin that fails to load rejects the config with the filter named; the running one keeps serving', async (t) => {
  const app = await startEchoApp(t);
  const { proxy, port } = await startInboundProxy(t, app, [pluginFilter('guard', EXAMPLE, { configuration: '{"blockedUsers":["mallory"]}' })]);
  for (const [bad, why] of [
    ['definePlugin(() => ({ onRequestHeaders( }));', /SyntaxError|TypeScript/],
    ['const x = 1;', /did not call definePlugin/],
    ['definePlugin(() => { throw new Error("no config"); });', /no config/],
  ] as const) {
    const built = buildProxyConfig({
      version: 'bad',
      listeners: [{ name: 'inbound', address: addr(0), trafficDirection: 'INBOUND', filterChains: [{ name: 'in', filters: [hcmFilter('inbound', 'app', [pluginFilter('broken', bad)])] }] }],
      clusters: [cluster('app', app)],
    }, { references: 'error' });
    assert.ok(built.ok);
    const r = await proxy.applyConfig(built.config);
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.errors.some((e) => e.includes('filter "envoy.filters.http.wasm"') && e.includes('plugin "broken"') && why.test(e)), JSON.stringify(r));
  }
  assert.equal(proxy.version, 'authz-1');
  assert.equal((await send(port, { headers: { 'x-user': 'mallory' } })).status, 403);
  assert.equal((await send(port)).headers['x-plugin'], 'guard');
});

test('config swaps: an unchanged plugin keeps its state; a changed one starts beside the old, which finishes its in-flight request', async (t) => {
  const app = await startEchoApp(t, { delayMs: 400 });
  const src = (v: number) => `
    definePlugin(() => {
      let n = 0;
      return {
        onRequestHeaders(req) { req.headers.set('x-count', String(++n)); },
        onResponseHeaders(res) { res.headers.set('x-version', '${v}'); },
      };
    });`;
  const cfg = (version: string, v: number) => {
    const b = buildProxyConfig({
      version,
      listeners: [{ name: 'inbound', address: addr(0), trafficDirection: 'INBOUND', filterChains: [{ name: 'in', filters: [hcmFilter('inbound', 'app', [pluginFilter('counter', src(v))])] }] }],
      clusters: [cluster('app', app)],
    }, { references: 'error' });
    assert.ok(b.ok, JSON.stringify(b));
    return b.config;
  };
  const events: string[] = [];
  const { startProxy } = await import('../../src/proxy/proxy.ts');
  const r = await startProxy({ config: cfg('c1', 1), node: { id: 'p', cluster: 'p', locality: { region: '', zone: '', subZone: '' }, metadata: {} }, admin: false, log: (e) => events.push(e) });
  assert.ok(r.ok, JSON.stringify(r));
  const proxy = r.proxy;
  t.after(() => proxy.stop({ drainMs: 0 }));
  const port = proxy.ports.get('inbound')!;
  assert.equal((await send(port)).json().headers['x-count'], '1');
  // The same plugin in a new config version: the running instance (and its count) stays.
  assert.ok((await proxy.applyConfig(cfg('c2', 1))).ok);
  assert.equal((await send(port)).json().headers['x-count'], '2');
  assert.equal(events.filter((e) => e === 'plugin_started').length, 1);
  // v2 while a request is in flight: it completes through v1's response hook; the next one meets v2.
  const inFlight = send(port);
  await new Promise((res) => setTimeout(res, 100));
  assert.ok((await proxy.applyConfig(cfg('c3', 2))).ok);
  const next = await send(port);
  const old = await inFlight;
  assert.equal(old.status, 200);
  assert.equal(old.headers['x-version'], '1');
  assert.equal(next.headers['x-version'], '2');
  assert.equal(next.json().headers['x-count'], '1', 'v2 is a fresh instance');
  assert.deepEqual(events.filter((e) => e.startsWith('plugin_')), ['plugin_started', 'plugin_started', 'plugin_retired']);
});

test('code from a URL is used when its sha256 matches and refused, naming the hashes, when it does not', async (t) => {
  const app = await startEchoApp(t);
  const code = Buffer.from(`definePlugin(() => ({ onRequestHeaders(req) { req.headers.set('x-from', 'url'); } }));`);
  const sha = createHash('sha256').update(code).digest('hex');
  let fetches = 0;
  const src = http.createServer((_req, res) => {
    fetches++;
    res.end(code);
  });
  await new Promise<void>((r) => src.listen(0, '127.0.0.1', r));
  t.after(() => src.close());
  const uri = `http://127.0.0.1:${(src.address() as { port: number }).port}/plugin.ts`;
  const remote = (sha256: string) => {
    const f = pluginFilter('remote', '') as { typedConfig: { config: { vmConfig: { code: object } } } };
    f.typedConfig.config.vmConfig.code = { remote: { httpUri: { uri, cluster: 'none', timeout: '5s' }, sha256 } };
    return f;
  };
  const { proxy, port } = await startInboundProxy(t, app, [remote(sha)]);
  assert.equal((await send(port)).json().headers['x-from'], 'url');
  const wrong = 'b'.repeat(64);
  const built = buildProxyConfig({
    version: 'wrong-sha',
    listeners: [{ name: 'inbound', address: addr(0), trafficDirection: 'INBOUND', filterChains: [{ name: 'in', filters: [hcmFilter('inbound', 'app', [remote(wrong)])] }] }],
    clusters: [cluster('app', app)],
  }, { references: 'error' });
  assert.ok(built.ok);
  const r = await proxy.applyConfig(built.config);
  assert.ok(!r.ok && r.errors.some((e) => e.includes(`has sha256 ${sha}, expected ${wrong}`)), JSON.stringify(r));
  assert.equal((await send(port)).json().headers['x-from'], 'url', 'the running plugin keeps serving');
  assert.equal(fetches, 2, 'fetched once per hash (the matching code is cached)');
});
