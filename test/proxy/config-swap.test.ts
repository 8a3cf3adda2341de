// Config replacement while serving: atomic swap under keep-alive load,
// rejected configs keep the last good one, listeners added and removed,
// graceful shutdown with an in-flight request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { bootstrapDoc, config, freePort, getText, httpBackend, httpListener, portOf, request, routeConfig, runProxy, staticCluster } from './helpers.ts';
import { startProxy } from '../../src/proxy/proxy.ts';

function twoRouteDocs(aPort: number, bPort: number, extraListeners: object[] = []): [object, object] {
  const clusters = [staticCluster('a', [aPort]), staticCluster('b', [bPort])];
  const listeners = [httpListener('out', { routeConfigName: 'r' }), ...extraListeners];
  return [
    bootstrapDoc({ listeners, clusters, routes: [routeConfig('r', [{ cluster: 'a' }])] }),
    bootstrapDoc({ listeners, clusters, routes: [routeConfig('r', [{ cluster: 'b' }])] }),
  ];
}

test('config replaced under load: 2000 keep-alive requests from 8 clients, 10 swaps, zero failures, both upstreams seen', async (t) => {
  const a = await httpBackend(t, 'a');
  const b = await httpBackend(t, 'b');
  const [docA, docB] = twoRouteDocs(a.port, b.port);
  const p = await runProxy(t, docA);
  const port = portOf(p, 'out');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  t.after(() => agent.destroy());

  const TOTAL = 2000;
  let sent = 0;
  let failed = 0;
  const seen = { a: 0, b: 0 } as Record<string, number>;
  const client = async (): Promise<void> => {
    while (sent < TOTAL) {
      sent++;
      try {
        const r = await request(port, { agent, path: '/x' });
        if (r.status !== 200) failed++;
        else seen[String(r.headers['x-backend'])]!++;
      } catch {
        failed++;
      }
    }
  };
  const swaps = (async () => {
    for (let i = 1; i <= 10; i++) {
      await new Promise((r) => setTimeout(r, 15));
      const r = await p.applyConfig(config(i % 2 === 1 ? docB : docA, `v${i + 1}`));
      assert.ok(r.ok, JSON.stringify(r));
    }
  })();
  await Promise.all([...Array.from({ length: 8 }, client), swaps]);
  assert.equal(failed, 0);
  assert.equal(seen.a! + seen.b!, TOTAL);
  assert.ok(seen.a! > 0 && seen.b! > 0, `both upstreams served: ${JSON.stringify(seen)}`);
  assert.equal(p.version, 'v11');
  // After the last swap (to A), a keep-alive connection's next request goes to A.
  assert.equal((await request(port, { agent, path: '/after' })).headers['x-backend'], 'a');
});

test('a rejected config leaves the last good one serving, with the errors named', async (t) => {
  const a = await httpBackend(t, 'a');
  const b = await httpBackend(t, 'b');
  const [docA] = twoRouteDocs(a.port, b.port);
  const p = await runProxy(t, docA);
  const port = portOf(p, 'out');
  // References a route configuration that does not exist.
  const bad = config(bootstrapDoc({ listeners: [httpListener('out', { routeConfigName: 'r' })], clusters: [staticCluster('a', [a.port])], routes: [routeConfig('r', [{ cluster: 'a' }])] }), 'bad');
  const broken = { ...bad, routeConfigs: new Map() };
  const r = await p.applyConfig(broken);
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.errors.join('\n') : '', /routeConfigName: route configuration "r" is not defined/);
  assert.equal(p.version, 'v1');
  assert.equal((await request(port, { agent: false })).headers['x-backend'], 'a');

  // A listener that cannot bind (port taken) is a rejection too.
  const blocker = net.createServer();
  await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', res));
  t.after(() => blocker.close());
  const taken = (blocker.address() as net.AddressInfo).port;
  const r2 = await p.applyConfig(config(bootstrapDoc({
    listeners: [httpListener('out', { routeConfigName: 'r' }), httpListener('extra', { routeConfigName: 'r', port: taken })],
    clusters: [staticCluster('b', [b.port])],
    routes: [routeConfig('r', [{ cluster: 'b' }])],
  }), 'v-taken'));
  assert.equal(r2.ok, false);
  assert.match(!r2.ok ? r2.errors.join('\n') : '', /listener extra: cannot listen/);
  assert.equal(p.version, 'v1');
  assert.equal(p.ports.has('extra'), false);
  assert.equal((await request(port, { agent: false })).headers['x-backend'], 'a');
  const prom = (await getText(p.adminPort!, '/stats/prometheus')).body;
  assert.match(prom, /^trellis_config_updates_total\{result="rejected"\} 2$/m);
});

