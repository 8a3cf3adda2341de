import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { openMemoryStore } from '../store/memory.ts';
import { startApi } from './server.ts';
import { sendJson } from './http-errors.ts';

const svc = (name: string, labels: Record<string, string> = {}) => ({
  apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name, labels }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 9080 }] },
});
const route = (backend: string) => ({
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'reviews' },
  spec: { parentRefs: [{ group: '', kind: 'Service', name: 'reviews' }], rules: [{ backendRefs: [{ name: backend, port: 9080 }] }] },
});

async function setup(t: { after(fn: () => unknown): void }) {
  const store = openMemoryStore({ historyRevisions: 1_000_000 });
  const started = await startApi({ store, port: 0 });
  t.after(async () => {
    await started.close();
    await store.close();
  });
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${started.url}${path}`, {
      method,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  return { ...started, store, call };
}

test('apply: created, unchanged, configured, dry-run diff, conflict 409, invalid 422', async (t) => {
  const { call } = await setup(t);
  let r = await call('POST', '/api/v1/apply', [svc('reviews'), svc('reviews-v1')]);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.results.map((x: any) => `${x.kind}/${x.name} ${x.action}`), ['Service/reviews created', 'Service/reviews-v1 created']);
  r = await call('POST', '/api/v1/apply', svc('reviews'));
  assert.equal(r.body.results[0].action, 'unchanged');
  r = await call('POST', '/api/v1/apply?dryRun=true', svc('reviews', { tier: 'web' }));
  assert.equal(r.status, 200);
  assert.equal(r.body.dryRun, true);
  assert.equal(r.body.results[0].action, 'configured');
  assert.match(r.body.results[0].diff, /^\+  labels:\n\+    tier: web$/m);
  r = await call('GET', '/api/v1/resources/svc/default/reviews');
  assert.equal(r.body.metadata.labels, undefined, 'dry run wrote nothing');
  const rv = r.body.metadata.resourceVersion as string;
  r = await call('POST', '/api/v1/apply', { ...svc('reviews', { tier: 'web' }), metadata: { name: 'reviews', labels: { tier: 'web' }, resourceVersion: rv } });
  assert.equal(r.body.results[0].action, 'configured');
  r = await call('POST', '/api/v1/apply', { ...svc('reviews', { tier: 'db' }), metadata: { name: 'reviews', labels: { tier: 'db' }, resourceVersion: rv } });
  assert.equal(r.status, 409);
  assert.equal(r.body.error.code, 'conflict');
  assert.notEqual(r.body.error.current.metadata.resourceVersion, rv);

  const bad = { ...route('reviews-v1'), spec: { rules: [{ backendRefs: [{ name: 'x', port: 80, weight: -1 }] }] } };
  r = await call('POST', '/api/v1/apply', [svc('fine'), bad]);
  assert.equal(r.status, 422);
  assert.equal(r.body.error.code, 'invalid');
  assert.deepEqual(r.body.error.fields, [{ path: 'spec.rules[0].backendRefs[0].weight', message: 'must be >= 0', text: 'HTTPRoute default/reviews: spec.rules[0].backendRefs[0].weight: must be >= 0' }]);
  r = await call('GET', '/api/v1/resources/Service/default/fine');
  assert.equal(r.status, 404, 'a batch with an invalid item applies nothing');
  assert.equal(r.body.error.code, 'not_found');
  r = await call('POST', '/api/v1/apply', '{not json');
  assert.equal(r.status, 400);
  assert.equal(r.body.error.code, 'bad_request');
});

test('apply accepts multi-document YAML', async (t) => {
  const { url } = await setup(t);
  const yaml = 'apiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n---\napiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{port: 80}]}\n';
  const res = await fetch(`${url}/api/v1/apply`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: yaml });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { results: { name: string; action: string }[] };
  assert.deepEqual(body.results.map((x) => `${x.name} ${x.action}`), ['a created', 'b created']);
});

test('list with namespace and label selector; get; delete; unknown kind; status warnings', async (t) => {
  const { call } = await setup(t);
  await call('POST', '/api/v1/apply', [svc('reviews', { tier: 'web' }), svc('ratings', { tier: 'db' }), route('reviews-v2')]);
  let r = await call('GET', '/api/v1/resources/services?labelSelector=' + encodeURIComponent('tier in (web,api)'));
  assert.equal(r.status, 200);
  assert.equal(r.body.kind, 'ServiceList');
  assert.deepEqual(r.body.items.map((x: any) => x.metadata.name), ['reviews']);
  r = await call('GET', '/api/v1/resources/services?namespace=other');
  assert.deepEqual(r.body.items, []);
  r = await call('GET', '/api/v1/resources/services?labelSelector=' + encodeURIComponent('tier in (web'));
  assert.equal(r.status, 400);
  assert.equal(r.body.error.fields[0].path, 'labelSelector');
  r = await call('GET', '/api/v1/resources/hr/default/reviews');
  assert.deepEqual(r.body.status.warnings, ['spec.rules[0].backendRefs[0]: backend Service default/reviews-v2 not found']);
  r = await call('GET', '/api/v1/resources/pods');
  assert.equal(r.status, 404);
  assert.match(r.body.error.message, /unknown kind "pods"/);
  r = await call('DELETE', '/api/v1/resources/svc/default/ratings');
  assert.equal(r.status, 200);
  r = await call('DELETE', '/api/v1/resources/svc/default/ratings');
  assert.equal(r.status, 404);
  r = await call('PUT', '/api/v1/kinds');
  assert.equal(r.status, 405);
  r = await call('GET', '/api/v1/kinds');
  assert.deepEqual(r.body.kinds.map((k: any) => k.kind).slice(0, 6), ['HTTPRoute', 'GRPCRoute', 'TCPRoute', 'Gateway', 'Service', 'Workload']);
  assert.equal(r.body.kinds[0].specSchema.additionalProperties, false);
});

test('other parts mount routes on the same server', async (t) => {
  const { api, url } = await setup(t);
  api.addRoutes([{ method: 'GET', pattern: '/api/v1/registry/:name', handle: (_req, res, params) => sendJson(res, 200, { name: params.name }) }]);
  api.addRoutes([{ method: 'GET', pattern: '/dashboard/*', handle: (_req, res, params) => sendJson(res, 200, { rest: params['*'] }) }]);
  assert.deepEqual(await (await fetch(`${url}/api/v1/registry/abc`)).json(), { name: 'abc' });
  assert.deepEqual(await (await fetch(`${url}/dashboard/js/app.js`)).json(), { rest: 'js/app.js' });
  assert.equal((await fetch(`${url}/nope`)).status, 404);
});

/** Read SSE events from the watch endpoint until `n` data events arrived. */
function readEvents(url: string, n: number, headers: Record<string, string> = {}, onFirst?: () => void): Promise<{ id: string; data: any }[]> {
  return new Promise((resolve, reject) => {
    const events: { id: string; data: any }[] = [];
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`timed out with ${events.length} of ${n} events`));
    }, 5000);
    const req = http.get(url, { headers }, (res) => {
      assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let idx: number;
        while ((idx = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, idx);
          buf = buf.slice(idx + 2);
          const id = /^id: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (id !== undefined && data !== undefined) {
            events.push({ id, data: JSON.parse(data) });
            if (events.length === 1) onFirst?.();
          }
        }
        if (events.length >= n) {
          clearTimeout(timer);
          req.destroy();
          resolve(events);
        }
      });
    });
    req.on('error', (err) => {
      if (events.length < n) {
        clearTimeout(timer);
        reject(err);
      }
    });
  });
}

test('watch: SSE from a revision, resumable with Last-Event-ID', async (t) => {
  const { call, url } = await setup(t);
  const first = await call('POST', '/api/v1/apply', svc('a'));
  const rv = Number(first.body.results[0].resourceVersion);
  await call('POST', '/api/v1/apply', svc('b'));
  await call('POST', '/api/v1/apply', route('b'));
  const fromStart = await readEvents(`${url}/api/v1/watch?kind=svc&fromRevision=${rv}`, 2);
  assert.deepEqual(fromStart.map((e) => `${e.data.type} ${e.data.object.metadata.name}`), ['ADDED a', 'ADDED b']);
  assert.equal(fromStart[0]?.id, String(rv));
  const resumed = readEvents(`${url}/api/v1/watch?kind=Service&fromRevision=0`, 1, { 'last-event-id': String(rv) });
  const got = await resumed;
  assert.equal(got[0]?.data.object.metadata.name, 'b', 'Last-Event-ID wins and resumes after it');
  // Live events, including the route's status change when its backend Service is deleted.
  // Delete the Service once the stream has delivered its initial ADDED event.
  const snapshot = await readEvents(`${url}/api/v1/watch?kind=HTTPRoute`, 2, {}, () => {
    void call('DELETE', '/api/v1/resources/Service/default/b');
  });
  assert.equal(snapshot[0]?.data.type, 'ADDED');
  assert.equal(snapshot[1]?.data.type, 'MODIFIED');
  assert.equal(snapshot[1]?.data.object.status.conditions[1].reason, 'BackendNotFound');
  const bad = await call('GET', '/api/v1/watch?fromRevision=abc');
  assert.equal(bad.status, 400);
});

test('watch: a compacted revision ends the stream with a compacted error', async (t) => {
  const { call, url, store } = await setup(t);
  await call('POST', '/api/v1/apply', svc('a'));
  await call('POST', '/api/v1/apply', svc('b'));
  await store.compact(await store.revision());
  const body = await new Promise<string>((resolve, reject) => {
    const req = http.get(`${url}/api/v1/watch?fromRevision=1`, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timed out waiting for the stream to end')));
  });
  assert.match(body, /^event: error\ndata: \{"error":\{"code":"compacted",/m);
});
