import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fakePoolFactory, recorder, request } from './cluster-test-helpers.ts';
import { createPoolRegistry, poolKey } from './pool-registry.ts';
import { DEFAULT_POOL_OPTIONS } from './upstream/types.ts';
import type { PoolOptions } from './upstream/types.ts';

const opts = (port: number, over: Partial<PoolOptions> = {}): PoolOptions => ({ ...DEFAULT_POOL_OPTIONS, host: '10.0.0.1', port, ...over });

test('same endpoint and settings share one pool, created on first use', () => {
  const fake = fakePoolFactory();
  const reg = createPoolRegistry(fake.create);
  const a = reg.acquire('http1', opts(80));
  const b = reg.acquire('http1', opts(80));
  assert.equal(fake.created.length, 0, 'acquiring opens nothing');
  assert.equal(a.stats(), null);
  assert.equal(a.pool(), b.pool());
  assert.equal(fake.created.length, 1);
  assert.notEqual(reg.acquire('http2', opts(80)).pool(), a.pool(), 'protocol is part of the key');
  assert.notEqual(reg.acquire('http1', opts(80, { maxConnections: 3 })).pool(), a.pool(), 'settings are part of the key');
  assert.notEqual(reg.acquire('http1', opts(81)).pool(), a.pool());
  const tls = { servername: 'x' };
  assert.equal(poolKey('http1', opts(80, { tls })), poolKey('http1', opts(80, { tls })));
  assert.notEqual(poolKey('http1', opts(80, { tls })), poolKey('http1', opts(80, { tls: { servername: 'x' } })));
  assert.deepEqual(reg.list().find((p) => p.key === a.key)!.refs, 2);
});

test('the last release closes the pool gracefully, once', async () => {
  const fake = fakePoolFactory();
  const reg = createPoolRegistry(fake.create);
  const a = reg.acquire('http1', opts(80));
  const b = reg.acquire('http1', opts(80));
  a.pool();
  const pool = fake.created[0]!;
  const r = recorder();
  a.pool().dispatch(request(), r.handler);
  a.release();
  a.release(); // idempotent: must not drop b's reference
  assert.equal(pool.closeCalls, 0);
  b.release();
  assert.equal(reg.list().length, 0);
  await Promise.resolve();
  assert.equal(pool.closeCalls, 1);
  assert.equal(reg.closing(), 1, 'still finishing its in-flight request');
  let settled = false;
  const s = reg.settled().then(() => (settled = true));
  await new Promise((res) => setImmediate(res));
  assert.equal(settled, false);
  pool.exchanges[0]!.respond(200);
  await s;
  assert.deepEqual(r.rec.events, ['start', 'headers', 'end']);
  assert.equal(reg.closing(), 0);
  // a lease that never created its pool closes nothing
  reg.acquire('http1', opts(90)).release();
  assert.equal(fake.created.length, 1);
});

test('a straggler on a released lease uses the live pool, or is told there is none', () => {
  const fake = fakePoolFactory();
  const reg = createPoolRegistry(fake.create);
  const old = reg.acquire('http1', opts(80));
  const cur = reg.acquire('http1', opts(80));
  old.release();
  assert.equal(old.pool(), cur.pool());
  const gone = reg.acquire('http1', opts(81));
  gone.release();
  const r = recorder();
  gone.pool().dispatch(request(), r.handler);
  assert.deepEqual(r.rec.events, ['error:NO_HEALTHY_UPSTREAM']);
});

test('load counters are shared per (cluster, endpoint) while referenced', () => {
  const reg = createPoolRegistry(fakePoolFactory().create);
  const a = reg.acquireLoad('svc', '10.0.0.1:80');
  const b = reg.acquireLoad('svc', '10.0.0.1:80');
  assert.equal(a.load, b.load);
  assert.notEqual(reg.acquireLoad('other', '10.0.0.1:80').load, a.load);
  a.load.active = 3;
  a.release();
  assert.equal(reg.acquireLoad('svc', '10.0.0.1:80').load.active, 3);
  const c = reg.acquireLoad('svc', '10.0.0.2:80');
  c.load.active = 1;
  c.release();
  assert.equal(reg.acquireLoad('svc', '10.0.0.2:80').load.active, 0, 'dropped once unreferenced');
});

test('close() closes every pool; destroy() destroys open and closing pools', async () => {
  const fake = fakePoolFactory();
  const reg = createPoolRegistry(fake.create);
  reg.acquire('http1', opts(80)).pool();
  reg.acquire('http2', opts(80)).pool();
  await reg.close();
  assert.deepEqual(fake.created.map((p) => p.closeCalls), [1, 1]);
  const reg2 = createPoolRegistry(fake.create);
  const l = reg2.acquire('http1', opts(82));
  l.pool().dispatch(request(), recorder().handler);
  const open = reg2.acquire('http1', opts(83));
  open.pool();
  l.release(); // closing, with a request in flight
  await Promise.resolve();
  reg2.destroy();
  assert.deepEqual(fake.created.slice(2).map((p) => p.destroyCalls), [1, 1]);
});
