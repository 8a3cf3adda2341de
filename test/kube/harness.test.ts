// The test harness itself: a real kube-apiserver that kubectl talks to with
// the generated admin certificate, that refuses anonymous callers, signs
// ServiceAccount tokens with the generated key, and leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { request } from 'node:https';
import { kubeBinaries, kubeMissingReason, startKubeCluster } from './harness.ts';

const skip = kubeMissingReason();
if (skip) console.log(`# skipping Kubernetes harness tests: ${skip}`);

function anonymous(server: string, ca: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${server}${path}`, { ca, timeout: 10_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('error', reject);
    req.end();
  });
}

test('harness: kube-apiserver with admin credentials, RBAC on, ServiceAccount tokens, clean teardown', { skip: skip ?? false, timeout: 120_000 }, async () => {
  const kube = await startKubeCluster();
  try {
    const version = await kube.kubectl(['version', '-o', 'json']);
    assert.equal(version.code, 0, version.stderr);
    assert.equal((JSON.parse(version.stdout) as { serverVersion: { gitVersion: string } }).serverVersion.gitVersion, kubeBinaries().kubeVersion);

    const who = await kube.kubectl(['auth', 'can-i', '*', '*']);
    assert.equal(who.stdout.trim(), 'yes');
    // No credentials: the anonymous user may not list anything.
    assert.equal(await anonymous(kube.server, kube.ca, '/api/v1/namespaces'), 403);

    assert.equal((await kube.kubectl(['create', 'namespace', 'h'])).code, 0);
    assert.equal((await kube.kubectl(['-n', 'h', 'create', 'serviceaccount', 'app'])).code, 0);
    const token = await kube.kubectl(['-n', 'h', 'create', 'token', 'app', '--audience', 'trellis']);
    assert.equal(token.code, 0, token.stderr);
    const review = await kube.api<{ status: { authenticated?: boolean; user?: { username?: string } } }>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
      apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: token.stdout.trim(), audiences: ['trellis'] },
    });
    assert.equal(review.status, 201);
    assert.equal(review.body.status.authenticated, true);
    assert.equal(review.body.status.user?.username, 'system:serviceaccount:h:app');
  } finally {
    await kube.stop();
  }
  assert.equal(existsSync(kube.dir), false);
  assert.equal(existsSync(kube.etcd.dataDir), false);
});
