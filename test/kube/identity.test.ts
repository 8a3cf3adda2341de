// Identity from Kubernetes, against a real kube-apiserver (harness.ts): in
// Kubernetes mode the CA takes a projected ServiceAccount token (audience
// trellis, bound to a Pod) instead of a join token, checks it with a
// TokenReview and the Pod it names, and issues
// spiffe://cluster.local/ns/<ns>/sa/<sa>. Two `trellis run` sidecars get
// their certificates that way from tokens made by the TokenRequest API
// (`kubectl create token --bound-object-kind Pod`) and talk mTLS: the
// server's app is told the caller's Kubernetes identity. A token for another
// audience, a token whose Pod was deleted, a token not bound to a Pod and a
// join token are refused; no join token can be minted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubeMissingReason, startKubeCluster, type KubeCluster } from './harness.ts';
import { applyObjects, installedControlPlaneKubeconfig, NS } from './fixtures.ts';
import { freePort } from '../util/etcd.ts';
import { APPS, events, trellisRun, waitFor, type Running } from '../run/harness.ts';
import { startControlPlane } from '../../src/control-plane/control-plane.ts';
import { kubeConfigFor } from '../../src/control-plane/kubernetes/kubeconfig.ts';
import { generateKeyAndCsr } from '../../src/proxy/identity/csr.ts';

const skip = kubeMissingReason();
if (skip) console.log(`# skipping Kubernetes identity tests: ${skip}`);

const podOf = (name: string, sa: string) => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { name, namespace: NS, labels: { app: sa } },
  spec: { serviceAccountName: sa, containers: [{ name: 'app', image: 'example.invalid/app:1' }] },
});

