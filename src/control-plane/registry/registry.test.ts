// Store-level registry behaviour on the memory store and on a real etcd.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test, type TestContext } from 'node:test';
import { etcdMissingReason, startEtcd, type EtcdServer } from '../../../test/util/etcd.ts';
import { openEtcdStore } from '../store/etcd.ts';
import { openMemoryStore } from '../store/memory.ts';
import type { Store } from '../store/types.ts';
import { register } from './registration.ts';
import { watchMeshState } from '../mesh-state.ts';
import type { MeshState } from '../translate/model.ts';
import { VIP_CLAIMS_PREFIX, allocateVip, releaseVip, syncVips, vipKey } from './vip.ts';
import { workloadKey } from './workload.ts';

/** Wait until the control plane's view of the store (mesh-state.ts, what translation reads) satisfies `cond`. */
async function viewUntil(t: TestContext, store: Store, what: string, cond: (v: MeshState) => boolean, timeoutMs = 5_000): Promise<MeshState> {
  let last: MeshState | undefined;
  let settle: ((v: MeshState) => void) | undefined;
  const seen = new Promise<MeshState>((resolve) => (settle = resolve));
  const w = await watchMeshState(store, (v) => {
    last = v;
    if (cond(v)) settle?.(v);
  }, { debounceMs: 1 });
  let timer: NodeJS.Timeout | undefined;
  t.after(() => {
    clearTimeout(timer);
    w.stop();
  });
  try {
    return await Promise.race([seen, new Promise<never>((_r, reject) => {
      timer = setTimeout(() => reject(new Error(`registry view never showed ${what} within ${timeoutMs} ms; last: ${JSON.stringify(last?.workloads.map((x) => x.name))}`)), timeoutMs);
    })]);
  } finally {
    clearTimeout(timer);
    w.stop();
  }
}

const names = (v: MeshState) => v.workloads.map((w) => `${w.namespace}/${w.name}`);

