// Kubernetes mode end to end, against a real kube-apiserver (harness.ts):
// `trellis control-plane --kubernetes` mirrors a Service and its Pods (status
// set through the status subresource, as a kubelet would) into the mesh;
// `trellis get services` lists the Service; a proxy's EDS (a real ADS stream)
// carries the ready Pods' IPs (the controller's EndpointSlice does not count
// them twice; a selector-less Service's own slice gives its endpoints); a
// deleted Pod leaves EDS within a second; a Pod whose Ready condition turns
// False is sent UNHEALTHY; watches dropped by an API server restart re-open
// by themselves; a control plane
// stopped while the cluster changes resumes its watches from the saved
// resourceVersion on restart and misses nothing; a saved resourceVersion the
// API server no longer has (410 Gone) makes it list again.
// Pod and endpoint IPs are documentation addresses (RFC 5737: the API
// server refuses loopback ones in EndpointSlices); only xDS content is
// checked, no traffic is sent to them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { kubeMissingReason, startKubeCluster } from './harness.ts';
import { applyObjects, CLUSTER, NS, pod, setPodStatus, startControlPlane, trellis, watchEndpoints } from './fixtures.ts';
import { openSqliteStore } from '../../src/control-plane/store/sqlite.ts';

const skip = kubeMissingReason();
if (skip) console.log(`# skipping Kubernetes-mode tests: ${skip}`);

