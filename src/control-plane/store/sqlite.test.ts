import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
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

test('sqlite: history older than historyMs is compacted (keeping the newest tenth of historyRevisions)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-sqlite-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await openSqliteStore(dir, { historyRevisions: 20, historyMs: 200, leaseCheckMs: 50 });
  t.after(() => store.close());
  const revs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await store.put('/age/k', String(i));
    assert.ok(r.ok);
    revs.push(r.revision);
  }
  const tryWatch = (from: number) =>
    new Promise<'ok' | 'compacted'>((resolve) => {
      const w = store.watch('/age/', { fromRevision: from }, {
        onEvent: () => {
          w.cancel();
          resolve('ok');
        },
        onError: (e) => resolve(e.code === 'compacted' ? 'compacted' : 'ok'),
      });
    });
  assert.equal(await tryWatch(revs[0] as number), 'ok');
  const deadline = Date.now() + 3_000;
  while ((await tryWatch(revs[0] as number)) === 'ok') {
    assert.ok(Date.now() < deadline, 'old history was never compacted');
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(await tryWatch(revs[4] as number), 'ok', 'the newest revisions are kept');
});

test('sqlite: another live process holding the directory locks us out; its death frees it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-sqlite-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const writer = fileURLToPath(new URL('./crash-writer.ts', import.meta.url));
  const child = spawn(process.execPath, [writer, 'sqlite', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('writer never became ready')), 10_000);
    lines.on('line', (l) => {
      if (l.startsWith('ack ')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  await ready;
  await assert.rejects(openSqliteStore(dir), (e: unknown) => e instanceof StoreError && e.code === 'unavailable' && new RegExp(`process ${child.pid}`).test(e.message));
  child.kill('SIGKILL');
  await once(child, 'exit');
  const store = await openSqliteStore(dir);
  assert.ok((await store.list('/crash/')).items.length > 0, 'the writer wrote before it died');
  await store.close();
});
