import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { etcdMissingReason, startEtcd, type EtcdServer } from '../../test/util/etcd.ts';
import { campaign, type Election } from './leader.ts';
import { openEtcdStore } from './store/etcd.ts';
import { openMemoryStore } from './store/memory.ts';
import { StoreError } from './store/types.ts';

function elected(e: Election, timeoutMs: number): Promise<number> {
  const started = Date.now();
  if (e.isLeader()) return Promise.resolve(0);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${e.identity} not elected within ${timeoutMs} ms`)), timeoutMs);
    e.onElected(() => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

function firstElected(es: Election[], timeoutMs: number): Promise<Election> {
  return Promise.any(es.map((e) => elected(e, timeoutMs).then(() => e)));
}

test('campaign rejects bad options with a clear error', () => {
  const store = openMemoryStore();
  try {
    assert.throws(() => campaign(store, 'Bad Name', { identity: 'a' }), (e: unknown) => e instanceof StoreError && e.code === 'invalid' && /name/.test(e.message));
    assert.throws(() => campaign(store, 'ok', { identity: '' }), /identity/);
    assert.throws(() => campaign(store, 'ok', { identity: 'a', ttlSeconds: 0 }), /ttlSeconds/);
  } finally {
    void store.close();
  }
});

test('single store: one leader at a time, resign hands over', async (t) => {
  const store = openMemoryStore({ leaseCheckMs: 50 });
  t.after(() => store.close());
  const a = campaign(store, 'cp', { identity: 'a', ttlSeconds: 1 });
  const b = campaign(store, 'cp', { identity: 'b', ttlSeconds: 1 });
  t.after(() => Promise.all([a.resign(), b.resign()]));
  const first = await firstElected([a, b], 3_000);
  const second = first === a ? b : a;
  assert.equal(second.isLeader(), false);
  assert.equal(second.term(), null);
  const firstTerm = first.term();
  assert.ok(typeof firstTerm === 'number');
  let deposed = false;
  first.onDeposed(() => {
    deposed = true;
  });
  await first.resign();
  assert.ok(deposed);
  const took = await elected(second, 3_000);
  assert.ok(took < 1_000, `handover after resign took ${took} ms`);
  assert.equal(first.term(), null);
  assert.ok((second.term() ?? 0) > (firstTerm ?? Infinity), 'terms only grow');
  assert.equal(second.leader(), second.identity);
});

const missing = etcdMissingReason();
describe('leader election on a real etcd', { skip: missing ?? false }, () => {
  let etcd: EtcdServer;
  before(async () => {
    etcd = await startEtcd();
  });
  after(() => etcd?.stop());

  test('two replicas: exactly one leader; killing it elects the other within ttl + slack', async (t) => {
    const prefix = `/t-${randomUUID()}`;
    const s1 = await openEtcdStore({ endpoints: [etcd.endpoint], prefix });
    const s2 = await openEtcdStore({ endpoints: [etcd.endpoint], prefix });
    t.after(() => Promise.all([s1.close(), s2.close()]));
    const ttl = 2;
    const r1 = campaign(s1, 'control-plane', { identity: 'replica-1', ttlSeconds: ttl, retryMs: 100 });
    const r2 = campaign(s2, 'control-plane', { identity: 'replica-2', ttlSeconds: ttl, retryMs: 100 });
    t.after(() => Promise.all([r1.resign(), r2.resign()]));
    const leader = await firstElected([r1, r2], 5_000);
    const follower = leader === r1 ? r2 : r1;
    const leaderStore = leader === r1 ? s1 : s2;
    // The follower learns who leads.
    for (let i = 0; i < 50 && follower.leader() !== leader.identity; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(follower.leader(), leader.identity);
    assert.equal(follower.isLeader(), false);
    // Stays stable for longer than a TTL (keep-alive works).
    await new Promise((r) => setTimeout(r, ttl * 1000 + 500));
    assert.equal(leader.isLeader(), true);
    assert.equal(follower.isLeader(), false);
    // Kill the leader: its client goes away without revoking the lease.
    const killedAt = Date.now();
    await leaderStore.close();
    assert.equal(leader.isLeader(), false, 'a leader whose store closed is deposed');
    await elected(follower, ttl * 1000 + 4_000);
    const took = Date.now() - killedAt;
    assert.ok(took <= ttl * 1000 + 2_000, `takeover took ${took} ms (ttl ${ttl} s)`);
    assert.ok(took >= 500, `takeover before the lease could expire (${took} ms)`);
  });

  test('a leader cut off from etcd steps down within its TTL, and is elected again when etcd is back', async (t) => {
    const prefix = `/t-${randomUUID()}`;
    const store = await openEtcdStore({ endpoints: [etcd.endpoint], prefix, callTimeoutMs: 1_000 });
    t.after(() => store.close());
    const ttl = 2;
    const e = campaign(store, 'cut-off', { identity: 'lonely', ttlSeconds: ttl, retryMs: 200 });
    t.after(() => e.resign());
    await elected(e, 5_000);
    const deposed = new Promise<number>((resolve) => {
      const at = Date.now();
      e.onDeposed(() => resolve(Date.now() - at));
    });
    etcd.pause();
    t.after(() => etcd.resume());
    const took = await Promise.race([deposed, new Promise<number>((r) => setTimeout(() => r(-1), ttl * 1000 + 3_000))]);
    etcd.resume();
    assert.ok(took >= 0, 'the leader never noticed it lost etcd');
    assert.ok(took <= ttl * 1000 + 300, `stepped down ${took} ms after etcd froze (ttl ${ttl} s): another replica could already lead`);
    assert.equal(e.isLeader(), false);
    await elected(e, 15_000);
  });

  test('resign hands over at once; a third campaigner takes the title', async (t) => {
    const prefix = `/t-${randomUUID()}`;
    const stores = await Promise.all([1, 2].map(() => openEtcdStore({ endpoints: [etcd.endpoint], prefix })));
    t.after(() => Promise.all(stores.map((s) => s.close())));
    const [sa, sb] = stores as [Awaited<ReturnType<typeof openEtcdStore>>, Awaited<ReturnType<typeof openEtcdStore>>];
    const a = campaign(sa, 'x', { identity: 'a', ttlSeconds: 5 });
    await elected(a, 5_000);
    const b = campaign(sb, 'x', { identity: 'b', ttlSeconds: 5 });
    t.after(() => b.resign());
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(b.isLeader(), false);
    const resignedAt = Date.now();
    await a.resign();
    await elected(b, 3_000);
    assert.ok(Date.now() - resignedAt < 2_000, 'no waiting for the 5 s TTL after a resign');
  });
});