async function token(kube: KubeCluster, sa: string, args: string[]): Promise<string> {
  const r = await kube.kubectl(['-n', NS, 'create', 'token', sa, ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

async function started(r: Running, what: string): Promise<void> {
  await waitFor(what, () => (events(r.stderr()).some((e) => e.event === 'app_started') ? true
    : r.child.exitCode !== null ? Promise.reject(new Error(r.stderr())) : undefined), 60_000);
}

test('kubernetes identity: projected ServiceAccount tokens checked by TokenReview give sidecars their SPIFFE certificates', { skip: skip ?? false, timeout: 240_000 }, async (t) => {
  const kube = await startKubeCluster();
  t.after(() => kube.stop());
  const dir = mkdtempSync(join(tmpdir(), 'trellis-kube-id-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  await applyObjects(kube, [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'reviews', namespace: NS } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'productpage', namespace: NS } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: NS }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080, targetPort: 'http' }] } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'productpage', namespace: NS }, spec: { selector: { app: 'productpage' }, ports: [{ name: 'http', port: 9080, targetPort: 'http' }] } },
    podOf('reviews-1', 'reviews'),
    podOf('productpage-1', 'productpage'),
    podOf('gone-1', 'reviews'),
  ]);

  const cp = await startControlPlane({
    dataDir: join(dir, 'cp'), apiPort: 0, xdsPort: await freePort(), log: () => {},
    // As the ServiceAccount `trellis install` creates, with its ClusterRole only.
    kubernetes: kubeConfigFor({ kubeconfig: await installedControlPlaneKubeconfig(kube, join(dir, 'kubeconfig')) }),
  });
  t.after(() => cp.close());

  // Tokens from the TokenRequest API, bound to their Pods, as the kubelet projects them.
  const bound = (sa: string, podName: string) => token(kube, sa, ['--audience', 'trellis', '--bound-object-kind', 'Pod', '--bound-object-name', podName]);
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  const reviewsToken = file('reviews.token', await bound('reviews', 'reviews-1'));
  const productpageToken = file('productpage.token', await bound('productpage', 'productpage-1'));

  // Refusals, straight at the CA (the credential is checked before the CSR).
  const { csrPem } = await generateKeyAndCsr();
  const csr = (bearer: string | undefined) => fetch(`${cp.apiUrl}/api/v1/identity/csr`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
    body: JSON.stringify({ csr: csrPem }),
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as { spiffeId?: string; error?: { code: string; message: string } } }));

  const ok = await csr(readFileSync(reviewsToken, 'utf8').trim());
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.spiffeId, `spiffe://cluster.local/ns/${NS}/sa/reviews`);

  const wrongAudience = await csr(await token(kube, 'reviews', ['--bound-object-kind', 'Pod', '--bound-object-name', 'reviews-1']));
  assert.equal(wrongAudience.status, 401);
  assert.match(wrongAudience.body.error!.message, /did not accept the token for audience "trellis"/);

  const unbound = await csr(await token(kube, 'reviews', ['--audience', 'trellis']));
  assert.equal(unbound.status, 401);
  assert.match(unbound.body.error!.message, /not bound to a Pod/);

  const goneToken = await bound('reviews', 'gone-1');
  assert.equal((await csr(goneToken)).status, 200, 'the Pod exists: accepted');
  const del = await kube.kubectl(['-n', NS, 'delete', 'pod', 'gone-1', '--wait=true']);
  assert.equal(del.code, 0, del.stderr);
  const gone = await csr(goneToken);
  assert.equal(gone.status, 401);
  // The API server itself refuses a token whose bound Pod is gone.
  assert.match(gone.body.error!.message, /did not accept the token|no longer exists/);

  assert.equal((await csr(undefined)).status, 401);
  assert.equal((await csr(`tjt_${'a'.repeat(43)}`)).status, 401, 'a join token is not a credential here');
  const mint = await fetch(`${cp.apiUrl}/api/v1/identity/join-tokens`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ namespace: NS, serviceAccount: 'reviews', workload: 'reviews-1' }),
  });
  assert.equal(mint.status, 400);
  assert.match(((await mint.json()) as { error: { message: string } }).error.message, /join tokens are not used here/);

  // Two sidecars with identities from TokenReview, talking mTLS.
  const appPort = await freePort();
  const server = trellisRun(t, cp, ['-n', NS, '--service', 'reviews', '--workload', 'reviews-run', '--service-account', 'reviews', '--port', `${appPort}:http`, '--',
    process.execPath, join(APPS, 'http-server.ts'), String(appPort), 'reviews'], { TRELLIS_SA_TOKEN_FILE: reviewsToken, TRELLIS_JOIN_TOKEN: '' });
  await started(server, 'reviews with its sidecar');

  const out = join(dir, 'answers.json');
  const client = trellisRun(t, cp, ['-n', NS, '--service', 'productpage', '--workload', 'productpage-run', '--service-account', 'productpage', '--port', `${await freePort()}:http`, '--',
    process.execPath, join(APPS, 'http-sampler.ts'), 'http://reviews:9080/hello'], { OUT: out, COUNT: '10', TRELLIS_SA_TOKEN_FILE: productpageToken, TRELLIS_JOIN_TOKEN: '' });
  const exit = await client.exit;
  assert.equal(exit.code, 0, client.stderr());
  const answers = JSON.parse(readFileSync(out, 'utf8')) as { status: number; app?: string; peer?: string }[];
  assert.deepEqual(answers.filter((a) => a.status !== 200), [], 'every call answered');
  assert.deepEqual([...new Set(answers.map((a) => a.peer))], [`spiffe://cluster.local/ns/${NS}/sa/productpage`], 'mTLS: the server app is told the caller\'s Kubernetes identity');

  // The CA recorded each issuance under the Pod the token was bound to.
  const status = (await (await fetch(`${cp.apiUrl}/api/v1/identity/ca`)).json()) as { holders: { namespace: string; workload: string; spiffeId: string }[] };
  const holders = status.holders.map((h) => `${h.namespace}/${h.workload} ${h.spiffeId}`).sort();
  assert.ok(holders.includes(`${NS}/productpage-1 spiffe://cluster.local/ns/${NS}/sa/productpage`), holders.join('\n'));
  assert.ok(holders.includes(`${NS}/reviews-1 spiffe://cluster.local/ns/${NS}/sa/reviews`), holders.join('\n'));
});
