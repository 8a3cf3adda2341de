import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gatewayResourceFromKube, portProtocol, serviceFromKube, workloadFromPod, workloadsFromEndpointSlice, type KubePod, type KubeService } from './mapping.ts';

test('port protocol: appProtocol, then the name prefix, else tcp', () => {
  assert.equal(portProtocol({ name: 'http', appProtocol: 'kubernetes.io/h2c' }), 'http2');
  assert.equal(portProtocol({ appProtocol: 'grpc' }), 'grpc');
  assert.equal(portProtocol({ name: 'http-web' }), 'http');
  assert.equal(portProtocol({ name: 'grpc' }), 'grpc');
  assert.equal(portProtocol({ name: 'https' }), 'tcp');
  assert.equal(portProtocol({ name: 'postgres' }), 'tcp');
  assert.equal(portProtocol({}), 'tcp');
});

const svc = (spec: KubeService['spec']): KubeService => ({ metadata: { name: 'reviews', namespace: 'shop', uid: 'u1', creationTimestamp: '2026-01-01T00:00:00Z', labels: { team: 'books' } }, spec });

test('a Service becomes a Trellis Service marked as from Kubernetes, its ClusterIP the VIP', () => {
  const r = serviceFromKube(svc({ clusterIP: '10.96.0.10', selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080, targetPort: 'http', protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }] }));
  assert.ok(r.ok);
  assert.equal(r.value.vip, '10.96.0.10');
  assert.deepEqual(r.value.resource.spec, { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080, targetPort: 'http', protocol: 'http' }] });
  assert.equal(r.value.resource.metadata.annotations?.['trellis.dev/source'], 'kubernetes');
  assert.equal(r.value.resource.metadata.uid, 'u1');
  assert.deepEqual(r.value.resource.metadata.labels, { team: 'books' });
  // Headless: no VIP. Without a selector: its own EndpointSlices' workloads, ports matched by name.
  const headless = serviceFromKube(svc({ clusterIP: 'None', ports: [{ name: 'http', port: 80 }] }));
  assert.ok(headless.ok);
  assert.equal(headless.value.vip, undefined);
  assert.deepEqual(headless.value.resource.spec, { selector: { 'kubernetes.io/service-name': 'reviews' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'http' }] });
});

test('Services the mesh cannot carry are refused with the reason', () => {
  assert.deepEqual(serviceFromKube(svc({ type: 'ExternalName', ports: [{ port: 80 }] })), { ok: false, reason: 'type ExternalName is not meshed' });
  assert.deepEqual(serviceFromKube(svc({ ports: [{ port: 53, protocol: 'UDP' }] })), { ok: false, reason: 'no TCP ports' });
});

const pod = (status: KubePod['status'], extra: Partial<KubePod['metadata']> = {}): KubePod => ({
  metadata: { name: 'reviews-1', namespace: 'shop', labels: { app: 'reviews' }, ...extra },
  spec: { serviceAccountName: 'reviews', containers: [{ name: 'app', ports: [{ name: 'http', containerPort: 9080 }, { name: 'dup', containerPort: 9080 }, { containerPort: 53, protocol: 'UDP' }] }, { name: 'side', ports: [{ name: 'metrics', containerPort: 9100 }] }] },
  status,
});

test('a Pod becomes a registered workload; Ready and not terminating is healthy', () => {
  const ready = workloadFromPod(pod({ phase: 'Running', podIP: '10.1.0.5', startTime: '2026-01-02T00:00:00Z', conditions: [{ type: 'Ready', status: 'True' }] }));
  assert.ok(ready.ok);
  assert.deepEqual(ready.value, {
    name: 'reviews-1', namespace: 'shop', serviceAccount: 'reviews', address: '10.1.0.5',
    ports: [{ port: 9080, protocol: 'http', name: 'http' }, { port: 9100, protocol: 'tcp', name: 'metrics' }],
    labels: { app: 'reviews' }, locality: { region: '', zone: '' }, registeredAt: '2026-01-02T00:00:00Z', healthy: true, source: 'kubernetes', origin: 'Pod/shop/reviews-1',
  });
  const notReady = workloadFromPod(pod({ phase: 'Running', podIP: '10.1.0.5', conditions: [{ type: 'Ready', status: 'False' }] }));
  assert.ok(notReady.ok && notReady.value.healthy === false);
  const terminating = workloadFromPod(pod({ phase: 'Running', podIP: '10.1.0.5', conditions: [{ type: 'Ready', status: 'True' }] }, { deletionTimestamp: '2026-01-03T00:00:00Z' }));
  assert.ok(terminating.ok && terminating.value.healthy === false);
});

