import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateWorkload, workloadKey } from './workload.ts';

test('validateWorkload fills defaults', () => {
  const r = validateWorkload({ name: 'reviews-1', address: '10.0.0.5', ports: [{ port: 9080 }], labels: { app: 'reviews' } }, new Date('2026-01-01T00:00:00Z'));
  assert.ok(r.ok);
  assert.deepEqual(r.workload, {
    name: 'reviews-1',
    namespace: 'default',
    serviceAccount: 'default',
    address: '10.0.0.5',
    ports: [{ port: 9080, protocol: 'http' }],
    labels: { app: 'reviews' },
    locality: { region: '', zone: '' },
    registeredAt: '2026-01-01T00:00:00.000Z',
  });
  assert.equal(workloadKey('default', 'reviews-1'), '/trellis/registry/workloads/default/reviews-1');
});

test('validateWorkload names every bad field and why', () => {
  const r = validateWorkload({
    name: 'Bad_Name',
    namespace: 'a/b',
    address: 'not an address',
    ports: [{ port: 0 }, { port: 80, protocol: 'udp' }, { port: 81, name: 'x' }, { port: 82, name: 'x' }, { port: 81 }],
    labels: { 'bad key!': 'v', ok: 'spaces are bad' },
    locality: { region: 5 },
    joinToken: '',
  });
  assert.ok(!r.ok);
  const fields = r.errors.map((e) => e.field).sort();
  assert.deepEqual(fields, ['address', 'joinToken', 'labels.bad key!', 'labels.ok', 'locality.region', 'name', 'namespace', 'ports[0].port', 'ports[1].protocol', 'ports[3].name', 'ports[4].port'].sort());
  assert.ok(r.errors.every((e) => e.reason.length > 0));
  assert.deepEqual(validateWorkload(null), { ok: false, errors: [{ field: '', reason: 'workload must be an object' }] });
  const missing = validateWorkload({});
  assert.ok(!missing.ok);
  assert.deepEqual(missing.errors.map((e) => e.field), ['name', 'address']);
});

test('validateWorkload accepts IPv6 and DNS addresses, all protocols, locality and a join token', () => {
  const r = validateWorkload({ name: 'a', namespace: 'shop', serviceAccount: 'shop-sa', address: 'fd00::1', ports: [{ port: 1, protocol: 'grpc', name: 'grpc' }, { port: 2, protocol: 'tcp' }, { port: 3, protocol: 'http2' }], locality: { region: 'eu', zone: 'eu-1a' }, joinToken: 't0k' });
  assert.ok(r.ok);
  assert.equal(r.workload.joinToken, 't0k');
  assert.deepEqual(r.workload.locality, { region: 'eu', zone: 'eu-1a' });
  assert.ok(validateWorkload({ name: 'b', address: 'host-1.example.internal' }).ok);
});
