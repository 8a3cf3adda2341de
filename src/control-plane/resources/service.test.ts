import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openMemoryStore } from '../store/memory.ts';
import { createResourceService, type ResourceEvent } from './service.ts';
import { parseLabelSelector } from '../../api/label-selector.ts';

const route = (backends: string[], extra: Record<string, unknown> = {}) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name: 'reviews', ...extra },
  spec: { parentRefs: [{ group: '', kind: 'Service', name: 'reviews' }], rules: [{ backendRefs: backends.map((name) => ({ name, port: 9080 })) }] },
});
const service = (name: string, labels: Record<string, string> = {}) => ({
  apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name, labels }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 9080 }] },
});

function setup(t: { after(fn: () => unknown): void }) {
  const store = openMemoryStore();
  t.after(() => store.close());
  return { store, svc: createResourceService(store) };
}

test('apply: created, unchanged, configured; generation and resourceVersion', async (t) => {
  const { svc } = setup(t);
  const a = await svc.apply(route(['reviews-v1']));
  assert.ok(a.ok);
  assert.equal(a.action, 'created');
  assert.equal(a.resource.metadata.generation, 1);
  assert.match(a.resource.metadata.uid ?? '', /^[0-9a-f-]{36}$/);
  assert.match(a.resource.metadata.creationTimestamp ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const b = await svc.apply(route(['reviews-v1']));
  assert.ok(b.ok);
  assert.equal(b.action, 'unchanged');
  assert.equal(b.resource.metadata.resourceVersion, a.resource.metadata.resourceVersion);
  const c = await svc.apply(route(['reviews-v1'], { labels: { team: 'books' } }));
  assert.ok(c.ok);
  assert.equal(c.action, 'configured');
  assert.equal(c.resource.metadata.generation, 1, 'a label change is not a spec change');
  const d = await svc.apply(route(['reviews-v2']));
  assert.ok(d.ok);
  assert.equal(d.action, 'configured');
  assert.equal(d.resource.metadata.generation, 2);
  assert.equal(d.resource.metadata.uid, a.resource.metadata.uid);
  assert.ok(Number(d.resource.metadata.resourceVersion) > Number(c.resource.metadata.resourceVersion));
  const got = await svc.get({ kind: 'HTTPRoute', namespace: 'default', name: 'reviews' });
  assert.equal(got?.metadata.resourceVersion, d.resource.metadata.resourceVersion);
  assert.equal(got?.metadata.labels, undefined);
});

test('apply: stale resourceVersion is a conflict carrying the current object', async (t) => {
  const { svc } = setup(t);
  const a = await svc.apply(route(['reviews-v1']));
  assert.ok(a.ok);
  const rv = a.resource.metadata.resourceVersion ?? '';
  const b = await svc.apply(route(['reviews-v2']), { expectResourceVersion: rv });
  assert.ok(b.ok);
  const stale = await svc.apply(route(['reviews-v3'], { resourceVersion: rv }));
  assert.ok(!stale.ok);
  assert.equal(stale.code, 'conflict');
  assert.ok(stale.code === 'conflict' && stale.current?.metadata.resourceVersion === b.resource.metadata.resourceVersion);
  const mustNotExist = await svc.apply(route(['x']), { expectResourceVersion: '0' });
  assert.ok(!mustNotExist.ok && mustNotExist.code === 'conflict');
});

test('apply: dry-run returns the diff and writes nothing; invalid input is rejected', async (t) => {
  const { svc, store } = setup(t);
  const dry = await svc.apply(route(['reviews-v1']), { dryRun: true });
  assert.ok(dry.ok);
  assert.equal(dry.action, 'created');
  assert.match(dry.diff, /^\+kind: HTTPRoute$/m);
  assert.equal(await store.get('/trellis/resources/HTTPRoute/default/reviews'), null);
  await svc.apply(route(['reviews-v1']));
  const rev = await store.revision();
  const dry2 = await svc.apply(route(['reviews-v2']), { dryRun: true });
  assert.ok(dry2.ok);
  assert.equal(dry2.action, 'configured');
  assert.match(dry2.diff, /^- +name: reviews-v1$/m);
  assert.match(dry2.diff, /^\+ +name: reviews-v2$/m);
  assert.equal(await store.revision(), rev);
  const bad = await svc.apply({ ...route(['x']), spec: { rules: 'no' } });
  assert.ok(!bad.ok && bad.code === 'invalid');
  assert.deepEqual(bad.code === 'invalid' && bad.errors.map((e) => e.text), ['HTTPRoute default/reviews: spec.rules: must be a list']);
});

test('list: namespace and label selector; delete', async (t) => {
  const { svc } = setup(t);
  await svc.apply(service('reviews', { tier: 'web' }));
  await svc.apply(service('ratings', { tier: 'db' }));
  await svc.apply({ ...service('details', { tier: 'web' }), metadata: { name: 'details', namespace: 'other', labels: { tier: 'web' } } });
  const all = await svc.list('Service');
  assert.deepEqual(all.items.map((r) => `${r.metadata.namespace}/${r.metadata.name}`), ['default/ratings', 'default/reviews', 'other/details']);
  const sel = parseLabelSelector('tier in (web)');
  assert.ok(sel.ok);
  assert.deepEqual((await svc.list('Service', { labelSelector: sel.selector })).items.map((r) => r.metadata.name), ['reviews', 'details']);
  assert.deepEqual((await svc.list('Service', { namespace: 'default', labelSelector: sel.selector })).items.map((r) => r.metadata.name), ['reviews']);
  const del = await svc.delete({ kind: 'Service', namespace: 'default', name: 'reviews' });
  assert.ok(del.ok);
  const again = await svc.delete({ kind: 'Service', namespace: 'default', name: 'reviews' });
  assert.ok(!again.ok && again.code === 'not_found');
});

test('status: dangling references warn and clear when the Service appears', async (t) => {
  const { svc } = setup(t);
  const a = await svc.apply(route(['reviews-v1']));
  assert.ok(a.ok);
  assert.deepEqual(a.resource.status?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`), ['Accepted=False/NoMatchingParent', 'ResolvedRefs=False/BackendNotFound']);
  assert.deepEqual(a.resource.status?.warnings, [
    'spec.parentRefs[0]: parent Service default/reviews not found',
    'spec.rules[0].backendRefs[0]: backend Service default/reviews-v1 not found',
  ]);
  await svc.apply(service('reviews'));
  await svc.apply(service('reviews-v1'));
  const got = await svc.get({ kind: 'HTTPRoute', namespace: 'default', name: 'reviews' });
  assert.deepEqual(got?.status?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`), ['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs']);
  assert.equal(got?.status?.warnings, undefined);
});

