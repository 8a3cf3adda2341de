// HTTP/1.1 through the in-process proxy: routing, chunked bodies,
// keep-alive reuse, forwarding headers, timeouts, admin endpoints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { bootstrapDoc, getText, httpBackend, httpListener, portOf, request, routeConfig, runProxy, staticCluster } from './helpers.ts';

test('HTTP/1.1: routes by prefix, chunked request and response bodies, keep-alive reuse', async (t) => {
  const a = await httpBackend(t, 'a');
  const echo = await httpBackend(t, 'echo', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('x-seen-xff', String(req.headers['x-forwarded-for']));
      res.setHeader('x-seen-xfp', String(req.headers['x-forwarded-proto']));
      res.setHeader('x-seen-request-id', String(req.headers['x-request-id'] ?? ''));
      res.setHeader('x-seen-te', String(req.headers['transfer-encoding'] ?? ''));
      // Chunked response: written in pieces without a content-length.
      res.write('echo:');
      res.write(Buffer.concat(chunks));
      res.end();
    });
  });
  const p = await runProxy(t, bootstrapDoc({
    listeners: [httpListener('out', { routeConfigName: 'r' })],
    clusters: [staticCluster('a', [a.port]), staticCluster('echo', [echo.port])],
    routes: [routeConfig('r', [{ prefix: '/echo', cluster: 'echo' }, { cluster: 'a' }])],
  }));
  const port = portOf(p, 'out');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const sockets = new Set<unknown>();
  agent.on('free', (s) => sockets.add(s));

  const r1 = await request(port, { agent, path: '/hello' });
  assert.equal(r1.status, 200);
  assert.equal(r1.body, 'a /hello');
  assert.equal(r1.headers['x-backend'], 'a');

  const r2 = await request(port, { agent, method: 'POST', path: '/echo', body: [Buffer.from('one,'), Buffer.from('two')], headers: { 'x-forwarded-for': '10.0.0.1' } });
  assert.equal(r2.status, 200);
  assert.equal(r2.body, 'echo:one,two');
  assert.equal(r2.headers['x-seen-xff'], '10.0.0.1, 127.0.0.1');
  assert.equal(r2.headers['x-seen-xfp'], 'http');
  assert.match(String(r2.headers['x-seen-request-id']), /^[0-9a-f-]{36}$/);
  assert.equal(r2.headers['x-seen-te'], 'chunked');
  assert.equal(r2.headers['transfer-encoding'], 'chunked');

  for (let i = 0; i < 5; i++) assert.equal((await request(port, { agent, path: `/k${i}` })).body, `a /k${i}`);
  assert.equal(sockets.size, 1, 'one downstream connection reused for every request');
});

test('unrouted requests get the rescue edge 404; a dead cluster 502/503, marked synthetic', async (t) => {
  const p = await runProxy(t, bootstrapDoc({
    listeners: [httpListener('out', { routeConfigName: 'r' })],
    clusters: [staticCluster('dead', [1])],
    routes: [{ name: 'r', virtualHosts: [{ name: 'vh', domains: ['only.example'], routes: [{ match: { prefix: '/' }, route: { cluster: 'dead' } }] }] }],
  }));
  const port = portOf(p, 'out');
  const miss = await request(port, { agent: false, path: '/x' });
  assert.equal(miss.status, 404);
  assert.equal(miss.headers['x-trellis-proxy-error'], 'NO_ROUTE');
  const dead = await request(port, { agent: false, path: '/x', headers: { host: 'only.example' } });
  assert.ok(dead.status === 502 || dead.status === 503, `status ${dead.status}`);
  assert.ok(dead.headers['x-trellis-proxy-error']);
});

