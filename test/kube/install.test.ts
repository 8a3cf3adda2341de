// `trellis install` against a real kube-apiserver (harness.ts): every
// manifest it prints passes a server-side dry-run (schema, CRD structural
// rules, webhook and RBAC validation), and the ClusterRole, applied for
// real, grants the control plane's ServiceAccount what it calls and no more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kubeMissingReason, startKubeCluster } from './harness.ts';
import { trellis } from './fixtures.ts';

const skip = kubeMissingReason();
if (skip) console.log(`# skipping Kubernetes install tests: ${skip}`);

test('trellis install: manifests pass a server-side dry-run; the ClusterRole is least privilege', { skip: skip ?? false, timeout: 240_000 }, async (t) => {
  const kube = await startKubeCluster();
  t.after(() => kube.stop());
  const out = trellis(['install', '--image', 'example.invalid/trellis:test']);
  assert.equal(out.code, 0, out.stderr);
  const kinds = [...out.stdout.matchAll(/^kind: (\w+)$/gm)].map((m) => m[1]);
  for (const k of ['Namespace', 'CustomResourceDefinition', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolumeClaim', 'Deployment', 'Service', 'MutatingWebhookConfiguration']) {
    assert.ok(kinds.includes(k), `prints a ${k}`);
  }

  // The namespace first (a dry-run creates nothing, so the rest would not find it).
  assert.equal((await kube.kubectl(['create', 'namespace', 'trellis-system'])).code, 0);
  const dry = await kube.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: out.stdout });
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /deployment.apps\/trellis serverside-applied \(server dry run\)/);
  assert.match(dry.stdout, /mutatingwebhookconfiguration.admissionregistration.k8s.io\/trellis-sidecar-injector serverside-applied \(server dry run\)/);
  assert.equal((dry.stdout.match(/customresourcedefinition.apiextensions.k8s.io\/\S+ serverside-applied/g) ?? []).length, kinds.filter((k) => k === 'CustomResourceDefinition').length);

  // RBAC for real: what the control plane does is allowed, nothing else.
  const json = trellis(['install', '-o', 'json']);
  const items = (JSON.parse(json.stdout) as { items: { kind: string }[] }).items.filter((o) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind));
  const applied = await kube.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }) });
  assert.equal(applied.code, 0, applied.stderr);
  await kube.installGatewayApiCrds(['httproutes']);
  const can = async (...args: string[]) => (await kube.kubectl(['auth', 'can-i', '--as', 'system:serviceaccount:trellis-system:trellis', ...args])).stdout.trim();
  const expected: [string[], 'yes' | 'no'][] = [
    [['create', 'tokenreviews.authentication.k8s.io'], 'yes'],
    [['watch', 'pods', '-A'], 'yes'],
    [['get', 'pods', '-n', 'shop'], 'yes'],
    [['get', 'namespaces'], 'yes'],
    [['update', 'httproutes.gateway.networking.k8s.io', '--subresource', 'status', '-n', 'shop'], 'yes'],
    [['patch', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/trellis-sidecar-injector'], 'yes'],
    [['patch', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/someone-else'], 'no'],
    [['get', 'secrets', '-n', 'shop'], 'no'],
    [['create', 'pods', '-n', 'shop'], 'no'],
    [['update', 'httproutes.gateway.networking.k8s.io', '-n', 'shop'], 'no'],
    [['list', 'namespaces'], 'no'],
  ];
  for (const [args, want] of expected) assert.equal(await can(...args), want, `can-i ${args.join(' ')}`);
});
