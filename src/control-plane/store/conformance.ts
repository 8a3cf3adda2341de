// One conformance suite for every Store backend (sqlite, memory, etcd),
// registered from each backend's test file. Each test gets a fresh target
// (its own data dir, or its own key prefix on a shared etcd).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { StoreError, type Store, type WatchEvent } from './types.ts';

export interface ConformanceTarget {
  store: Store;
  /** Open the same data again (closing `store` first if it is still open). */
  reopen(): Promise<Store>;
  /** Drop history before `revision`. */
  compact(revision: number): Promise<void>;
  /** How crash-writer.ts opens the same data (absent: the crash test skips). */
  writerArgs?: string[];
  /** Restart the backing server keeping its data (etcd). */
  restartServer?(): Promise<void>;
  cleanup(): Promise<void>;
}

export interface ConformanceOptions {
  /** Extra time a backend needs to notice an expired lease (etcd checks every 500 ms). */
  leaseSlackMs?: number;
}

/** Collects watch events; `until` awaits a condition with a deadline. */
export class EventLog {
  readonly events: WatchEvent[] = [];
  readonly errors: StoreError[] = [];
  private waiters: Array<() => void> = [];

  readonly handlers = {
    onEvent: (ev: WatchEvent) => {
      this.events.push(ev);
      this.wake();
    },
    onError: (err: StoreError) => {
      this.errors.push(err);
      this.wake();
    },
  };

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async until(what: string, cond: () => boolean, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; events: ${JSON.stringify(this.events.map(brief))} errors: ${this.errors.map((e) => e.code).join(',')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

export function brief(ev: WatchEvent): string {
  return ev.type === 'put' ? `put ${ev.kv.key}=${ev.kv.value}@${ev.revision}` : `delete ${ev.key}@${ev.revision}`;
}

/** A watch without fromRevision starts when the backend says so (etcd:
 * asynchronously): write `key` until the watch reports it. */
async function waitUntilLive(store: Store, log: EventLog, key: string): Promise<void> {
  for (let i = 0; i < 50 && !log.events.some((e) => keyOf(e) === key); i++) {
    await put(store, key, `probe${i}`);
    await log.until(`the watch to see ${key}`, () => log.events.some((e) => keyOf(e) === key), 100).catch(() => undefined);
  }
  assert.ok(log.events.some((e) => keyOf(e) === key), 'watch never started');
}

function keyOf(ev: WatchEvent): string {
  return ev.type === 'put' ? ev.kv.key : ev.key;
}

async function put(store: Store, key: string, value: string): Promise<number> {
  const r = await store.put(key, value);
  assert.ok(r.ok, `put ${key}`);
  return r.revision;
}

export function runStoreConformance(name: string, open: () => Promise<ConformanceTarget>, opts: ConformanceOptions = {}): void {
  const slack = opts.leaseSlackMs ?? 1_000;

  async function fresh(t: TestContext): Promise<ConformanceTarget> {
    const target = await open();
    t.after(() => target.cleanup());
    return target;
  }

  describe(`Store conformance: ${name}`, () => {
    test('put, get, delete round-trip with revisions and versions', async (t) => {
      const { store } = await fresh(t);
      assert.equal(await store.get('/a'), null);
      const p1 = await store.put('/a', '1');
      assert.ok(p1.ok);
      assert.deepEqual(p1.kv, { key: '/a', value: '1', createRevision: p1.revision, modRevision: p1.revision, version: 1 });
      assert.deepEqual(await store.get('/a'), p1.kv);
      const p2 = await store.put('/a', '2');
      assert.ok(p2.ok);
      assert.ok(p2.revision > p1.revision);
      assert.deepEqual(p2.kv, { key: '/a', value: '2', createRevision: p1.revision, modRevision: p2.revision, version: 2 });
      assert.equal(await store.revision(), p2.revision);
      const d = await store.delete('/a');
      assert.ok(d.ok);
      assert.ok(d.revision > p2.revision);
      assert.deepEqual(d.prev, p2.kv);
      assert.equal(await store.get('/a'), null);
      const again = await store.delete('/a');
      assert.deepEqual(again, { ok: false, reason: 'not_found', current: null });
      assert.equal(await store.revision(), d.revision, 'a failed delete does not advance the revision');
      const recreated = await store.put('/a', '3');
      assert.ok(recreated.ok);
      assert.equal(recreated.kv.version, 1);
      assert.equal(recreated.kv.createRevision, recreated.revision);
    });

    test('bad input is rejected with code invalid', async (t) => {
      const { store } = await fresh(t);
      await assert.rejects(store.put('', 'x'), (e: unknown) => e instanceof StoreError && e.code === 'invalid');
      await assert.rejects(store.get(''), (e: unknown) => e instanceof StoreError && e.code === 'invalid');
      await assert.rejects(store.grantLease(0), (e: unknown) => e instanceof StoreError && e.code === 'invalid');
    });

    test('optimistic concurrency: create-only, update-if-revision, conflicts return the current value', async (t) => {
      const { store } = await fresh(t);
      const c = await store.put('/cas', 'a', { expectModRevision: 0 });
      assert.ok(c.ok);
      const dup = await store.put('/cas', 'b', { expectModRevision: 0 });
      assert.deepEqual(dup, { ok: false, reason: 'conflict', current: c.kv });
      const u = await store.put('/cas', 'c', { expectModRevision: c.revision });
      assert.ok(u.ok);
      const stale = await store.put('/cas', 'd', { expectModRevision: c.revision });
      assert.deepEqual(stale, { ok: false, reason: 'conflict', current: u.kv });
      const missing = await store.put('/nope', 'x', { expectModRevision: 5 });
      assert.deepEqual(missing, { ok: false, reason: 'conflict', current: null });
      const staleDel = await store.delete('/cas', { expectModRevision: c.revision });
      assert.deepEqual(staleDel, { ok: false, reason: 'conflict', current: u.kv });
      const del = await store.delete('/cas', { expectModRevision: u.revision });
      assert.ok(del.ok);
      assert.equal(await store.get('/cas'), null);
      // Racing create-only puts: exactly one wins.
      const racers = await Promise.all(Array.from({ length: 8 }, (_, i) => store.put('/race', `r${i}`, { expectModRevision: 0 })));
      assert.equal(racers.filter((r) => r.ok).length, 1);
    });

    test('list: sorted, prefix-isolated, at one consistent revision', async (t) => {
      const { store } = await fresh(t);
      await put(store, '/p/b', 'b');
      await put(store, '/p/a', 'a');
      await put(store, '/pq/z', 'z');
      const last = await put(store, '/p/a/x', 'ax');
      const l = await store.list('/p/');
      assert.deepEqual(l.items.map((kv) => kv.key), ['/p/a', '/p/a/x', '/p/b']);
      assert.equal(l.revision, last);
      assert.deepEqual((await store.list('/pq/')).items.map((kv) => kv.value), ['z']);
      assert.deepEqual((await store.list('/none/')).items, []);
      assert.deepEqual((await store.list('')).items.map((kv) => kv.key), ['/p/a', '/p/a/x', '/p/b', '/pq/z'], 'the empty prefix lists everything (and only this store\'s keys)');
      // A list taken after a write never misses it.
      for (let i = 0; i < 5; i++) {
        const rev = await put(store, `/p/n${i}`, String(i));
        const seen = await store.list('/p/');
        assert.ok(seen.revision >= rev);
        assert.ok(seen.items.some((kv) => kv.key === `/p/n${i}`));
      }
    });

    test('watch: live events in order, with prev, only under the prefix', async (t) => {
      const { store } = await fresh(t);
      const log = new EventLog();
      const w = store.watch('/w/', {}, log.handlers);
      t.after(() => w.cancel());
      await waitUntilLive(store, log, '/w/start');
      const seen = log.events.length;
      const r1 = await put(store, '/w/a', '1');
      await put(store, '/other', 'x');
      const r2 = await put(store, '/w/a', '2');
      const d = await store.delete('/w/a');
      assert.ok(d.ok);
      await log.until('3 more events', () => log.events.length >= seen + 3);
      const evs = log.events.slice(seen);
      assert.deepEqual(evs.map(brief), [`put /w/a=1@${r1}`, `put /w/a=2@${r2}`, `delete /w/a@${d.revision}`]);
      const [e1, e2, e3] = evs;
      assert.ok(e1?.type === 'put' && e1.prev === null);
      assert.ok(e2?.type === 'put' && e2.prev?.value === '1' && e2.kv.version === 2);
      assert.ok(e3?.type === 'delete' && e3.prev?.value === '2');
      assert.deepEqual(log.errors, []);
    });

    test('watch from a revision: history then live, each event exactly once; resumption after a disconnect', async (t) => {
      const { store } = await fresh(t);
      const revs: number[] = [];
      for (let i = 0; i < 5; i++) revs.push(await put(store, `/h/k${i % 2}`, `v${i}`));
      const from = revs[2] as number;
      const log = new EventLog();
      let w = store.watch('/h/', { fromRevision: from }, log.handlers);
      t.after(() => w.cancel());
      await log.until('history', () => log.events.length >= 3);
      assert.deepEqual(log.events.map((e) => e.revision), revs.slice(2));
      const live = await put(store, '/h/k9', 'live');
      await log.until('live event', () => log.events.length >= 4);
      assert.equal(log.events[3]?.revision, live);
      // "Disconnect": cancel, write while away, resume from last seen + 1.
      w.cancel();
      const missed = [await put(store, '/h/k1', 'away1'), await put(store, '/h/k2', 'away2')];
      const resumed = new EventLog();
      w = store.watch('/h/', { fromRevision: live + 1 }, resumed.handlers);
      const sentinel = await put(store, '/h/sentinel', 's');
      await resumed.until('sentinel', () => resumed.events.some((e) => e.revision === sentinel));
      assert.deepEqual(resumed.events.map((e) => e.revision), [...missed, sentinel], 'exactly the events >= fromRevision, once each, in order');
      assert.ok(log.events.every((e) => keyOf(e).startsWith('/h/')));
    });

    test('watch from a compacted revision fails with compacted', async (t) => {
      const target = await fresh(t);
      const { store } = target;
      const r1 = await put(store, '/c/a', '1');
      await put(store, '/c/a', '2');
      const r3 = await put(store, '/c/a', '3');
      await target.compact(r3);
      const log = new EventLog();
      const w = store.watch('/c/', { fromRevision: r1 }, log.handlers);
      t.after(() => w.cancel());
      await log.until('compacted error', () => log.errors.length > 0);
      assert.equal(log.errors[0]?.code, 'compacted');
      assert.deepEqual(log.events, []);
      // From the compaction point itself history is still there.
      const ok = new EventLog();
      const w2 = store.watch('/c/', { fromRevision: r3 }, ok.handlers);
      t.after(() => w2.cancel());
      await ok.until('event at the compaction revision', () => ok.events.length >= 1);
      assert.equal(ok.events[0]?.revision, r3);
      assert.deepEqual(ok.errors, []);
    });

    test('lease expiry deletes attached keys and emits delete events; a dead lease is refused', async (t) => {
      const { store } = await fresh(t);
      const lease = await store.grantLease(1, { autoKeepAlive: false });
      let lost = false;
      lease.onLost(() => {
        lost = true;
      });
      const log = new EventLog();
      const w = store.watch('/l/', {}, log.handlers);
      t.after(() => w.cancel());
      await waitUntilLive(store, log, '/l/plain');
      const p1 = await store.put('/l/a', 'x', { lease: lease.id });
      const p2 = await store.put('/l/b', 'y', { lease: lease.id });
      assert.ok(p1.ok && p2.ok);
      const started = Date.now();
      await log.until('lease expiry deletes', () => log.events.filter((e) => e.type === 'delete').length >= 2, 1_000 + slack + 3_000);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 500, `expired too early (${elapsed} ms)`);
      const deletes = log.events.filter((e) => e.type === 'delete');
      assert.deepEqual(deletes.map(keyOf).sort(), ['/l/a', '/l/b']);
      assert.equal(await store.get('/l/a'), null);
      assert.match((await store.get('/l/plain'))?.value ?? '', /^probe/, 'a key without the lease stays');
      await assert.rejects(store.put('/l/c', 'z', { lease: lease.id }), (e: unknown) => e instanceof StoreError && e.code === 'lease_not_found');
      await assert.rejects(lease.keepAlive(), (e: unknown) => e instanceof StoreError && e.code === 'lease_not_found');
      await log.until('onLost', () => lost, 3_000);
    });

    test('a kept-alive lease outlives its TTL; revoke deletes its keys at once', async (t) => {
      const { store } = await fresh(t);
      const auto = await store.grantLease(1);
      const manual = await store.grantLease(1, { autoKeepAlive: false });
      assert.ok((await store.put('/k/auto', 'a', { lease: auto.id })).ok);
      assert.ok((await store.put('/k/manual', 'm', { lease: manual.id })).ok);
      // Nothing to await here: the point is that nothing happens for > TTL.
      for (let i = 0; i < 5; i++) {
        await new Promise((r) => setTimeout(r, 500));
        await manual.keepAlive();
      }
      assert.equal((await store.get('/k/auto'))?.value, 'a');
      assert.equal((await store.get('/k/manual'))?.value, 'm');
      const log = new EventLog();
      const w = store.watch('/k/', { fromRevision: (await store.revision()) + 1 }, log.handlers);
      t.after(() => w.cancel());
      await auto.revoke();
      await manual.revoke();
      await log.until('two deletes', () => log.events.length >= 2);
      assert.deepEqual(log.events.map((e) => `${e.type} ${keyOf(e)}`), ['delete /k/auto', 'delete /k/manual']);
      assert.deepEqual((await store.list('/k/')).items, []);
    });

    test('close ends watches with closed and refuses further calls', async (t) => {
      const target = await fresh(t);
      const log = new EventLog();
      target.store.watch('/x/', {}, log.handlers);
      await target.store.close();
      await log.until('closed error', () => log.errors.length > 0);
      assert.equal(log.errors[0]?.code, 'closed');
      await assert.rejects(target.store.get('/x/a'), (e: unknown) => e instanceof StoreError && e.code === 'closed');
      await target.store.close(); // idempotent
    });

    test('reopen keeps every value and the revision', async (t) => {
      const target = await fresh(t);
      for (let i = 0; i < 10; i++) await put(target.store, `/r/k${i}`, `v${i}`);
      const before = await target.store.list('/r/');
      const store = await target.reopen();
      const after = await store.list('/r/');
      assert.deepEqual(after.items, before.items);
      assert.ok(after.revision >= before.revision);
      const next = await put(store, '/r/next', 'n');
      assert.ok(next > before.revision, 'revisions keep increasing after a reopen');
    });

    test('a running watch survives a server restart: nothing missed, nothing twice', async (t) => {
      const target = await fresh(t);
      if (!target.restartServer) {
        t.skip('backend has no server to restart');
        return;
      }
      const { store } = target;
      const log = new EventLog();
      const w = store.watch('/s/', { fromRevision: (await store.revision()) + 1 }, log.handlers);
      t.after(() => w.cancel());
      const before = [await put(store, '/s/a', '1'), await put(store, '/s/b', '2')];
      await log.until('events before the restart', () => log.events.length >= 2);
      await target.restartServer();
      const afterRevs: number[] = [];
      // The client reconnects on its own; the first writes may fail while it does.
      const deadline = Date.now() + 15_000;
      while (afterRevs.length < 3 && Date.now() < deadline) {
        try {
          afterRevs.push(await put(store, `/s/after${afterRevs.length}`, 'x'));
        } catch (err) {
          assert.ok(err instanceof StoreError && err.code === 'unavailable', String(err));
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      assert.equal(afterRevs.length, 3, 'writes work again after the restart');
      await log.until('events after the restart', () => log.events.length >= 5, 15_000);
      assert.deepEqual(log.events.map((e) => e.revision), [...before, ...afterRevs]);
      assert.deepEqual(log.errors, []);
    });

    test('every acknowledged write survives a SIGKILL of the writing process', async (t) => {
      const target = await fresh(t);
      if (!target.writerArgs) {
        t.skip('backend has no crash writer');
        return;
      }
      await target.store.close();
      const acked = await runCrashWriter(t, target.writerArgs, 40);
      assert.ok(acked.size >= 40);
      const check = async (store: Store, when: string) => {
        const { items } = await store.list('/crash/');
        const have = new Map(items.map((kv) => [kv.key, kv]));
        for (const [n, rev] of acked) {
          const kv = have.get(`/crash/k${n}`);
          assert.ok(kv, `${when}: acknowledged write k${n} (revision ${rev}) is missing`);
          assert.equal(kv.value, `v${n}`);
          assert.equal(kv.modRevision, rev);
        }
      };
      let store = await target.reopen();
      await check(store, 'after the writer was killed');
      if (target.restartServer) {
        await target.restartServer();
        store = await target.reopen();
        await check(store, 'after the server restarted');
      }
    });
  });
}

/** Run crash-writer.ts, SIGKILL it right after the `killAfter`th ack; returns every ack seen (n -> revision). */
async function runCrashWriter(t: TestContext, args: string[], killAfter: number): Promise<Map<number, number>> {
  const script = fileURLToPath(new URL('./crash-writer.ts', import.meta.url));
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const acked = new Map<number, number>();
  // 'close' comes after stdout has ended, so every ack line has been read.
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    const m = /^ack (\d+) (\d+)$/.exec(line);
    if (!m) return;
    acked.set(Number(m[1]), Number(m[2]));
    if (acked.size === killAfter) child.kill('SIGKILL');
  });
  await exited;
  clearTimeout(timer);
  assert.equal(child.signalCode, 'SIGKILL', `writer ended by itself: ${stderr}`);
  assert.ok(acked.size >= killAfter, `writer acknowledged only ${acked.size} writes: ${stderr}`);
  return acked;
}
