// xDS and the identity API over TLS: the control plane's serving certificate
// from its mesh CA; ADS on the TLS port needs a workload certificate, and
// the node it claims must be its own; a proxy learns the CA from the pin in
// its join token and refuses a control plane that does not match it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { startControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.ts';
import { createCaClient } from '../../src/proxy/identity/ca-client.ts';
import { createWorkloadIdentity, type WorkloadIdentity } from '../../src/proxy/identity/workload-identity.ts';
import { xdsChannelCredentials } from '../../src/proxy/identity/xds-credentials.ts';
import { startXdsSource, type XdsSource } from '../../src/proxy/xds-source.ts';
import { tlsFetch } from '../../src/lib/tls-fetch.ts';
import { generateKeyAndCsr } from '../../src/proxy/identity/csr.ts';

async function controlPlane(t: { after(fn: () => unknown): void }, td = 'mesh.test'): Promise<ControlPlane> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-xds-tls-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort: 0, xdsTlsPort: 0, apiTls: true, log: () => {}, identity: { trustDomain: td }, sans: ['cp.example.test'] });
  t.after(() => cp.close());
  return cp;
}

async function admin(cp: ControlPlane, method: string, p: string, body: unknown): Promise<any> {
  const res = await tlsFetch(`${cp.apiUrl}${p}`, { method, ca: cp.identity!.ca.trustBundle().pem, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await res.json();
  assert.ok(res.ok, JSON.stringify(json));
  return json;
}

async function joinToken(cp: ControlPlane, ns: string, sa: string, workload: string): Promise<string> {
  return ((await admin(cp, 'POST', '/api/v1/identity/join-tokens', { namespace: ns, serviceAccount: sa, workload })) as { token: string }).token;
}

async function identityFor(t: { after(fn: () => unknown): void }, cp: ControlPlane, ns: string, sa: string): Promise<WorkloadIdentity> {
  const identity = createWorkloadIdentity({ ca: createCaClient({ baseUrl: cp.apiUrl, joinToken: await joinToken(cp, ns, sa, `${sa}-1`) }), bundlePollMs: 0 });
  t.after(() => identity.stop());
  const got = await identity.start({ timeoutMs: 5000 });
  assert.ok(got.ok, JSON.stringify(got));
  return identity;
}

function node(ns: string, workload: string) {
  return { id: `${ns}/${workload}`, cluster: workload, metadata: { trellis: { kind: 'sidecar', namespace: ns, workload } } };
}

/** The first config; or, when `refused`, the stream's error once it failed
 * twice without one (bounded by `ms`). */
async function outcome(xds: XdsSource, ms = 10_000, refused = false): Promise<{ config: boolean; error: string | null }> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (xds.current()) return { config: true, error: null };
    if (refused && xds.state().disconnects >= 2 && xds.state().lastError) return { config: false, error: xds.state().lastError };
    await new Promise((r) => setTimeout(r, 50));
  }
  return { config: xds.current() !== undefined, error: xds.state().lastError };
}

