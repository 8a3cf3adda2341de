import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { createClusterManager } from './cluster-manager.ts';
import { fakePoolFactory, localities, NODE, proxyConfig, recorder, request } from './cluster-test-helpers.ts';
import { defaultPoolFactory } from './default-pool-factory.ts';
import { createPoolRegistry } from './pool-registry.ts';
import { seededRandom } from './balancer/testing.ts';

test('get() finds clusters by name; clusters() reports endpoints, load and pools', () => {
  const pools = createPoolRegistry(fakePoolFactory().create);
  const m = createClusterManager(proxyConfig('v1', { svc: { endpoints: localities(['10.0.0.1', '10.0.0.2']) } }), { node: NODE, pools, random: seededRandom(1), now: () => 0 });
  assert.equal(m.version, 'v1');
  assert.equal(m.get('nope'), undefined);
  m.get('svc')!.dispatch(request(), recorder().handler);
  const [snap] = m.clusters();
  assert.equal(snap!.name, 'svc');
  assert.equal(snap!.active, 1);
  assert.deepEqual(snap!.endpoints.map((e) => [e.key, e.health]), [['10.0.0.1:8080', 'healthy'], ['10.0.0.2:8080', 'healthy']]);
  assert.deepEqual(snap!.endpoints.map((e) => e.active).sort(), [0, 1]);
  const busy = snap!.endpoints.find((e) => e.active === 1)!;
  const idle = snap!.endpoints.find((e) => e.active === 0)!;
  assert.deepEqual(busy.pools.http1, { connections: 1, active: 1, pending: 0 });
  assert.equal(idle.pools.http1, null, 'no pool opened for an endpoint never used');
});

test('a config swap under load keeps unchanged pools, finishes every request, closes dropped pools', { timeout: 10_000 }, async () => {
  const fake = fakePoolFactory();
  const pools = createPoolRegistry(fake.create);
  let now = 0;
  const deps = { node: NODE, pools, random: seededRandom(2), now: () => now };
  const v1 = createClusterManager(proxyConfig('v1', { svc: { endpoints: localities(['10.0.0.1', '10.0.0.2']) }, gone: { endpoints: localities(['10.0.9.9']) } }), deps);
  // load both endpoints of v1 (round robin) and the cluster that v2 drops
  const inflight = [recorder(), recorder(), recorder()];
  v1.get('svc')!.dispatch(request(), inflight[0]!.handler);
  v1.get('svc')!.dispatch(request(), inflight[1]!.handler);
  v1.get('gone')!.dispatch(request(), inflight[2]!.handler);
  const poolOf = (host: string) => fake.created.find((p) => p.opts.host === host)!;
  const [a, b, g] = [poolOf('10.0.0.1'), poolOf('10.0.0.2'), poolOf('10.0.9.9')];

  const v2 = createClusterManager(proxyConfig('v2', { svc: { endpoints: localities(['10.0.0.2', '10.0.0.3']) } }), deps);
  assert.equal(v1.clusters().find((c) => c.name === 'svc')!.endpoints.length, 2, 'building v2 did not touch v1');
  assert.equal(v2.get('gone'), undefined);
  v1.retire();
  v1.retire();
  await Promise.resolve();
  assert.deepEqual([a.closeCalls, b.closeCalls, g.closeCalls], [1, 0, 1], 'dropped endpoints close, kept ones stay');
  assert.equal(pools.closing(), 2);

  // v2 reuses the kept pool (with its in-flight request and counters)
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const req = request();
    v2.get('svc')!.dispatch(req, recorder().handler);
    seen.add(req.ctx.upstreamEndpoint!);
  }
  assert.deepEqual([...seen].sort(), ['10.0.0.2:8080', '10.0.0.3:8080']);
  assert.equal(fake.created.filter((p) => p.opts.host === '10.0.0.2').length, 1, 'one pool for the kept endpoint');
  assert.equal(b.exchanges.length, 3);

  // the old requests finish normally, on closing pools and on the kept one
  now = 5;
  for (const p of [a, b, g]) p.exchanges[0]!.respond(200);
  await pools.settled();
  for (const r of inflight) assert.deepEqual(r.rec.events, ['start', 'headers', 'end']);
  assert.equal(pools.closing(), 0);
  const kept = v2.clusters()[0]!.endpoints.find((e) => e.key === '10.0.0.2:8080')!;
  assert.equal(kept.successes, 1, 'load counters carried over: v1 request counted on the shared endpoint');
  assert.equal(kept.active, 2);
  for (const p of fake.created) for (const ex of p.exchanges) ex.respond(200);
  v2.retire();
  await pools.settled();
  assert.equal(pools.list().length, 0);
});