test('route timeout: a slow upstream gets 504 REQUEST_TIMEOUT; via is appended both ways', async (t) => {
  const slow = await httpBackend(t, 'slow', (req, res) => {
    const timer = setTimeout(() => res.end('late'), 2000);
    res.on('close', () => clearTimeout(timer));
    req.resume();
  });
  const fast = await httpBackend(t, 'fast', (req, res) => {
    res.setHeader('x-seen-via', String(req.headers.via));
    res.end('ok');
  });
  const p = await runProxy(t, bootstrapDoc({
    listeners: [httpListener('out', { routeConfigName: 'r', via: 'trellis' })],
    clusters: [staticCluster('slow', [slow.port]), staticCluster('fast', [fast.port])],
    routes: [routeConfig('r', [{ prefix: '/slow', cluster: 'slow', timeout: '0.15s' }, { cluster: 'fast' }])],
  }));
  const port = portOf(p, 'out');
  const start = performance.now();
  const r = await request(port, { agent: false, path: '/slow' });
  const took = performance.now() - start;
  assert.equal(r.status, 504);
  assert.equal(r.headers['x-trellis-proxy-error'], 'REQUEST_TIMEOUT');
  assert.ok(took >= 140 && took < 1500, `took ${took} ms`);
  const f = await request(port, { agent: false, path: '/', headers: { via: '1.1 edge' } });
  assert.equal(f.headers['x-seen-via'], '1.1 edge, trellis');
  assert.equal(f.headers.via, 'trellis');
});

test('admin: /ready, /live, /config_dump, /stats/prometheus, /clusters', async (t) => {
  const a = await httpBackend(t, 'a');
  const p = await runProxy(t, bootstrapDoc({
    listeners: [httpListener('out', { routeConfigName: 'r' })],
    clusters: [staticCluster('a', [a.port])],
    routes: [{ name: 'r', virtualHosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { safeRegex: { regex: '^/re.*' } }, route: { cluster: 'a' } }, { match: { prefix: '/' }, route: { cluster: 'a' } }] }] }],
  }));
  const admin = p.adminPort!;
  assert.equal((await getText(admin, '/ready')).status, 200);
  assert.equal((await getText(admin, '/live')).status, 200);
  for (let i = 0; i < 3; i++) assert.equal((await request(portOf(p, 'out'), { agent: false, path: '/regex' })).status, 200);

  const dump = JSON.parse((await getText(admin, '/config_dump')).body) as { version: string; boundPorts: Record<string, number>; config: { clusters: Record<string, unknown>; routeConfigs: Record<string, unknown> } };
  assert.equal(dump.version, 'v1');
  assert.equal(dump.boundPorts.out, portOf(p, 'out'));
  assert.ok(dump.config.clusters.a);
  assert.match(JSON.stringify(dump.config.routeConfigs), /"regex":"\/\^\(\?:\^\\\\\/re\.\*\)\$\/"/, 'RegExp shown as a string');

  const prom = await getText(admin, '/stats/prometheus');
  assert.match(String(prom.headers['content-type']), /text\/plain; version=0.0.4/);
  assert.match(prom.body, /^trellis_listener_requests_total\{listener="out",direction="outbound",cluster="a",code_class="2xx"\} 3$/m);
  assert.match(prom.body, /^trellis_listener_request_duration_seconds_count\{listener="out",direction="outbound",cluster="a"\} 3$/m);
  assert.match(prom.body, /^trellis_config_version_info\{version="v1"\} 1$/m);
  assert.match(prom.body, /^trellis_downstream_connections_total\{listener="out",protocol="http1"\} 3$/m);
  assert.match(prom.body, /^trellis_upstream_pool_connections\{cluster="a"\} \d+$/m);

  const clusters = JSON.parse((await getText(admin, '/clusters')).body) as { clusters: Array<{ name: string; endpoints: Array<{ port: number; health: string }> }> };
  const c = clusters.clusters.find((x) => x.name === 'a');
  assert.equal(c?.endpoints[0]?.port, a.port);
  assert.equal((await getText(admin, '/nope')).status, 404);
});

test('the listener idle timeout closes an idle keep-alive connection', async (t) => {
  const a = await httpBackend(t, 'a');
  const p = await runProxy(t, bootstrapDoc({
    listeners: [httpListener('out', { routeConfigName: 'r', idleTimeout: '0.15s' })],
    clusters: [staticCluster('a', [a.port])],
    routes: [routeConfig('r', [{ cluster: 'a' }])],
  }));
  const s = net.connect({ host: '127.0.0.1', port: portOf(p, 'out') });
  t.after(() => s.destroy());
  let got = '';
  s.setEncoding('utf8').on('data', (d: string) => (got += d));
  const start = performance.now();
  s.write('GET /idle HTTP/1.1\r\nhost: x\r\n\r\n');
  await once(s, 'close');
  const took = performance.now() - start;
  assert.match(got, /^HTTP\/1\.1 200/);
  assert.ok(took >= 100 && took < 3000, `closed after the idle timeout (${took} ms)`);
});
