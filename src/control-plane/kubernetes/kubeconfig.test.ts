import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inClusterConfig, kubeConfigFor, loadKubeConfig, KubeConfigError } from './kubeconfig.ts';

function dir(t: { after(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'trellis-kubeconfig-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const config = (user: string, extra = '') => `apiVersion: v1
kind: Config
current-context: main
contexts:
- name: main
  context: {cluster: c1, user: u1}
- name: other
  context: {cluster: c1, user: nobody}
clusters:
- name: c1
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority: ca.pem
${extra}users:
- name: u1
  user:
${user}
`;

test('kubeconfig: the current context, files relative to the kubeconfig, a token file read on every request', (t) => {
  const d = dir(t);
  writeFileSync(join(d, 'ca.pem'), 'CA PEM');
  writeFileSync(join(d, 'token'), 'first\n');
  writeFileSync(join(d, 'config'), config('    tokenFile: token'));
  const c = loadKubeConfig(join(d, 'config'));
  assert.equal(c.server, 'https://127.0.0.1:6443');
  assert.equal(c.ca, 'CA PEM');
  assert.equal(c.token?.(), 'first');
  writeFileSync(join(d, 'token'), 'rotated\n');
  assert.equal(c.token?.(), 'rotated');
  assert.equal(c.source, `${join(d, 'config')} (context main)`);
});

test('kubeconfig: inline client certificate data; what is wrong is named', (t) => {
  const d = dir(t);
  writeFileSync(join(d, 'ca.pem'), 'CA PEM');
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  writeFileSync(join(d, 'config'), config(`    client-certificate-data: ${b64('CERT')}\n    client-key-data: ${b64('KEY')}`));
  const c = loadKubeConfig(join(d, 'config'));
  assert.deepEqual([c.cert, c.key, c.token], ['CERT', 'KEY', undefined]);

  assert.throws(() => loadKubeConfig(join(d, 'config'), { context: 'nope' }), /context "nope" not found/);
  assert.throws(() => loadKubeConfig(join(d, 'config'), { context: 'other' }), /user "nobody" not found/);
  assert.throws(() => loadKubeConfig(join(d, 'missing')), /--kubeconfig .*missing: no such file/);
  writeFileSync(join(d, 'exec'), config('    exec: {command: aws}'));
  assert.throws(() => loadKubeConfig(join(d, 'exec')), /exec: is not supported by Trellis; use a client certificate or a token/);
  writeFileSync(join(d, 'half'), config(`    client-certificate-data: ${b64('CERT')}`));
  assert.throws(() => loadKubeConfig(join(d, 'half')), KubeConfigError);
});

test('in-cluster: the service host and port, the mounted CA and token', (t) => {
  const d = dir(t);
  writeFileSync(join(d, 'ca.crt'), 'CLUSTER CA');
  writeFileSync(join(d, 'token'), 'sa-token');
  const c = inClusterConfig({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, d);
  assert.equal(c.server, 'https://[fd00::1]:443');
  assert.equal(c.ca, 'CLUSTER CA');
  assert.equal(c.token?.(), 'sa-token');
  assert.throws(() => inClusterConfig({}, d), /pass --kubeconfig PATH/);
  // --kubernetes without a kubeconfig, outside a pod, with no ~/.kube/config: a clear error.
  assert.throws(() => kubeConfigFor({}, { HOME: d }), /no Kubernetes configuration: pass --kubeconfig PATH/);
});