test('a manager that fails to build releases what it acquired', () => {
  const pools = createPoolRegistry(fakePoolFactory().create);
  const cfg = proxyConfig('bad', { ok: { endpoints: localities(['10.0.0.1']) }, bad: { spec: { lbPolicy: 'nope' as never }, endpoints: localities(['10.0.0.2']) } });
  assert.throws(() => createClusterManager(cfg, { node: NODE, pools }), /cluster bad: lbPolicy "nope"/);
  assert.equal(pools.list().length, 0);
});

test('real sockets: round robin alternates between two node:http upstreams', { timeout: 10_000 }, async (t) => {
  const servers = await Promise.all(['one', 'two'].map(async (id) => {
    const s = http.createServer((_req, res) => res.end(id));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); }));
    return (s.address() as AddressInfo).port;
  }));
  const pools = createPoolRegistry(defaultPoolFactory);
  t.after(() => pools.destroy());
  const eps = [{ locality: NODE.locality, priority: 0, weight: 1, endpoints: servers.map((port) => ({ address: '127.0.0.1', port, weight: 1, health: 'healthy' as const })) }];
  const m = createClusterManager(proxyConfig('v1', { svc: { endpoints: eps } }), { node: NODE, pools });
  const bodies: string[] = [];
  for (let i = 0; i < 6; i++) {
    const r = recorder();
    m.get('svc')!.dispatch(request(), r.handler);
    await r.done;
    assert.equal(r.rec.status, 200, String(r.rec.error));
    bodies.push(r.rec.body);
  }
  for (let i = 1; i < bodies.length; i++) assert.notEqual(bodies[i], bodies[i - 1], bodies.join(','));
  assert.deepEqual(new Set(bodies), new Set(['one', 'two']));
  const snap = m.clusters()[0]!;
  assert.deepEqual(snap.endpoints.map((e) => [e.successes, e.active]), [[3, 0], [3, 0]]);
  assert.ok(snap.endpoints.every((e) => e.ewmaMs > 0));
  m.retire();
  await pools.settled();
});

test('max_requests counts the old version\'s in-flight requests during a swap', () => {
  const fake = fakePoolFactory();
  const pools = createPoolRegistry(fake.create);
  const spec = { circuitBreakers: { maxConnections: 10, maxPendingRequests: 10, maxRequests: 2, maxRetries: 1 } };
  const v1 = createClusterManager(proxyConfig('v1', { svc: { spec, endpoints: localities(['10.0.0.1']) } }), { node: NODE, pools });
  v1.get('svc')!.dispatch(request(), recorder().handler);
  v1.get('svc')!.dispatch(request(), recorder().handler);
  const v2 = createClusterManager(proxyConfig('v2', { svc: { spec, endpoints: localities(['10.0.0.1']) } }), { node: NODE, pools });
  v1.retire();
  const r = recorder();
  v2.get('svc')!.dispatch(request(), r.handler);
  assert.deepEqual(r.rec.events, ['error:OVERFLOW']);
  fake.created[0]!.exchanges[0]!.respond(200);
  const ok = recorder();
  v2.get('svc')!.dispatch(request(), ok.handler);
  assert.deepEqual(ok.rec.events, ['start']);
  assert.equal(v2.get('svc')!.active(), 2);
});