test('kubernetes mode: Services and Pods from a real API server reach xDS; deletes, readiness and restarts', { skip: skip ?? false, timeout: 240_000 }, async (t) => {
  const kube = await startKubeCluster();
  t.after(() => kube.stop());
  const dataDir = mkdtempSync(join(tmpdir(), 'trellis-kube-cp-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));

  await applyObjects(kube, [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'reviews', namespace: NS } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: NS, labels: { team: 'books' } }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080, targetPort: 'http' }] } },
    pod('reviews-1', 'v1'),
    pod('reviews-2', 'v2'),
  ]);
  await setPodStatus(kube, 'reviews-1', '192.0.2.1', true);
  await setPodStatus(kube, 'reviews-2', '192.0.2.2', true);
  // The EndpointSlice the controller would write for reviews (its Pods are
  // the endpoints already: must not count twice), and a Service without a
  // selector whose slice someone else manages (an external database).
  const sliceEndpoint = (ip: string, name: string) => ({ addresses: [ip], conditions: { ready: true }, targetRef: { kind: 'Pod', namespace: NS, name } });
  await applyObjects(kube, [
    {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
      metadata: { name: 'reviews-abc12', namespace: NS, labels: { 'kubernetes.io/service-name': 'reviews', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
      ports: [{ name: 'http', port: 9080, protocol: 'TCP' }],
      endpoints: [sliceEndpoint('192.0.2.1', 'reviews-1'), sliceEndpoint('192.0.2.2', 'reviews-2')],
    },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'legacy-db', namespace: NS }, spec: { ports: [{ name: 'tcp-pg', port: 5432, targetPort: 15432 }] } },
    {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
      metadata: { name: 'legacy-db-1', namespace: NS, labels: { 'kubernetes.io/service-name': 'legacy-db', 'endpointslice.kubernetes.io/managed-by': 'dba.example.com' } },
      ports: [{ name: 'tcp-pg', port: 15432, protocol: 'TCP' }],
      endpoints: [{ addresses: ['198.51.100.1'] }, { addresses: ['198.51.100.2'], conditions: { ready: false } }],
    },
  ]);

  // Credentials the API server refuses: its words, exit 1, no stack trace.
  const badConfig = join(dataDir, 'bad-kubeconfig');
  writeFileSync(badConfig, readFileSync(kube.kubeconfig, 'utf8').replace(/client-certificate-data: .*\n/, '').replace(/client-key-data: .*\n/, 'token: not-a-valid-token\n'));
  const refused = trellis(['control-plane', '--kubernetes', '--kubeconfig', badConfig, '--data-dir', join(dataDir, 'refused'), '--api-port', '0', '--xds-port', '0']);
  assert.equal(refused.code, 1);
  assert.equal(refused.stderr.trim(), `trellis control-plane: kubernetes: cannot list /api/v1/services at ${kube.server}: Unauthorized`);

  let cp = await startControlPlane(t, kube, dataDir);
  assert.match(cp.output(), /kubernetes: synced with/);

  // The CLI lists the Kubernetes-sourced Service like an applied one.
  const got = trellis(['get', 'services', '-n', NS, '--server', cp.api]);
  assert.equal(got.code, 0, got.stderr);
  assert.match(got.stdout, /^reviews\s+9080\/http\s+app=reviews/m);
  const yaml = trellis(['get', 'service', 'reviews', '-n', NS, '-o', 'json', '--server', cp.api]);
  const svc = JSON.parse(yaml.stdout) as { metadata: { annotations?: Record<string, string>; labels?: Record<string, string> } };
  assert.equal(svc.metadata.annotations?.['trellis.dev/source'], 'kubernetes');
  assert.deepEqual(svc.metadata.labels, { team: 'books' });

  // A proxy's EDS has both ready Pods.
  const DB = `legacy-db.${NS}.svc:5432`;
  let eds = watchEndpoints(t, cp.xds, [CLUSTER, DB]);
  await eds.until(['192.0.2.1:9080 HEALTHY', '192.0.2.2:9080 HEALTHY'], 10_000);
  await eds.until(['198.51.100.1:15432 HEALTHY', '198.51.100.2:15432 UNHEALTHY'], 10_000, DB);

  // A deleted Pod leaves every proxy's endpoints within a second.
  const del = await kube.api('DELETE', `/api/v1/namespaces/${NS}/pods/reviews-2`);
  assert.equal(del.status, 200);
  const gone = await eds.until(['192.0.2.1:9080 HEALTHY'], 5_000);
  console.log(`# deleted pod left EDS after ${gone} ms`);
  assert.ok(gone < 1_000, `deleted pod still in EDS after ${gone} ms`);

  // Readiness is the Pod's Ready condition: not ready -> UNHEALTHY, not gone.
  await setPodStatus(kube, 'reviews-1', '192.0.2.1', false);
  await eds.until(['192.0.2.1:9080 UNHEALTHY'], 5_000);
  await setPodStatus(kube, 'reviews-1', '192.0.2.1', true);
  await eds.until(['192.0.2.1:9080 HEALTHY'], 5_000);

  // Dropped watches: the API server is killed and comes back; the watches
  // re-open by themselves and what happens next arrives.
  await kube.restartApiServer();
  await applyObjects(kube, [pod('reviews-4', 'v4')]);
  await setPodStatus(kube, 'reviews-4', '192.0.2.4', true);
  await eds.until(['192.0.2.1:9080 HEALTHY', '192.0.2.4:9080 HEALTHY'], 15_000);
  assert.match(cp.output(), /watch dropped/);

  // Restart: while the control plane is down, the cluster moves on.
  await cp.stop();
  await applyObjects(kube, [pod('reviews-3', 'v3')]);
  await setPodStatus(kube, 'reviews-3', '192.0.2.3', true);
  assert.equal((await kube.api('DELETE', `/api/v1/namespaces/${NS}/pods/reviews-1`)).status, 200);
  await applyObjects(kube, [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'ratings', namespace: NS }, spec: { selector: { app: 'ratings' }, ports: [{ name: 'grpc', port: 9090 }] } }]);
  const patched = await kube.api('PATCH', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices/legacy-db-1`, { endpoints: [{ addresses: ['198.51.100.3'] }] }, 'application/merge-patch+json');
  assert.equal(patched.status, 200, JSON.stringify(patched.body));

  cp = await startControlPlane(t, kube, dataDir);
  assert.match(cp.output(), /\/api\/v1\/pods: resuming the watch from resourceVersion \d+/);
  eds = watchEndpoints(t, cp.xds, [CLUSTER, DB]);
  await eds.until(['192.0.2.3:9080 HEALTHY', '192.0.2.4:9080 HEALTHY'], 10_000);
  await eds.until(['198.51.100.3:15432 HEALTHY'], 10_000, DB);
  // Pods changed after the API server restart, so their history is still
  // kept: the missed events came from the resumed watch, not a re-list.
  // (The slices' saved resourceVersion predates the restarted API server's
  // watch cache: that watch may get 410 and list, which is as correct.)
  assert.doesNotMatch(cp.output(), /\/api\/v1\/pods: .*listing again/);
  const list = trellis(['get', 'services', '-n', NS, '--server', cp.api]);
  assert.match(list.stdout, /^ratings\s+9090\/grpc/m);

  // A saved resourceVersion the API server no longer keeps: 410 Gone, then a fresh list.
  await cp.stop();
  const store = await openSqliteStore(dataDir);
  for (const kv of (await store.list('/trellis/kubernetes/resource-versions/')).items) {
    await store.put(kv.key, JSON.stringify({ ...JSON.parse(kv.value), resourceVersion: '1' }));
  }
  await store.close();
  assert.equal((await kube.api('DELETE', `/api/v1/namespaces/${NS}/services/ratings`)).status, 200);
  cp = await startControlPlane(t, kube, dataDir);
  eds = watchEndpoints(t, cp.xds);
  await eds.until(['192.0.2.3:9080 HEALTHY', '192.0.2.4:9080 HEALTHY'], 10_000);
  const deadline = Date.now() + 10_000;
  while (/^ratings\s/m.test(trellis(['get', 'services', '-n', NS, '--server', cp.api]).stdout)) {
    assert.ok(Date.now() < deadline, 'ratings (deleted while away) still listed after the re-list');
    await sleep(100);
  }
  assert.match(cp.output(), /too old .*listing again/);
});
