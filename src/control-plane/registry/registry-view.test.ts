import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openMemoryStore } from '../store/memory.ts';
import { StoreError, type Store } from '../store/types.ts';
import { watchRegistry, type RegistryView } from './registry-view.ts';
import { register } from './registration.ts';
import { allocateVip } from './vip.ts';
import { workloadKey } from './workload.ts';

function collect(store: Store) {
  const views: RegistryView[] = [];
  let wake: (() => void) | null = null;
  const w = watchRegistry(store, (v) => {
    views.push(v);
    wake?.();
  });
  const until = async (what: string, cond: (v: RegistryView) => boolean) => {
    const deadline = Date.now() + 3_000;
    while (!views.some(cond)) {
      if (Date.now() > deadline) throw new Error(`no view with ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
    return views.find(cond) as RegistryView;
  };
  return { views, until, cancel: () => w.cancel(), current: () => w.current() };
}

test('watchRegistry: initial list, then every change; ignores foreign and malformed keys', async (t) => {
  const store = openMemoryStore();
  t.after(() => store.close());
  const r = await register(store, { name: 'a', address: '10.0.0.1', labels: { app: 'x' } }, { ttlSeconds: 30 });
  assert.ok(r.ok);
  const c = collect(store);
  t.after(c.cancel);
  const first = await c.until('a', (v) => v.workloads.length === 1);
  assert.equal(first.workloads[0]?.name, 'a');
  assert.equal(c.current()?.revision, first.revision);
  await store.put('/trellis/resources/Service/default/x', '{}');
  await store.put(workloadKey('default', 'junk'), 'not json');
  const vip = await allocateVip(store, 'default', 'x');
  assert.ok(vip.ok);
  const withVip = await c.until('vip', (v) => v.vips.get('default/x') === vip.ip);
  assert.deepEqual(withVip.workloads.map((w) => w.name), ['a'], 'malformed records are left out');
  await r.registration.deregister();
  const gone = await c.until('a gone', (v) => v.workloads.length === 0 && v.vips.size === 1);
  assert.ok(gone.revision > withVip.revision);
  for (let i = 1; i < c.views.length; i++) assert.ok((c.views[i] as RegistryView).revision >= (c.views[i - 1] as RegistryView).revision, 'views never go back in time');
});

test('watchRegistry: a compacted watch re-lists and misses nothing', async (t) => {
  const inner = openMemoryStore();
  t.after(() => inner.close());
  let failNext = true;
  // A store whose first watch reports `compacted` (as etcd does when the
  // list's revision was compacted before the watch started).
  const store: Store = Object.create(inner, {
    watch: {
      value: (prefix: string, opts: Parameters<Store['watch']>[1], handlers: Parameters<Store['watch']>[2]) => {
        if (failNext) {
          failNext = false;
          queueMicrotask(() => handlers.onError?.(new StoreError('compacted', 'test: compacted')));
          return { cancel() {} };
        }
        return inner.watch(prefix, opts, handlers);
      },
    },
  });
  const c = collect(store);
  t.after(c.cancel);
  await c.until('initial (empty) view', () => true);
  const r = await register(inner, { name: 'late', address: '10.0.0.2' }, { ttlSeconds: 30 });
  assert.ok(r.ok);
  await c.until('late', (v) => v.workloads.some((w) => w.name === 'late'));
  assert.equal(failNext, false);
  await r.registration.deregister();
});

test('watchRegistry: workloads removed together by one lease expiry arrive in one view', async (t) => {
  const store = openMemoryStore({ leaseCheckMs: 20 });
  t.after(() => store.close());
  const lease = await store.grantLease(1, { autoKeepAlive: false });
  for (const name of ['p', 'q', 'r']) {
    const res = await store.put(workloadKey('default', name), JSON.stringify({ name, namespace: 'default', address: '10.0.0.1', ports: [] }), { lease: lease.id });
    assert.ok(res.ok);
  }
  const c = collect(store);
  t.after(c.cancel);
  await c.until('three', (v) => v.workloads.length === 3);
  await c.until('none', (v) => v.workloads.length === 0);
  assert.ok(c.views.every((v) => v.workloads.length === 3 || v.workloads.length === 0), `saw a half-applied view: ${c.views.map((v) => v.workloads.length).join(',')}`);
});