function registrySuite(backend: string, openStore: () => Promise<Store>, openSecond: () => Promise<Store>): void {
  async function fresh(t: TestContext): Promise<Store> {
    const s = await openStore();
    t.after(() => s.close());
    return s;
  }

  test(`${backend}: register, then the workload vanishes when heartbeats stop (TTL expiry)`, async (t) => {
    const store = await fresh(t);
    const bad = await register(store, { name: 'x' });
    assert.deepEqual(bad.ok ? null : bad.errors.map((e) => e.field), ['address']);
    const r = await register(store, { name: 'cart-1', namespace: 'shop', address: '10.1.0.1', ports: [{ port: 8080 }], labels: { app: 'cart' } }, { ttlSeconds: 1 });
    assert.ok(r.ok);
    const stored = await store.get(workloadKey('shop', 'cart-1'));
    assert.equal(JSON.parse(stored?.value ?? '{}').address, '10.1.0.1');
    await viewUntil(t, store, 'cart-1', (v) => names(v).includes('shop/cart-1'));
    let expired = false;
    r.registration.onExpired(() => {
      expired = true;
    });
    const started = Date.now();
    await viewUntil(t, store, 'cart-1 gone', (v) => !names(v).includes('shop/cart-1'), 6_000);
    assert.ok(Date.now() - started >= 400, 'not before the TTL');
    assert.equal(await store.get(workloadKey('shop', 'cart-1')), null);
    assert.equal((await r.registration.heartbeat()).ok, false);
    for (let i = 0; i < 40 && !expired; i++) await new Promise((res) => setTimeout(res, 50));
    assert.ok(expired, 'onExpired fired');
    // Registering again works.
    const again = await register(store, r.registration.workload, { ttlSeconds: 5 });
    assert.ok(again.ok);
    assert.ok(await store.get(workloadKey('shop', 'cart-1')));
    await again.registration.deregister();
  });

  test(`${backend}: heartbeats keep a workload registered; deregister removes it at once`, async (t) => {
    const store = await fresh(t);
    const r = await register(store, { name: 'web-1', address: '10.1.0.2', labels: { app: 'web' } }, { ttlSeconds: 1 });
    assert.ok(r.ok);
    for (let i = 0; i < 6; i++) {
      await new Promise((res) => setTimeout(res, 350));
      assert.deepEqual(await r.registration.heartbeat(), { ok: true });
    }
    assert.ok(await store.get(workloadKey('default', 'web-1')), 'still registered after > 2 TTLs of heartbeats');
    await viewUntil(t, store, 'web-1', (v) => names(v).includes('default/web-1'));
    const gone = viewUntil(t, store, 'web-1 gone', (v) => !names(v).includes('default/web-1'), 2_000);
    await new Promise((res) => setTimeout(res, 50));
    const before = Date.now();
    await r.registration.deregister();
    await gone;
    assert.ok(Date.now() - before < 1_000);
  });

  test(`${backend}: VIPs are stable, distinct, freed on deletion, and show in the registry view`, async (t) => {
    const store = await fresh(t);
    const a = await allocateVip(store, 'shop', 'cart');
    const b = await allocateVip(store, 'shop', 'checkout');
    assert.ok(a.ok && b.ok);
    assert.equal(a.created, true);
    assert.match(a.ip, /^240\.240\.\d+\.\d+$/);
    assert.notEqual(a.ip, b.ip);
    assert.deepEqual(await allocateVip(store, 'shop', 'cart'), { ok: true, ip: a.ip, created: false });
    const view = await viewUntil(t, store, 'vips', (v) => v.vips.size === 2);
    assert.equal(view.vips.get('shop/cart'), a.ip);
    assert.equal(await releaseVip(store, 'shop', 'cart'), true);
    assert.equal(await store.get(vipKey('shop', 'cart')), null);
    assert.equal(await store.get(VIP_CLAIMS_PREFIX + a.ip), null);
    assert.equal(await releaseVip(store, 'shop', 'cart'), false);
    // Exhaustion and bad ranges are results, not exceptions.
    const tiny = { range: '10.99.0.0/30' }; // two usable addresses
    assert.ok((await allocateVip(store, 'x', 's1', tiny)).ok);
    assert.ok((await allocateVip(store, 'x', 's2', tiny)).ok);
    const full = await allocateVip(store, 'x', 's3', tiny);
    assert.deepEqual(full.ok ? null : full.reason, 'exhausted');
    const badRange = await allocateVip(store, 'x', 's4', { range: '10.0.0.0/33' });
    assert.equal(badRange.ok ? null : badRange.reason, 'invalid');
    // syncVips: allocate for new services, free deleted ones.
    const res = await syncVips(store, [{ namespace: 'shop', name: 'checkout' }, { namespace: 'shop', name: 'new' }]);
    assert.deepEqual(res.allocated.map((s) => s.split('=')[0]), ['shop/new']);
    assert.deepEqual(res.released.sort(), ['x/s1', 'x/s2']);
    assert.equal((await store.list(VIP_CLAIMS_PREFIX)).items.length, 2);
  });

  test(`${backend}: two clients allocating concurrently never hand out one VIP twice`, async (t) => {
    const s1 = await fresh(t);
    const s2 = await openSecond();
    t.after(() => s2.close());
    const range = { range: '10.50.0.0/27' }; // 30 addresses for 20 services: many probe collisions
    const services = Array.from({ length: 20 }, (_, i) => `svc-${i}`);
    const results = await Promise.all(services.flatMap((name) => [allocateVip(s1, 'ns', name, range), allocateVip(s2, 'ns', name, range)]));
    const byService = new Map<string, Set<string>>();
    results.forEach((r, i) => {
      assert.ok(r.ok, JSON.stringify(r));
      const name = services[Math.floor(i / 2)] as string;
      const set = byService.get(name) ?? new Set<string>();
      set.add(r.ip);
      byService.set(name, set);
    });
    for (const [name, ips] of byService) assert.equal(ips.size, 1, `${name} got ${[...ips].join(', ')} from the two clients`);
    const ips = [...byService.values()].map((s) => [...s][0]);
    assert.equal(new Set(ips).size, services.length, 'every service has its own VIP');
    const claims = (await s1.list(VIP_CLAIMS_PREFIX)).items;
    assert.deepEqual(claims.map((kv) => kv.key.slice(VIP_CLAIMS_PREFIX.length)).sort(), [...ips].sort(), 'no claim left behind');
  });
}

let memory: Store | null = null;
registrySuite(
  'memory',
  async () => (memory = openMemoryStore({ leaseCheckMs: 50 })),
  async () => memory as Store, // one process: the "second client" shares the store (closing twice is fine)
);

const missing = etcdMissingReason();
describe('registry on a real etcd', { skip: missing ?? false }, () => {
  let etcd: EtcdServer;
  let prefix = '';
  before(async () => {
    etcd = await startEtcd();
  });
  after(() => etcd?.stop());
  registrySuite(
    'etcd',
    async () => {
      prefix = `/t-${randomUUID()}`;
      return openEtcdStore({ endpoints: [etcd.endpoint], prefix });
    },
    async () => openEtcdStore({ endpoints: [etcd.endpoint], prefix }),
  );
});
