// Gateway API routes from Kubernetes: the upstream HTTPRoute CRD
// (sigs.k8s.io/gateway-api config/crd, installed in a real kube-apiserver
// after the control plane started, which notices it),
// an HTTPRoute applied with kubectl splits calls to a Kubernetes Service
// between two versions in every sidecar's routes, a kubectl edit shifts the
// canary, `trellis get/describe` show the route with its references
// resolved, status conditions are written back on the routes (ResolvedRefs
// False naming the field of a missing backend until it exists; Accepted
// False naming the field of a route Trellis refuses), and deleting the
// route leaves the plain Service route; a TCPRoute (served as v1) is read as
// Trellis's v1alpha2 kind and gets its status too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { kubeMissingReason, startKubeCluster, type KubeCluster } from './harness.ts';
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
  await kube.installGatewayApiCrds(['httproutes', 'grpcroutes', 'tcproutes', 'gateways']);

  await applyObjects(kube, [route(90, 10)]);
  await routes.until(`reviews-v1.${NS}.svc:9080=90, reviews-v2.${NS}.svc:9080=10`, 20_000);
  assert.match(cp.output(), /HTTPRoute is served now; watching it/);

  // Status written back, as Gateway API implementations do.
  await until(async () => JSON.stringify(await conditions(kube, 'reviews-canary')) === JSON.stringify({ Accepted: 'True Accepted', ResolvedRefs: 'True ResolvedRefs' }));

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

  // A backend that does not exist yet: ResolvedRefs False naming the field;
  // creating the Service resolves it.
  await applyObjects(kube, [{ ...route(50, 50), metadata: { name: 'ratings', namespace: NS }, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'reviews-v1', port: 9080 }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/ratings' } }], backendRefs: [{ name: 'ratings', port: 9080 }] }] } }]);
  await until(async () => (await conditions(kube, 'ratings')).ResolvedRefs?.startsWith('False BackendNotFound spec.rules[0].backendRefs[0]: backend Service shop/ratings not found'));
  await applyObjects(kube, [service('ratings', { app: 'ratings' })]);
  await until(async () => (await conditions(kube, 'ratings')).ResolvedRefs === 'True ResolvedRefs');

  // A route Trellis refuses (the CRD lets any regular expression through):
  // Accepted False, the message naming the field; the mesh keeps serving the rest.
  await applyObjects(kube, [{ ...route(50, 50), metadata: { name: 'bad-regex', namespace: NS }, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'reviews-v2', port: 9080 }], rules: [{ matches: [{ path: { type: 'RegularExpression', value: '/(' } }], backendRefs: [{ name: 'reviews-v1', port: 9080 }] }] } }]);
  await until(async () => (await conditions(kube, 'bad-regex')).Accepted?.startsWith('False UnsupportedValue not accepted by Trellis: spec.rules[0].matches[0].path.value: invalid regular expression'));
  assert.equal(routes.now(), `reviews-v1.${NS}.svc:9080=50, reviews-v2.${NS}.svc:9080=50`);

  // A TCPRoute: Kubernetes serves it as v1, Trellis reads it as its v1alpha2 kind.
  const tcpService = (name: string) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { selector: { app: name }, ports: [{ name: 'tcp-pg', port: 5432 }] } });
  await applyObjects(kube, [tcpService('db'), tcpService('db-v1'), {
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'TCPRoute', metadata: { name: 'db', namespace: NS },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'db', port: 5432 }], rules: [{ backendRefs: [{ name: 'db-v1', port: 5432 }] }] },
  }]);
  await until(async () => JSON.stringify(await conditions(kube, 'db', 'tcproutes')) === JSON.stringify({ Accepted: 'True Accepted', ResolvedRefs: 'True ResolvedRefs' }));
  assert.match(trellis(['get', 'tcproutes', '-n', NS, '--server', cp.api]).stdout, /^db\s/m);

  // Deleted: calls to reviews go to the reviews Service itself again.
  const del = await kube.kubectl(['-n', NS, 'delete', 'httproute', 'reviews-canary']);
  assert.equal(del.code, 0, del.stderr);
  await routes.until(`reviews.${NS}.svc:9080`, 10_000);
});

/** Trellis's conditions on a route's first parent: type -> "status reason message". */
async function conditions(kube: KubeCluster, name: string, plural = 'httproutes'): Promise<Record<string, string>> {
  const r = await kube.api<{ status?: { parents?: { controllerName: string; conditions: { type: string; status: string; reason: string; message: string }[] }[] } }>('GET', `/apis/gateway.networking.k8s.io/v1/namespaces/${NS}/${plural}/${name}`);
  const ours = r.body.status?.parents?.find((p) => p.controllerName === 'trellis.dev/mesh');
  return Object.fromEntries((ours?.conditions ?? []).map((c) => [c.type, c.status === 'True' ? `${c.status} ${c.reason}` : `${c.status} ${c.reason} ${c.message}`]));
}

async function until(check: () => Promise<boolean | undefined>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${check.toString().slice(0, 300)}`);
    await sleep(50);
  }
}
