import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runStoreConformance } from './conformance.ts';
import { openMemoryStore } from './memory.ts';
import { openSqliteStore, type SqliteStore } from './sqlite.ts';
import { StoreError, type Store } from './types.ts';

runStoreConformance('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-sqlite-'));
  let current: SqliteStore = await openSqliteStore(dir, { leaseCheckMs: 50 });
  const opened: Store[] = [current];
  return {
    store: current,
    async reopen() {
      await current.close();
      current = await openSqliteStore(dir, { leaseCheckMs: 50 });
      opened.push(current);
      return current;
    },
    compact: (rev) => current.compact(rev),
    writerArgs: ['sqlite', dir],
    async cleanup() {
      for (const s of opened) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}, { leaseSlackMs: 200 });

runStoreConformance('memory', async () => {
  const store = openMemoryStore({ leaseCheckMs: 50 });
  return {
    store,
    reopen: async () => store, // nothing survives a real reopen; the same instance stands in
    compact: (rev) => store.compact(rev),
    cleanup: () => store.close(),
  };
}, { leaseSlackMs: 200 });

test('sqlite: a second open of the same directory is refused while the first is open', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-sqlite-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = await openSqliteStore(dir);
  await assert.rejects(openSqliteStore(dir), (e: unknown) => e instanceof StoreError && e.code === 'unavailable' && /already open/.test(e.message));
  await a.close();
  const b = await openSqliteStore(dir);
  await b.close();
});

test('sqlite: history is bounded by count; old revisions become compacted', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-sqlite-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await openSqliteStore(dir, { historyRevisions: 20 });
  t.after(() => store.close());
  const first = await store.put('/b/k', '0');
  assert.ok(first.ok);
  for (let i = 1; i < 60; i++) assert.ok((await store.put('/b/k', String(i))).ok);
  const err = await new Promise<StoreError>((resolve) => {
    store.watch('/b/', { fromRevision: first.revision }, { onEvent: () => assert.fail('no event expected'), onError: resolve });
  });
  assert.equal(err.code, 'compacted');
  const recent = (await store.revision()) - 10;
  const got: number[] = [];
  await new Promise<void>((resolve, reject) => {
    const w = store.watch('/b/', { fromRevision: recent }, {
      onEvent: (ev) => {
        got.push(ev.revision);
        if (got.length === 11) {
          w.cancel();
          resolve();
        }
      },
      onError: reject,
    });
  });
  assert.equal(got[0], recent);
});