test('listeners are added and removed by name; a removed listener stops accepting', async (t) => {
  const a = await httpBackend(t, 'a');
  const b = await httpBackend(t, 'b');
  const [docA] = twoRouteDocs(a.port, b.port);
  const [, docB2] = twoRouteDocs(a.port, b.port, [httpListener('second', { routeConfigName: 'r', port: await freePort() })]);
  const p = await runProxy(t, docA);
  const first = portOf(p, 'out');
  assert.ok((await p.applyConfig(config(docB2, 'v2'))).ok);
  assert.equal(portOf(p, 'out'), first, 'an unchanged listener keeps its socket');
  const second = portOf(p, 'second');
  assert.equal((await request(second, { agent: false })).headers['x-backend'], 'b');
  assert.ok((await p.applyConfig(config(docA, 'v3'))).ok);
  assert.equal(p.ports.has('second'), false);
  await assert.rejects(request(second, { agent: false }), /ECONNREFUSED|ECONNRESET|socket hang up/);
  assert.equal((await request(first, { agent: false })).headers['x-backend'], 'a');
});

test('graceful stop: /ready turns 503, an in-flight slow request completes, new connections are refused', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let started!: () => void;
  const inFlight = new Promise<void>((r) => (started = r));
  const slow = await httpBackend(t, 'slow', (req, res) => {
    started();
    req.resume();
    void gate.then(() => res.end('finished'));
  });
  const b = config(bootstrapDoc({ listeners: [httpListener('out', { routeConfigName: 'r' })], clusters: [staticCluster('s', [slow.port])], routes: [routeConfig('r', [{ cluster: 's' }])] }));
  const r = await startProxy({ config: b, node: { id: 'n', cluster: 'c', locality: { region: '', zone: '', subZone: '' }, metadata: {} }, admin: { address: '127.0.0.1', port: 0 } });
  assert.ok(r.ok);
  const p = r.proxy;
  t.after(() => p.stop({ drainMs: 0 }));
  const port = portOf(p, 'out');
  const admin = p.adminPort!;
  const agent = new http.Agent({ keepAlive: true });
  t.after(() => agent.destroy());
  const pending = request(port, { agent, path: '/slow' });
  await inFlight;
  const stopped = p.stop({ drainMs: 5000 });
  assert.equal((await getText(admin, '/ready')).status, 503);
  await assert.rejects(request(port, { agent: false }), /ECONNREFUSED|ECONNRESET|socket hang up/);
  release();
  const reply = await pending;
  assert.equal(reply.status, 200);
  assert.equal(reply.body, 'finished');
  assert.equal(reply.headers.connection, 'close', 'the draining HTTP/1 connection is closed after the response');
  await stopped;
  await assert.rejects(getText(admin, '/live'), /ECONNREFUSED/);
});

test('graceful stop destroys what is still open at the drain deadline', async (t) => {
  const hang = await httpBackend(t, 'hang', (req) => {
    req.resume();
  });
  const p = await runProxy(t, bootstrapDoc({ listeners: [httpListener('out', { routeConfigName: 'r' })], clusters: [staticCluster('h', [hang.port])], routes: [routeConfig('r', [{ cluster: 'h' }])] }));
  const pending = request(portOf(p, 'out'), { agent: false });
  pending.catch(() => {});
  await new Promise((r) => setTimeout(r, 50));
  const start = performance.now();
  await p.stop({ drainMs: 150 });
  const took = performance.now() - start;
  assert.ok(took >= 140 && took < 2000, `stopped after the deadline (${took} ms)`);
  await assert.rejects(pending);
});
