import assert from 'node:assert/strict';
import { test } from 'node:test';
import { selectEndpoints, selectorMatches, type ServiceInput } from './endpoints.ts';
import { validateWorkload, type Workload, type WorkloadInput } from './workload.ts';

function wl(input: WorkloadInput): Workload {
  const r = validateWorkload(input);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.workload;
}

const workloads = [
  wl({ name: 'reviews-v2-a', address: '10.0.0.3', labels: { app: 'reviews', version: 'v2' }, ports: [{ port: 9080, name: 'http' }] }),
  wl({ name: 'reviews-v1-a', address: '10.0.0.1', labels: { app: 'reviews', version: 'v1' }, ports: [{ port: 9080, name: 'http' }, { port: 9090, name: 'admin' }] }),
  wl({ name: 'reviews-v1-b', address: '10.0.0.2', labels: { app: 'reviews', version: 'v1', extra: 'yes' }, ports: [{ port: 9081, name: 'http' }] }),
  wl({ name: 'reviews-other-ns', namespace: 'other', address: '10.0.1.1', labels: { app: 'reviews', version: 'v1' } }),
  wl({ name: 'ratings', address: '10.0.0.9', labels: { app: 'ratings' } }),
];

function svc(name: string, spec: ServiceInput['spec'], namespace?: string): ServiceInput {
  return { metadata: namespace ? { name, namespace } : { name }, spec };
}

test('selector: every selector label must match; extra workload labels do not matter; empty selects nothing', () => {
  assert.equal(selectorMatches({ app: 'a' }, { app: 'a', v: '1' }), true);
  assert.equal(selectorMatches({ app: 'a', v: '2' }, { app: 'a', v: '1' }), false);
  assert.equal(selectorMatches({ app: 'a' }, {}), false);
  assert.equal(selectorMatches({ app: '' }, {}), false, 'a missing label is not an empty one');
  assert.equal(selectorMatches({ app: '' }, { app: '' }), true);
  assert.equal(selectorMatches({}, { app: 'a' }), false);
  assert.equal(selectorMatches(undefined, { app: 'a' }), false);
});

test('selectEndpoints: label selection within the namespace, sorted output', () => {
  const out = selectEndpoints(
    [
      svc('reviews-v1', { selector: { app: 'reviews', version: 'v1' }, ports: [{ port: 80, targetPort: 9080 }] }),
      svc('reviews', { selector: { app: 'reviews' }, ports: [{ port: 80, targetPort: 'http', name: 'web', protocol: 'http2' }] }),
      svc('headless', { ports: [{ port: 80 }] }),
      svc('reviews', { selector: { app: 'reviews' }, ports: [{ port: 8080 }] }, 'other'),
    ],
    workloads,
  );
  assert.deepEqual(out.map((s) => `${s.namespace}/${s.name}`), ['default/headless', 'default/reviews', 'default/reviews-v1', 'other/reviews']);
  const [headless, all, v1, other] = out;
  assert.deepEqual(headless?.ports[0]?.endpoints, []);
  assert.deepEqual(all?.ports[0]?.endpoints.map((e) => `${e.workload} ${e.address}:${e.port}`), ['reviews-v1-a 10.0.0.1:9080', 'reviews-v1-b 10.0.0.2:9081', 'reviews-v2-a 10.0.0.3:9080']);
  assert.equal(all?.ports[0]?.name, 'web');
  assert.equal(all?.ports[0]?.protocol, 'http2');
  assert.deepEqual(v1?.ports[0]?.endpoints.map((e) => `${e.workload}:${e.port}`), ['reviews-v1-a:9080', 'reviews-v1-b:9080'], 'a numeric targetPort is used as is');
  assert.equal(v1?.ports[0]?.protocol, 'http');
  assert.deepEqual(other?.ports[0]?.endpoints.map((e) => `${e.namespace}/${e.workload}:${e.port}`), ['other/reviews-other-ns:8080'], 'targetPort defaults to port');
});

test('selectEndpoints: a named targetPort leaves out workloads without that port name', () => {
  const [s] = selectEndpoints([svc('reviews', { selector: { app: 'reviews' }, ports: [{ port: 90, targetPort: 'admin' }, { port: 80, targetPort: 'http' }] })], workloads);
  assert.deepEqual(s?.ports.map((p) => p.endpoints.map((e) => `${e.workload}:${e.port}`)), [['reviews-v1-a:9090'], ['reviews-v1-a:9080', 'reviews-v1-b:9081', 'reviews-v2-a:9080']]);
});
