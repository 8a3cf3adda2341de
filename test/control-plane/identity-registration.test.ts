// A workload registers only under the identity it has proven, and whether
// it speaks mTLS is the control plane's call from that proof, never the
// label it sends: an intruder with a registrar API token (no certificate)
// that labels itself `trellis.dev/tls-mode: mtls` and joins a STRICT
// service's selector gets no traffic; a join token for one service account
// cannot register (or certify) another.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sign } from 'node:crypto';
import { startControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.ts';
import { generateKeyAndCsr } from '../../src/proxy/identity/csr.ts';
import { TypeUrl } from '../../src/xds/protos.ts';
import { unpackAny } from '../../src/xds/codec.ts';
import { snapshotResources } from '../../src/xds/snapshot.ts';
import { TLS_MODE_LABEL } from '../../src/control-plane/translate/services.ts';

async function call(cp: ControlPlane, method: string, p: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; json: any }> {
  const res = await fetch(`${cp.apiUrl}${p}`, { method, headers: { 'content-type': 'application/json', ...headers }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

const workload = (name: string, sa: string, labels: Record<string, string>) => ({ name, namespace: 'shop', serviceAccount: sa, address: '127.0.0.1', ports: [{ port: 9080, proxyPort: 15100 }], labels, ttlSeconds: 60 });

/** The workloads in the caller's EDS for reviews (what it may send traffic to). */
function endpointsOf(cp: ControlPlane): string[] {
  const snap = cp.snapshots.snapshotFor({ id: 'shop/caller-1', cluster: 'caller', metadata: { trellis: { kind: 'sidecar', namespace: 'shop', workload: 'caller-1' } }, locality: { region: '', zone: '', subZone: '' }, userAgentName: '', userAgentVersion: '' } as never);
  if (!snap) return [];
  const cla = [...snapshotResources(snap, TypeUrl.endpoint as never).values()].map((r) => unpackAny(r.any) as { clusterName: string; endpoints?: { lbEndpoints?: { metadata?: { filterMetadata?: { trellis?: Record<string, string> } } }[] }[] })
    .find((c) => c.clusterName === 'reviews.shop.svc:9080');
  return (cla?.endpoints ?? []).flatMap((l) => (l.lbEndpoints ?? []).map((e) => e.metadata?.filterMetadata?.trellis?.['trellis.dev/workload'] ?? '?')).sort();
}

async function until<T>(what: string, fn: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('registration under the proven identity only; mTLS from the proof, not the label; STRICT never reaches an endpoint without an identity', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-idreg-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort: 0, log: () => {}, requireAuth: true, identity: { trustDomain: 'mesh.test' } });
  t.after(() => cp.close());
  const admin = { authorization: `Bearer ${readFileSync(cp.adminTokenFile!, 'utf8').trim()}` };
  for (const r of [
    { apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: 'reviews', namespace: 'shop' }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080 }] } },
    { apiVersion: 'trellis.dev/v1alpha1', kind: 'MeshTLS', metadata: { name: 'strict', namespace: 'shop' }, spec: { mode: 'STRICT' } },
  ]) assert.equal((await call(cp, 'POST', '/api/v1/apply', r, admin)).status, 200);
  const mint = async (sa: string): Promise<string> => (await call(cp, 'POST', '/api/v1/identity/join-tokens', { namespace: 'shop', serviceAccount: sa, workload: `${sa}-1` }, admin)).json.token as string;

  // The real reviews workload proves shop/reviews with its join token: the
  // control plane marks it mTLS, though it sent tls-mode none.
  const reviewsToken = await mint('reviews');
  let r = await call(cp, 'POST', '/api/v1/registry/workloads', workload('reviews-1', 'reviews', { app: 'reviews', [TLS_MODE_LABEL]: 'none' }), { authorization: `Bearer ${reviewsToken}` });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  assert.equal(r.json.workload.labels[TLS_MODE_LABEL], 'mtls');
  assert.equal(r.json.workload.joinToken, undefined);

  // Proven by its certificate (what `trellis run` signs registry calls with).
  const key = await generateKeyAndCsr();
  const cert = await cp.identity!.ca.signCsr(key.csrPem, { credentials: { joinToken: reviewsToken } });
  assert.ok(cert.ok);
  const date = new Date().toISOString();
  const p = '/api/v1/registry/workloads';
  const sig = sign('sha256', Buffer.from(`POST\n${p}\n${date}`), key.privateKeyPem).toString('base64');
  r = await call(cp, 'POST', p, workload('reviews-2', 'reviews', { app: 'reviews' }), { authorization: `Trellis-Workload ${Buffer.from(cert.certificateChain).toString('base64')}.${sig}`, 'x-trellis-date': date });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  assert.equal(r.json.workload.labels[TLS_MODE_LABEL], 'mtls');
  // The same signature for another request proves nothing.
  r = await call(cp, 'DELETE', `${p}/shop/reviews-1`, undefined, { authorization: `Trellis-Workload ${Buffer.from(cert.certificateChain).toString('base64')}.${sig}`, 'x-trellis-date': date });
  assert.equal(r.status, 401);

  // A join token for shop/cart cannot register as shop/reviews, nor get its certificate.
  const cartToken = await mint('cart');
  r = await call(cp, 'POST', p, workload('fake-reviews', 'reviews', { app: 'reviews' }), { authorization: `Bearer ${cartToken}` });
  assert.equal(r.status, 403);
  const asked = await generateKeyAndCsr({ sanUri: 'spiffe://mesh.test/ns/shop/sa/reviews' });
  const refused = await cp.identity!.ca.signCsr(asked.csrPem, { credentials: { joinToken: cartToken } });
  assert.equal(refused.ok ? 'ok' : refused.code, 'IDENTITY_MISMATCH');

  // An intruder with a registrar API token for shop/reviews (no certificate)
  // joins the selector and claims mTLS: it is registered as `none` and,
  // the service being STRICT, gets no traffic.
  const registrar = (await call(cp, 'POST', '/api/v1/auth/tokens', { name: 'ci', role: 'registrar', namespace: 'shop', serviceAccount: 'reviews' }, admin)).json.token as string;
  r = await call(cp, 'POST', p, workload('intruder', 'reviews', { app: 'reviews', [TLS_MODE_LABEL]: 'mtls' }), { authorization: `Bearer ${registrar}` });
  assert.equal(r.status, 201);
  assert.equal(r.json.workload.labels[TLS_MODE_LABEL], 'none', 'the label is the control plane\'s, not the caller\'s');
  const rev = await cp.store.revision();
  await until('the intruder in the mesh state', () => (cp.snapshots.revision() >= rev ? true : undefined));
  const eds = endpointsOf(cp);
  assert.deepEqual(eds, ['reviews-1', 'reviews-2'], 'STRICT: the endpoint without an identity receives nothing');

  // An expired or revoked join token is refused for registration too.
  const revokedId = (await call(cp, 'GET', '/api/v1/identity/join-tokens', undefined, admin)).json.items.find((x: { serviceAccount: string }) => x.serviceAccount === 'cart').id as string;
  assert.equal((await call(cp, 'DELETE', `/api/v1/identity/join-tokens/${revokedId}`, undefined, admin)).status, 200);
  r = await call(cp, 'POST', p, workload('cart-1', 'cart', { app: 'cart' }), { authorization: `Bearer ${cartToken}` });
  assert.equal(r.status, 401);
  assert.match(r.json.error.message, /unknown or revoked/);
});
