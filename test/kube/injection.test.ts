// Sidecar injection against a real kube-apiserver (harness.ts): the control
// plane serves the mutating admission webhook over TLS with a certificate
// from the mesh CA and patches the mesh's trust bundle into the
// MutatingWebhookConfiguration at start; the API server calls it (a `url:`
// clientConfig at the control plane's loopback address) for every Pod
// created through the API. A Pod in a namespace labelled
// `trellis-injection: enabled` comes back with the native sidecar, the
// capture init container, the projected token and its probes rewritten; a
// Pod elsewhere does not, unless it asks with trellis.dev/inject; one that
// opts out is left alone. `trellis inject -f` gives the same spec offline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubeMissingReason, startKubeCluster } from './harness.ts';
import { applyObjects, installedControlPlaneKubeconfig, trellis } from './fixtures.ts';
import { freePort } from '../util/etcd.ts';
import { startControlPlane } from '../../src/control-plane/control-plane.ts';
import { kubeConfigFor } from '../../src/control-plane/kubernetes/kubeconfig.ts';
import { captureScript } from '../../src/runner/capture-rules.ts';
import { PORTS, PROXY_UID } from '../../src/control-plane/kubernetes/inject.ts';

const skip = kubeMissingReason();
if (skip) console.log(`# skipping Kubernetes injection tests: ${skip}`);

interface C { name: string; restartPolicy?: string; command?: string[]; env?: { name: string; value?: string }[]; readinessProbe?: { httpGet?: { path: string; port: number } }; livenessProbe?: { httpGet?: { path: string; port: number }; tcpSocket?: unknown }; resources?: { requests?: Record<string, string> } }
interface P { metadata: { annotations?: Record<string, string> }; spec: { initContainers?: C[]; containers: C[]; volumes?: { name: string; projected?: { sources: { serviceAccountToken?: { audience: string } }[] } }[] } }

const app = (name: string, ns: string, annotations?: Record<string, string>) => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { name, namespace: ns, labels: { app: 'reviews' }, ...(annotations ? { annotations } : {}) },
  spec: {
    containers: [{
      name: 'app', image: 'example.invalid/reviews:1', ports: [{ name: 'http', containerPort: 8080 }],
      readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, timeoutSeconds: 2 },
      livenessProbe: { tcpSocket: { port: 8080 } },
    }],
  },
});