test('the serving certificate: from the mesh CA, the control plane SPIFFE ID plus its names; the HTTPS API verifies with the bundle', async (t) => {
  const cp = await controlPlane(t);
  assert.ok(cp.apiUrl.startsWith('https://127.0.0.1:'), cp.apiUrl);
  const leaf = new X509Certificate(cp.serving!.current().certificateChain);
  assert.match(leaf.subjectAltName ?? '', /URI:spiffe:\/\/mesh\.test\/trellis\/control-plane/);
  assert.match(leaf.subjectAltName ?? '', /DNS:cp\.example\.test/);
  assert.match(leaf.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
  const res = await tlsFetch(`${cp.apiUrl}/healthz`, { ca: cp.identity!.ca.trustBundle().pem });
  assert.equal(res.status, 200);
  await assert.rejects(tlsFetch(`${cp.apiUrl}/healthz`, {}), /self-signed|unable to verify|certificate/i, 'not trusted by the system roots');
});

test('ADS over TLS: no client certificate refused; a proxy gets only its own identity\'s config', async (t) => {
  const cp = await controlPlane(t);
  assert.ok(cp.xdsTlsAddress);
  // A workload of shop/payments is registered; shop/cart may not pose as it.
  await admin(cp, 'POST', '/api/v1/registry/workloads', { name: 'pay-1', namespace: 'shop', serviceAccount: 'payments', address: '127.0.0.1', ports: [{ port: 9080 }], ttlSeconds: 60 });
  const cart = await identityFor(t, cp, 'shop', 'cart');
  const backoff = { initialMs: 100, maxMs: 200 };

  // Server-only TLS (trusting the CA, no client certificate): the handshake is refused.
  const anon = startXdsSource({ serverUri: cp.xdsTlsAddress!, node: node('shop', 'cart-1'), credentials: grpc.credentials.createSsl(Buffer.from(cp.identity!.ca.trustBundle().pem)), backoff });
  t.after(() => anon.close());
  const a = await outcome(anon, 10_000, true);
  assert.equal(a.config, false, 'no config without a client certificate');
  assert.ok(a.error, 'the stream failed');

  // Its own node: config arrives.
  const own = startXdsSource({ serverUri: cp.xdsTlsAddress!, node: node('shop', 'cart-1'), credentials: xdsChannelCredentials(cart), backoff });
  t.after(() => own.close());
  const o = await outcome(own, 10_000);
  assert.equal(o.config, true, `own node refused: ${o.error}`);
  assert.ok(cp.xds.status().some((p) => p.nodeId === 'shop/cart-1'));

  // Another service account's workload, or another namespace: PERMISSION_DENIED.
  for (const [n, why] of [[node('shop', 'pay-1'), /claims workload shop\/pay-1 of service account payments/], [node('billing', 'cart-1'), /namespace billing/]] as const) {
    const other = startXdsSource({ serverUri: cp.xdsTlsAddress!, node: n, credentials: xdsChannelCredentials(cart), backoff });
    t.after(() => other.close());
    const r = await outcome(other, 10_000, true);
    assert.equal(r.config, false, `${n.id}: got config`);
    assert.match(r.error ?? '', why);
  }
  assert.ok(!cp.xds.status().some((p) => p.nodeId === 'shop/pay-1' || p.nodeId === 'billing/cart-1'));
});

test('the join token pins the CA: another control plane (another CA) is refused; a token without a pin is not trusted on first use', async (t) => {
  const cp = await controlPlane(t);
  const impostor = await controlPlane(t);
  const token = await joinToken(cp, 'shop', 'cart', 'cart-1');
  assert.match(token, /^tjt_[A-Za-z0-9_-]{43}\.[0-9a-f]{64}$/);
  const { csrPem } = await generateKeyAndCsr();
  const good = await createCaClient({ baseUrl: cp.apiUrl, joinToken: token }).requestCertificate(csrPem);
  assert.ok(good.ok, JSON.stringify(good));
  const bad = await createCaClient({ baseUrl: impostor.apiUrl, joinToken: token }).requestCertificate(csrPem);
  assert.deepEqual(bad.ok ? 'ok' : [bad.code, bad.retryable], ['CA_PIN_MISMATCH', false]);
  const unpinned = await createCaClient({ baseUrl: cp.apiUrl, joinToken: token.split('.')[0]! }).requestCertificate(csrPem);
  assert.deepEqual(unpinned.ok ? 'ok' : [unpinned.code, unpinned.retryable], ['NO_TRUSTED_CA', false]);
  assert.match(unpinned.ok ? '' : unpinned.message, /--ca-file/);
  // A configured bundle works without a pin.
  const bundled = await createCaClient({ baseUrl: cp.apiUrl, joinToken: token.split('.')[0]!, caBundle: cp.identity!.ca.trustBundle().pem }).requestCertificate(csrPem);
  assert.ok(bundled.ok);
});