test('Pods without an IP, or finished, are no workload', () => {
  assert.deepEqual(workloadFromPod(pod({ phase: 'Pending' })), { ok: false, reason: 'no pod IP yet' });
  assert.deepEqual(workloadFromPod(pod({ phase: 'Succeeded', podIP: '10.1.0.5' })), { ok: false, reason: 'phase Succeeded' });
});

test('EndpointSlices: the controller\'s own are left to the Pods; a selector-less Service\'s give one workload per address', () => {
  const meta = (labels: Record<string, string>) => ({ name: 'db-x1', namespace: 'shop', creationTimestamp: '2026-01-01T00:00:00Z', labels });
  assert.deepEqual(workloadsFromEndpointSlice({ metadata: meta({ 'kubernetes.io/service-name': 'reviews', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' }), endpoints: [{ addresses: ['10.1.0.5'] }] }), { ok: true, value: [] });
  assert.deepEqual(workloadsFromEndpointSlice({ metadata: meta({}) }), { ok: false, reason: 'no kubernetes.io/service-name label' });
  const r = workloadsFromEndpointSlice({
    metadata: meta({ 'kubernetes.io/service-name': 'db' }),
    ports: [{ name: 'tcp-pg', port: 5432, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }],
    endpoints: [{ addresses: ['192.0.2.10'], zone: 'a' }, { addresses: ['192.0.2.11'], conditions: { ready: false } }],
  });
  assert.ok(r.ok);
  assert.deepEqual(r.value.map((w) => [w.name, w.address, w.healthy, w.locality.zone, w.origin]), [
    ['db-x1-192-0-2-10', '192.0.2.10', true, 'a', 'EndpointSlice/shop/db-x1'],
    ['db-x1-192-0-2-11', '192.0.2.11', false, '', 'EndpointSlice/shop/db-x1'],
  ]);
  assert.deepEqual(r.value[0]!.labels, { 'kubernetes.io/service-name': 'db' });
  assert.deepEqual(r.value[0]!.ports, [{ port: 5432, protocol: 'tcp', name: 'tcp-pg' }]);
});

test('Gateway API objects are validated as `trellis apply` validates them; the reason names the field', () => {
  const meta = { name: 'canary', namespace: 'shop', uid: 'u9', generation: 3, labels: { team: 'books' } };
  const ok = gatewayResourceFromKube({ metadata: meta, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'reviews' }], rules: [{ backendRefs: [{ name: 'reviews-v1', port: 9080, weight: 90 }] }] } }, 'HTTPRoute');
  assert.ok(ok.ok);
  assert.equal(ok.value.kind, 'HTTPRoute');
  assert.equal(ok.value.metadata.generation, 3);
  assert.equal(ok.value.metadata.annotations?.['trellis.dev/source'], 'kubernetes');
  const bad = gatewayResourceFromKube({ metadata: meta, spec: { rules: [{ backendRefs: [{ name: 'reviews-v1', port: 70000 }] }] } }, 'HTTPRoute');
  assert.ok(!bad.ok);
  assert.match(bad.reason, /spec\.rules\[0\]\.backendRefs\[0\]\.port/);
  // Kubernetes serves TCPRoute as v1; Trellis's kind is v1alpha2 with the same fields.
  const tcp = gatewayResourceFromKube({ metadata: meta, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'db' }], rules: [{ backendRefs: [{ name: 'db-v1', port: 5432 }] }] } }, 'TCPRoute');
  assert.ok(tcp.ok);
  assert.equal(tcp.value.apiVersion, 'gateway.networking.k8s.io/v1alpha2');
  assert.deepEqual(gatewayResourceFromKube({ metadata: meta }, 'UDPRoute'), { ok: false, reason: 'kind UDPRoute is not known to Trellis' });
});