test('kubernetes injection: the webhook on the control plane injects Pods created through the API', { skip: skip ?? false, timeout: 240_000 }, async (t) => {
  const kube = await startKubeCluster();
  t.after(() => kube.stop());
  const dir = mkdtempSync(join(tmpdir(), 'trellis-kube-inject-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  await applyObjects(kube, [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'trellis-injection': 'enabled' } } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'plain' } },
    // No controller manager here to create them.
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: 'shop' } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: 'plain' } },
    {
      apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: 'trellis-sidecar-injector' },
      webhooks: [{
        name: 'inject.trellis.dev', admissionReviewVersions: ['v1'], sideEffects: 'None', failurePolicy: 'Fail', reinvocationPolicy: 'Never', timeoutSeconds: 10,
        clientConfig: { url: `https://127.0.0.1:${port}/inject` },
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
        namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'kube-public'] }] },
      }],
    },
  ]);
  const inject = { image: 'example.invalid/trellis:test', xdsAddress: 'trellis.trellis-system.svc:15010', identityUrl: 'http://trellis.trellis-system.svc:15080' };
  const cp = await startControlPlane({
    dataDir: join(dir, 'cp'), apiPort: 0, xdsPort: await freePort(), log: () => {},
    // As the ServiceAccount `trellis install` creates, with its ClusterRole only.
    kubernetes: kubeConfigFor({ kubeconfig: await installedControlPlaneKubeconfig(kube, join(dir, 'kubeconfig')) }),
    injection: { host: '127.0.0.1', port, hosts: ['127.0.0.1'], inject },
  });
  t.after(() => cp.close());

  // The control plane put the mesh's roots into the configuration.
  const mwc = await kube.api<{ webhooks: { clientConfig: { caBundle?: string } }[] }>('GET', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/trellis-sidecar-injector');
  assert.equal(Buffer.from(mwc.body.webhooks[0]!.clientConfig.caBundle ?? '', 'base64').toString('utf8'), cp.identity!.ca.trustBundle().pem);

  const create = async (pod: ReturnType<typeof app>): Promise<P> => {
    const r = await kube.api<P>('POST', `/api/v1/namespaces/${pod.metadata.namespace}/pods`, pod);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };
  const injected = await create(app('reviews-1', 'shop'));
  const init = injected.spec.initContainers ?? [];
  assert.deepEqual(init.map((c) => c.name), ['trellis-init', 'trellis-proxy']);
  assert.equal(init[1]!.restartPolicy, 'Always', 'a native sidecar');
  assert.deepEqual(init[0]!.command, ['sh', '-c', captureScript(PORTS, PROXY_UID)], 'the transparent-mode capture rules');
  assert.match(init[0]!.command![2]!, /-p tcp -j REDIRECT --to-ports 15006/);
  assert.deepEqual(init[1]!.resources?.requests, { cpu: '100m', memory: '128Mi' });
  const env = new Map(init[1]!.env!.map((e) => [e.name, e.value]));
  assert.equal(env.get('TRELLIS_SA_TOKEN_FILE'), '/var/run/secrets/trellis/token');
  assert.equal(env.get('TRELLIS_IDENTITY_URL'), inject.identityUrl);
  assert.equal(JSON.parse(env.get('TRELLIS_BOOTSTRAP')!).dynamicResources.ads.address, inject.xdsAddress);
  const token = injected.spec.volumes!.find((v) => v.name === 'trellis-token');
  assert.equal(token?.projected?.sources[0]?.serviceAccountToken?.audience, 'trellis');
  // Probes go through the sidecar's admin port, which runs the original check.
  const appC = injected.spec.containers[0]!;
  assert.deepEqual(appC.readinessProbe?.httpGet, { path: '/app-health/app/readyz', port: 15000, scheme: 'HTTP' });
  assert.deepEqual(appC.livenessProbe?.httpGet, { path: '/app-health/app/livez', port: 15000, scheme: 'HTTP' });
  assert.equal(appC.livenessProbe?.tcpSocket, undefined);
  assert.deepEqual(JSON.parse(env.get('TRELLIS_APP_PROBERS')!), {
    '/app-health/app/readyz': { httpGet: { path: '/healthz', port: 8080, scheme: 'HTTP' }, timeoutSeconds: 2 },
    '/app-health/app/livez': { tcpSocket: { port: 8080 }, timeoutSeconds: 1 }, // Kubernetes' default
  });
  assert.equal(injected.metadata.annotations?.['trellis.dev/sidecar-status'], 'injected');

  // Not labelled: untouched, unless the Pod asks; a Pod can opt out.
  assert.equal((await create(app('plain-1', 'plain'))).spec.initContainers, undefined);
  assert.deepEqual((await create(app('asks-1', 'plain', { 'trellis.dev/inject': 'true' }))).spec.initContainers?.map((c) => c.name), ['trellis-init', 'trellis-proxy']);
  assert.equal((await create(app('opts-out', 'shop', { 'trellis.dev/inject': 'false' }))).spec.initContainers, undefined);

  // Offline: the same spec from `trellis inject -f`.
  const file = join(dir, 'pod.json');
  writeFileSync(file, JSON.stringify(app('reviews-1', 'shop')));
  const off = trellis(['inject', '-f', file, '--sidecar-image', inject.image, '--sidecar-xds', inject.xdsAddress, '--sidecar-api', inject.identityUrl]);
  assert.equal(off.code, 0, off.stderr);
  const applied = await kube.kubectl(['create', '--dry-run=server', '-o', 'json', '-n', 'plain', '-f', '-'], { input: off.stdout.replace('namespace: shop', 'namespace: plain') });
  assert.equal(applied.code, 0, applied.stderr);
  const offline = JSON.parse(applied.stdout) as P;
  // The API server's own ServiceAccount volume has a random name per Pod.
  const own = (cs: C[] | undefined) => (cs ?? []).map((c) => ({ ...c, volumeMounts: ((c as { volumeMounts?: { name: string }[] }).volumeMounts ?? []).filter((m) => !m.name.startsWith('kube-api-access-')) }));
  assert.deepEqual(own(offline.spec.initContainers), own(injected.spec.initContainers));
  assert.deepEqual(own(offline.spec.containers), own(injected.spec.containers));
});
