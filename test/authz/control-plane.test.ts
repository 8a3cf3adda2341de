// The whole path with a real `trellis proxy` process: AuthorizationPolicy and
// RequestAuthentication applied through the control plane's API reach the
// sidecar's inbound listener over xDS and are enforced (keys from an HTTPS
// JWKS server the proxy trusts through --jwks-ca); deleting the policy lifts
// it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.ts';
import { freePort } from '../proxy/helpers.ts';
import { jwks, nowS, request, signer, startApp, startJwksServer, testCert, token } from './kit.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

async function api(cp: ControlPlane, method: string, p: string, body?: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(`${cp.apiUrl}${p}`, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.status, text: await res.text() };
}

/** Poll until `probe` returns true (bounded: 10 s). */
async function eventually(what: string, probe: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    try {
      if (await probe()) return;
    } catch {
      // the listener may not be up yet
    }
    await sleep(50);
  }
  assert.fail(`timed out waiting for: ${what}`);
}

async function startSidecar(t: TestContext, xdsPort: number, caPem: string): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-authz-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const ca = path.join(dir, 'jwks-ca.pem');
  writeFileSync(ca, caPem);
  const file = path.join(dir, 'sidecar.json');
  writeFileSync(file, JSON.stringify({
    node: { id: 'shop/orders-1', cluster: 'orders', metadata: { trellis: { kind: 'sidecar', namespace: 'shop', workload: 'orders-1', inboundAddress: '127.0.0.1', outbound: { address: '127.0.0.1', port: await freePort() } } } },
    admin: { address: { socketAddress: { address: '127.0.0.1', portValue: 0 } } },
    dynamicResources: { ads: { address: `127.0.0.1:${xdsPort}` } },
  }));
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'trellis.ts'), 'proxy', '--config', file, '--jwks-ca', ca], { cwd: ROOT, env: { ...process.env, NODE_NO_WARNINGS: '1' }, stdio: ['ignore', 'ignore', 'ignore'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.after(async () => {
    child.kill('SIGKILL');
    await exited;
  });
}

test('apply AuthorizationPolicy / RequestAuthentication -> xDS -> a real sidecar enforces them', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-cp-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const xdsPort = await freePort();
  const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort, identity: false, log: () => {} });
  t.after(() => cp.close());
  const app = await startApp(t);
  const inbound = await freePort();
  const reg = await api(cp, 'POST', '/api/v1/registry/workloads', {
    name: 'orders-1', namespace: 'shop', address: '127.0.0.1', serviceAccount: 'orders', labels: { app: 'orders' },
    ports: [{ name: 'http', port: app, protocol: 'http', proxyPort: inbound }], ttlSeconds: 60,
  });
  assert.equal(reg.status, 201, reg.text);
  const key = signer('ES256', 'k1');
  const cert = await testCert();
  const jwksServer = await startJwksServer(t, jwks(key), cert);
  await startSidecar(t, xdsPort, cert.cert);
  await eventually('the inbound listener serves', async () => (await request(inbound, { path: '/private' })).status === 200);

  const policies = [
    { apiVersion: 'trellis.dev/v1alpha1', kind: 'RequestAuthentication', metadata: { name: 'orders-jwt', namespace: 'shop' }, spec: { selector: { app: 'orders' }, jwtRules: [{ issuer: 'https://issuer.test', audiences: ['orders'], jwksUri: jwksServer.url }] } },
    { apiVersion: 'trellis.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'orders-access', namespace: 'shop' }, spec: {
      selector: { app: 'orders' },
      rules: [
        { to: [{ operation: { paths: ['/public/*'] } }] },
        { from: [{ source: { requestPrincipals: ['https://issuer.test/*'] } }], to: [{ operation: { paths: ['/private*'] } }], when: [{ key: 'request.auth.claims[role]', values: ['admin'] }] },
      ],
    } },
  ];
  for (const p of policies) {
    const r = await api(cp, 'POST', '/api/v1/apply', p);
    assert.ok(r.status < 300, r.text);
  }
  await eventually('the policy reaches the sidecar', async () => (await request(inbound, { path: '/private' })).status === 403);
  const claims = (role: string) => ({ iss: 'https://issuer.test', sub: 'alice', aud: 'orders', role, exp: nowS() + 300 });
  assert.equal((await request(inbound, { path: '/public/x' })).status, 200);
  assert.equal((await request(inbound, { path: '/private', headers: { authorization: `Bearer ${token(key, claims('admin'))}` } })).status, 200);
  assert.equal((await request(inbound, { path: '/private', headers: { authorization: `Bearer ${token(key, claims('user'))}` } })).status, 403);
  const forged = await request(inbound, { path: '/public/x', headers: { authorization: `Bearer ${token(signer('ES256', 'k1'), claims('admin'))}` } });
  assert.equal(forged.status, 401, 'an invalid token is refused even where no token is needed');
  assert.ok(jwksServer.hits >= 1, 'the keys came from the HTTPS JWKS server');

  const del = await api(cp, 'DELETE', '/api/v1/resources/AuthorizationPolicy/shop/orders-access');
  assert.ok(del.status < 300, del.text);
  await eventually('deleting the policy lifts it', async () => (await request(inbound, { path: '/private' })).status === 200);
});
