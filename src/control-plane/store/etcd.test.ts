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
}

test('openEtcdStore: unreachable etcd is StoreError unavailable; bad options are invalid', async () => {
  await assert.rejects(openEtcdStore({ endpoints: ['http://127.0.0.1:1'], callTimeoutMs: 2_000 }), (e: unknown) => e instanceof StoreError && e.code === 'unavailable');
  await assert.rejects(openEtcdStore({ endpoints: [] }), (e: unknown) => e instanceof StoreError && e.code === 'invalid' && /endpoints/.test(e.message));
});
