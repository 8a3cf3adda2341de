// Gateway API routes from Kubernetes: the upstream HTTPRoute CRD
// (sigs.k8s.io/gateway-api config/crd, installed in a real kube-apiserver
// after the control plane started, which notices it),
// an HTTPRoute applied with kubectl splits calls to a Kubernetes Service
// between two versions in every sidecar's routes, a kubectl edit shifts the
// canary, `trellis get/describe` show the route with its references
// resolved, and deleting it leaves the plain Service route.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubeMissingReason, startKubeCluster } from './harness.ts';
import { applyObjects, NS, startControlPlane, trellis, watchRoutes } from './fixtures.ts';

const skip = kubeMissingReason();
if (skip) console.log(`# skipping Gateway API on Kubernetes tests: ${skip}`);

const service = (name: string, selector: Record<string, string>) => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { selector, ports: [{ name: 'http', port: 9080 }] },
});

const route = (v1: number, v2: number) => ({
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute',
  metadata: { name: 'reviews-canary', namespace: NS },
  spec: {
    parentRefs: [{ group: '', kind: 'Service', name: 'reviews', port: 9080 }],
    rules: [{ backendRefs: [{ name: 'reviews-v1', port: 9080, weight: v1 }, { name: 'reviews-v2', port: 9080, weight: v2 }] }],
  },
});

test('kubernetes mode: an HTTPRoute applied with kubectl splits a Kubernetes Service and shifts the canary', { skip: skip ?? false, timeout: 180_000 }, async (t) => {
  const kube = await startKubeCluster();
  t.after(() => kube.stop());
  const dataDir = mkdtempSync(join(tmpdir(), 'trellis-kube-cp-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  await applyObjects(kube, [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    service('reviews', { app: 'reviews' }),
    service('reviews-v1', { app: 'reviews', version: 'v1' }),
    service('reviews-v2', { app: 'reviews', version: 'v2' }),
  ]);
  // The CRDs come after the control plane: it notices them (it looks every 10 s).
  const cp = await startControlPlane(t, kube, dataDir);
  assert.match(cp.output(), /HTTPRoute is not served by the API server \(CRD not installed\)/);
  const routes = watchRoutes(t, cp.xds, `reviews.${NS}.svc.cluster.local:9080`);
  await routes.until(`reviews.${NS}.svc:9080`, 10_000);
  await kube.installGatewayApiCrds(['httproutes', 'grpcroutes']);

  await applyObjects(kube, [route(90, 10)]);
  await routes.until(`reviews-v1.${NS}.svc:9080=90, reviews-v2.${NS}.svc:9080=10`, 20_000);
  assert.match(cp.output(), /HTTPRoute is served now; watching it/);

  const got = trellis(['get', 'httproutes', '-n', NS, '--server', cp.api]);
  assert.equal(got.code, 0, got.stderr);
  assert.match(got.stdout, /^reviews-canary\s/m);
  const described = trellis(['describe', 'httproute', 'reviews-canary', '-n', NS, '--server', cp.api]);
  assert.equal(described.code, 0, described.stderr);
  assert.match(described.stdout, /ResolvedRefs\s+True/);
  assert.doesNotMatch(described.stdout, /not found/);

  // The canary shifts with a kubectl edit.
  await applyObjects(kube, [route(50, 50)]);
  await routes.until(`reviews-v1.${NS}.svc:9080=50, reviews-v2.${NS}.svc:9080=50`, 10_000);

  // Deleted: calls to reviews go to the reviews Service itself again.
  const del = await kube.kubectl(['-n', NS, 'delete', 'httproute', 'reviews-canary']);
  assert.equal(del.code, 0, del.stderr);
  await routes.until(`reviews.${NS}.svc:9080`, 10_000);
});