test('watch: from a revision, with status-change events when a referenced Service appears', async (t) => {
  const { svc } = setup(t);
  const first = await svc.apply(service('reviews'));
  assert.ok(first.ok);
  const from = Number(first.resource.metadata.resourceVersion) + 1;
  await svc.apply(route(['reviews-v1']));
  const events: ResourceEvent[] = [];
  let wake: () => void = () => {};
  const w = svc.watch('HTTPRoute', { fromRevision: from }, { onEvent: (ev) => { events.push(ev); wake(); } });
  t.after(() => w.cancel());
  const waitFor = async (n: number) => {
    const deadline = Date.now() + 5000;
    while (events.length < n && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 200).unref();
      });
    }
    assert.ok(events.length >= n, `expected ${n} events, got ${events.length}`);
  };
  await waitFor(1);
  assert.equal(events[0]?.type, 'ADDED');
  assert.equal(events[0]?.object.status?.conditions?.[1]?.reason, 'BackendNotFound');
  await svc.apply(service('reviews-v1'));
  await waitFor(2);
  assert.equal(events[1]?.type, 'MODIFIED');
  assert.equal(events[1]?.object.status?.conditions?.[1]?.reason, 'ResolvedRefs');
  await svc.delete({ kind: 'HTTPRoute', namespace: 'default', name: 'reviews' });
  await waitFor(3);
  assert.equal(events[2]?.type, 'DELETED');
  assert.ok((events[2]?.revision ?? 0) > (events[1]?.revision ?? 0));
  assert.ok(events.every((e) => e.object.kind === 'HTTPRoute'));
});

test('concurrent applies without a resourceVersion all land (compare-and-swap retry)', async (t) => {
  const { svc } = setup(t);
  await svc.apply(service('reviews'));
  const results = await Promise.all(['a', 'b', 'c', 'd'].map((v) => svc.apply(service('reviews', { writer: v }))));
  assert.ok(results.every((r) => r.ok && r.action === 'configured'), JSON.stringify(results.map((r) => (r.ok ? r.action : r.code))));
  const versions = new Set(results.map((r) => (r.ok ? r.resource.metadata.resourceVersion : '')));
  assert.equal(versions.size, 4, 'each write got its own revision');
  const final = await svc.get({ kind: 'Service', namespace: 'default', name: 'reviews' });
  assert.ok(['a', 'b', 'c', 'd'].includes(final?.metadata.labels?.writer ?? ''));
  assert.equal(final?.metadata.generation, 1, 'label-only changes keep the generation');
});
