import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { randomUUID } from 'node:crypto';
import { etcdMissingReason, startEtcd, type EtcdServer } from '../../../test/util/etcd.ts';
import { runStoreConformance } from './conformance.ts';
import { openEtcdStore, type EtcdStore } from './etcd.ts';
import { StoreError, type Store } from './types.ts';

const missing = etcdMissingReason();
if (missing) {
  test('etcd store conformance', (t) => t.skip(missing));
} else {
  let etcd: EtcdServer;
  before(async () => {
    etcd = await startEtcd();
  });
  after(() => etcd?.stop());

  // One etcd for the whole file; every test gets its own key prefix.
  runStoreConformance('etcd', async () => {
    const prefix = `/t-${randomUUID()}`;
    const opened: Store[] = [];
    const open = async () => {
      const s = await openEtcdStore({ endpoints: [etcd.endpoint], prefix });
      opened.push(s);
      return s;
    };
    let current: EtcdStore = await open();
    return {
      store: current,
      async reopen() {
        await current.close();
        current = await open();
        return current;
      },
      compact: (rev) => current.compact(rev),
      writerArgs: ['etcd', etcd.endpoint, prefix],
      restartServer: () => etcd.restart(),
      async cleanup() {
        for (const s of opened) await s.close();
      },
    };
  }, { leaseSlackMs: 1_000 });

  test('etcd: catching up on a long backlog across a server crash delivers every event exactly once, in order', async (t) => {
    const prefix = `/t-${randomUUID()}`;
    const store = await openEtcdStore({ endpoints: [etcd.endpoint], prefix });
    t.after(() => store.close());
    const N = 1500; // more than etcd's 1000-revision batch
    const first = (await store.revision()) + 1;
    for (let i = 0; i < N; i += 100) {
      const batch = await Promise.all(Array.from({ length: Math.min(100, N - i) }, (_, j) => store.put(`/backlog/k${(i + j) % 37}`, String(i + j))));
      assert.ok(batch.every((r) => r.ok));
    }
    const last = await store.revision();
    const seen: number[] = [];
    let restarted: Promise<void> | null = null;
    let done: () => void = () => undefined;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const errors: string[] = [];
    const w = store.watch('/backlog/', { fromRevision: first }, {
      onEvent: (ev) => {
        seen.push(ev.revision);
        // Crash the server mid-delivery (the SIGKILL is sent synchronously).
        if (seen.length === 300) restarted = etcd.restart();
        if (ev.revision >= last) done();
      },
      onError: (e) => {
        errors.push(e.code);
        done();
      },
    });
    t.after(() => w.cancel());
    const timer = setTimeout(done, 25_000);
    await finished;
    clearTimeout(timer);
    await restarted;
    assert.deepEqual(errors, []);
    assert.equal(seen.length, last - first + 1, `saw ${seen.length} events, expected ${last - first + 1}`);
    for (let i = 0; i < seen.length; i++) assert.equal(seen[i], first + i, `event ${i} out of order or repeated`);
  });
}

test('openEtcdStore: unreachable etcd is StoreError unavailable; bad options are invalid', async () => {
  await assert.rejects(openEtcdStore({ endpoints: ['http://127.0.0.1:1'], callTimeoutMs: 2_000 }), (e: unknown) => e instanceof StoreError && e.code === 'unavailable');
  await assert.rejects(openEtcdStore({ endpoints: [] }), (e: unknown) => e instanceof StoreError && e.code === 'invalid' && /endpoints/.test(e.message));
});
