// The identity path through a real control plane: a join token minted with
// `trellis identity token`, a proxy identity issued over the API, the trust
// bundle delivered as the xDS Secret and updated by `trellis identity rotate
// stage`, and `trellis identity` reporting the proxy through its admin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startControlPlane } from '../../src/control-plane/control-plane.ts';
import { createCaClient } from '../../src/proxy/identity/ca-client.ts';
import { createWorkloadIdentity } from '../../src/proxy/identity/workload-identity.ts';
import { trustBundleSubscription } from '../../src/proxy/identity/trust-bundle-secret.ts';
import { startXdsSource } from '../../src/proxy/xds-source.ts';
import { startProxy } from '../../src/proxy/proxy.ts';
import { meshTlsProxyOptions } from '../../src/proxy/tls/mesh-tls.ts';

const trellis = path.resolve('bin/trellis.ts');

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [trellis, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('join token -> certificate -> xDS trust bundle Secret -> root staged -> `trellis identity` shows the proxy in sync', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-id-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort: 0, log: () => {}, identity: { trustDomain: 'mesh.test' } });
  t.after(() => cp.close());

  const minted = await cli(['identity', 'token', '--api', cp.apiUrl, '-n', 'shop', '--service-account', 'reviews', '--workload', 'reviews-1', '-o', 'json']);
  assert.equal(minted.code, 0, minted.stderr);
  const { token } = JSON.parse(minted.stdout) as { token: string };

  const identity = createWorkloadIdentity({ ca: createCaClient({ baseUrl: cp.apiUrl, joinToken: token }), bundlePollMs: 0 });
  t.after(() => identity.stop());
  const got = await identity.start({ timeoutMs: 5000 });
  assert.ok(got.ok);
  assert.equal(got.credentials.spiffeId, 'spiffe://mesh.test/ns/shop/sa/reviews');

  // The admin address in node metadata: the control plane scrapes it, and
  // `trellis identity` without --admin asks every scraped proxy.
  const adminPort = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const xds = startXdsSource({
    serverUri: cp.xdsAddress,
    node: { id: 'reviews-1', cluster: 'reviews', metadata: { trellis: { kind: 'sidecar', namespace: 'shop', workload: 'reviews-1', admin: `127.0.0.1:${adminPort}` } } },
    secrets: trustBundleSubscription(identity),
  });
  t.after(() => xds.close());
  await new Promise<void>((resolve) => {
    const off = xds.onConfig(() => {
      queueMicrotask(off);
      resolve();
    });
  });
  const mesh = meshTlsProxyOptions(identity);
  const started = await startProxy({
    config: xds.current()!, node: { id: 'reviews-1', cluster: 'reviews', locality: { region: '', zone: '', subZone: '' }, metadata: {} },
    admin: { address: '127.0.0.1', port: adminPort }, ...mesh, identity,
  });
  assert.ok(started.ok);
  t.after(() => {
    mesh.terminateTls.close();
    return started.proxy.stop({ drainMs: 0 });
  });
  const admin = `127.0.0.1:${started.proxy.adminPort}`;

  const ok = await cli(['identity', '--api', cp.apiUrl, '--admin', admin]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /trust domain: mesh\.test/);
  assert.match(ok.stdout, /spiffe:\/\/mesh\.test\/ns\/shop\/sa\/reviews\s+(23|24)h\s+\S+\s+[0-9a-f]{16} active\s+in sync/);
  const all = await cli(['identity', '--api', cp.apiUrl]);
  assert.equal(all.code, 0, all.stdout + all.stderr);
  assert.match(all.stdout, new RegExp(`reviews-1\\s+${admin.replace(/\./g, '\\.')}\\s+spiffe://mesh\\.test/ns/shop/sa/reviews\\s`), 'every connected proxy that advertises its admin');

  const staged = await cli(['identity', 'rotate', 'stage', '--api', cp.apiUrl]);
  assert.equal(staged.code, 0, staged.stderr);
  assert.match(staged.stdout, /staged/);
  // The new root reaches the proxy as the xDS Secret, without a new certificate.
  await waitFor(() => identity.describe().trustBundle.length === 2, 5000, 'the staged root over xDS');
  assert.equal(identity.describe().rotations, 1);
  const after = await cli(['identity', '--api', cp.apiUrl, '--admin', admin, '-o', 'json']);
  assert.equal(after.code, 0);
  const report = JSON.parse(after.stdout) as { identities: { identity: { trustBundle: unknown[] } }[] };
  assert.equal(report.identities[0]!.identity.trustBundle.length, 2);

  const refused = await cli(['identity', 'rotate', 'retire', 'ab:cd', '--api', cp.apiUrl]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /no previous/);
});
