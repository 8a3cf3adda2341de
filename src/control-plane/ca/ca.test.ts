import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { X509Certificate, sign } from 'node:crypto';
import * as x509 from '../../lib/x509.ts';
import { startCertificateAuthority, CA_STATE_KEY, type CertificateAuthority } from './ca.ts';
import { fakeCaStore } from './fake-store.ts';
import { JOIN_TOKEN_PREFIX } from './join-tokens.ts';
import { generateKeyAndCsr } from '../../proxy/identity/csr.ts';
import { identityRoutes } from './identity-routes.ts';
import { Router } from '../api/router.ts';
import { createCaClient } from '../../proxy/identity/ca-client.ts';
import { splitPem } from './pki.ts';

async function newCa(opts: { now?: () => number } = {}): Promise<{ ca: CertificateAuthority; store: ReturnType<typeof fakeCaStore> }> {
  const store = fakeCaStore();
  const r = await startCertificateAuthority({ store, trustDomain: 'mesh.test', ...opts });
  assert.ok(r.ok);
  return { ca: r.ca, store };
}

async function token(ca: CertificateAuthority, sa = 'reviews', ttlMs?: number): Promise<string> {
  const t = await ca.createJoinToken({ namespace: 'shop', serviceAccount: sa, workload: `${sa}-1` }, ttlMs === undefined ? {} : { ttlMs });
  assert.ok(t.ok);
  return t.token;
}

test('issues a workload certificate whose only SAN is the join token SPIFFE ID', async () => {
  const { ca, store } = await newCa();
  const tok = await token(ca);
  const { csrPem } = await generateKeyAndCsr();
  const r = await ca.signCsr(csrPem, { credentials: { joinToken: tok } });
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.spiffeId, 'spiffe://mesh.test/ns/shop/sa/reviews');
  const [leafPem, interPem] = splitPem(r.certificateChain);
  const leaf = new X509Certificate(leafPem!);
  assert.equal(leaf.subjectAltName, 'URI:spiffe://mesh.test/ns/shop/sa/reviews');
  assert.equal(leaf.ca, false);
  const hours = (Date.parse(leaf.validTo) - Date.now()) / 3600_000;
  assert.ok(hours > 23.9 && hours <= 24.01, `24 h TTL, got ${hours}`);
  const px = new x509.X509Certificate(leafPem!);
  const eku = px.getExtension(x509.ExtendedKeyUsageExtension)!;
  assert.deepEqual([...eku.usages].sort(), [x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth].sort());
  const ku = px.getExtension(x509.KeyUsagesExtension)!;
  assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
  // Chain: leaf <- intermediate <- root in the bundle.
  const inter = new X509Certificate(interPem!);
  const root = new X509Certificate(r.trustBundle);
  assert.ok(leaf.verify(inter.publicKey));
  assert.ok(inter.verify(root.publicKey));
  assert.ok(inter.ca && root.ca);
  // The token is stored hashed only.
  const keys = [...store.data.keys()].filter((k) => k.startsWith(JOIN_TOKEN_PREFIX));
  assert.equal(keys.length, 1);
  assert.ok(!keys[0]!.includes(tok) && ![...store.data.values()].some((kv) => kv.value.includes(tok)));
});

test('refuses CSRs without valid credentials, with an expired token, or asking for another identity', async () => {
  let clock = Date.now();
  const { ca } = await newCa({ now: () => clock });
  const { csrPem } = await generateKeyAndCsr();
  const none = await ca.signCsr(csrPem, { credentials: {} });
  assert.equal(none.ok ? 'ok' : none.code, 'UNAUTHENTICATED');
  const forged = await ca.signCsr(csrPem, { credentials: { joinToken: `tjt_${'A'.repeat(43)}` } });
  assert.equal(forged.ok ? 'ok' : forged.code, 'UNAUTHENTICATED');
  const tok = await token(ca, 'reviews', 60_000);
  const other = await generateKeyAndCsr({ sanUri: 'spiffe://mesh.test/ns/shop/sa/admin' });
  const mismatch = await ca.signCsr(other.csrPem, { credentials: { joinToken: tok } });
  assert.equal(mismatch.ok ? 'ok' : mismatch.code, 'IDENTITY_MISMATCH');
  const same = await generateKeyAndCsr({ sanUri: 'spiffe://mesh.test/ns/shop/sa/reviews' });
  assert.ok((await ca.signCsr(same.csrPem, { credentials: { joinToken: tok } })).ok, 'asking for exactly the token identity is fine');
  const garbage = await ca.signCsr('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', { credentials: { joinToken: tok } });
  assert.equal(garbage.ok ? 'ok' : garbage.code, 'INVALID_CSR');
  clock += 61_000;
  const expired = await ca.signCsr(csrPem, { credentials: { joinToken: tok } });
  assert.equal(expired.ok ? 'ok' : expired.code, 'UNAUTHENTICATED');
  assert.match(expired.ok ? '' : expired.message, /expired/);
  const revoked = await token(ca);
  assert.ok(await ca.revokeJoinToken(revoked));
  assert.equal((await ca.signCsr(csrPem, { credentials: { joinToken: revoked } })).ok, false);
});

test('the CA state survives a restart and root rotation keeps the old root in the bundle until retired', async () => {
  const { ca, store } = await newCa();
  const again = await startCertificateAuthority({ store, trustDomain: 'mesh.test' });
  assert.ok(again.ok);
  assert.deepEqual(again.ca.trustBundle().roots, ca.trustBundle().roots, 'same root after restart');
  const wrongTd = await startCertificateAuthority({ store, trustDomain: 'other.test' });
  assert.equal(wrongTd.ok ? 'ok' : wrongTd.code, 'INVALID_ARGUMENT');

  const oldRoot = ca.trustBundle().roots[0]!.fingerprint;
  const staged = await ca.stageRoot();
  assert.deepEqual(ca.trustBundle().roots.map((r) => r.state), ['active', 'staged']);
  const tok = await token(ca);
  const before = await ca.signCsr((await generateKeyAndCsr()).csrPem, { credentials: { joinToken: tok } });
  assert.ok(before.ok);
  assert.ok(new X509Certificate(splitPem(before.certificateChain)[1]!).checkIssued(new X509Certificate(splitPem(before.trustBundle)[0]!)), 'still issued under the old root');
  assert.deepEqual((await ca.holders()).map((h) => [h.workload, h.rootFingerprint]), [['reviews-1', oldRoot]], 'issuance recorded with its root');
  await ca.activateRoot();
  // The active (issuing) root comes first: proxies read it as the one to chain to.
  assert.deepEqual(ca.trustBundle().roots.map((r) => [r.fingerprint, r.state]), [[staged, 'active'], [oldRoot, 'previous']]);
  const refused = await ca.retireRoot(oldRoot);
  assert.deepEqual(refused.ok ? [] : [refused.code, refused.message.includes('shop/reviews-1')], ['IN_USE', true], 'reviews-1 still holds a certificate under the old root');
  const after = await ca.signCsr((await generateKeyAndCsr()).csrPem, { credentials: { joinToken: tok } });
  assert.ok(after.ok);
  const newRoot = new X509Certificate(splitPem(after.trustBundle)[0]!);
  assert.ok(new X509Certificate(splitPem(after.certificateChain)[1]!).checkIssued(newRoot));
  assert.deepEqual((await ca.holders()).map((h) => [h.workload, h.rootFingerprint]), [['reviews-1', staged]], 'the renewal replaced the record');
  assert.deepEqual(await ca.holders(oldRoot), []);
  const activeRetire = await ca.retireRoot(staged);
  assert.equal(activeRetire.ok ? 'ok' : activeRetire.code, 'NOT_PREVIOUS', 'the active root cannot be retired');
  assert.deepEqual(await ca.retireRoot(oldRoot), { ok: true });
  assert.deepEqual(ca.trustBundle().roots.map((r) => r.fingerprint), [staged]);
  const interBefore = ca.status().intermediate.fingerprint;
  await ca.rotateIntermediate();
  assert.notEqual(ca.status().intermediate.fingerprint, interBefore);
  assert.equal(ca.status().intermediate.rootFingerprint, staged, 'a new intermediate under the same root');
  const later = await ca.signCsr((await generateKeyAndCsr()).csrPem, { credentials: { joinToken: tok } });
  assert.ok(later.ok);
  assert.ok(new X509Certificate(splitPem(later.certificateChain)[0]!).checkIssued(new X509Certificate(splitPem(later.certificateChain)[1]!)));
  assert.ok(store.data.has(CA_STATE_KEY));
});

test('an operator-supplied CA signs the intermediate and its key stays out of the store', async () => {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({ name: 'CN=Corp Root', keys, signingAlgorithm: alg, extensions: [new x509.BasicConstraintsExtension(true, undefined, true)] });
  const keyPem = x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
  const store = fakeCaStore();
  const r = await startCertificateAuthority({ store, trustDomain: 'corp.test', operatorCa: { certPem: cert.toString('pem'), keyPem } });
  assert.ok(r.ok);
  assert.equal(r.ca.trustBundle().pem.trim(), cert.toString('pem').trim());
  assert.ok(!store.data.get(CA_STATE_KEY)!.value.includes(keyPem.split('\n')[1]!), 'operator key not stored');
  const notCa = await startCertificateAuthority({ store: fakeCaStore(), trustDomain: 'corp.test', operatorCa: { certPem: cert.toString('pem'), keyPem: 'junk' } });
  assert.equal(notCa.ok ? 'ok' : notCa.code, 'INVALID_ARGUMENT');
});

test('HTTP routes: join token (admin), CSR with Bearer token, trust bundle', async (t) => {
  const { ca } = await newCa();
  const router = new Router();
  router.add(identityRoutes(ca));
  const server = http.createServer((req, res) => void router.dispatch(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const minted = await fetch(`${base}/api/v1/identity/join-tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ namespace: 'shop', serviceAccount: 'cart', workload: 'cart-1', ttl: '1h' }) });
  assert.equal(minted.status, 201);
  const { token: tok } = (await minted.json()) as { token: string };
  const bad = await fetch(`${base}/api/v1/identity/join-tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ namespace: 'Shop!', workload: 'x' }) });
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: { message: string } }).error.message, /^namespace:/);

  const client = createCaClient({ baseUrl: base, joinToken: tok });
  const issued = await client.requestCertificate((await generateKeyAndCsr()).csrPem);
  assert.ok(issued.ok);
  assert.equal(new X509Certificate(issued.value.certificateChain).subjectAltName, 'URI:spiffe://mesh.test/ns/shop/sa/cart');
  const denied = await createCaClient({ baseUrl: base, joinToken: 'nope' }).requestCertificate((await generateKeyAndCsr()).csrPem);
  assert.deepEqual(denied.ok ? null : [denied.code, denied.retryable], ['UNAUTHENTICATED', false]);
  const bundle = await client.fetchTrustBundle();
  assert.ok(bundle.ok);
  assert.equal(bundle.value, ca.trustBundle().pem);
});

test('retire: holders that do not block (not connected) or --force let the old root go', async () => {
  for (const how of ['blocks', 'force'] as const) {
    const { ca } = await newCa();
    const oldRoot = ca.trustBundle().roots[0]!.fingerprint;
    assert.ok((await ca.signCsr((await generateKeyAndCsr()).csrPem, { credentials: { joinToken: await token(ca) } })).ok);
    await ca.stageRoot();
    await ca.activateRoot();
    assert.equal((await ca.retireRoot(oldRoot)).ok, false);
    assert.deepEqual(await ca.retireRoot(oldRoot, how === 'force' ? { force: true } : { blocks: () => false }), { ok: true }, how);
    assert.equal(ca.trustBundle().roots.length, 1);
  }
});

test('join tokens: 1 h and bounded uses by default, listable and revocable by id; renewal is proven by the current certificate, not the token', async () => {
  let clock = Date.now();
  const { ca } = await newCa({ now: () => clock });
  const minted = await ca.createJoinToken({ namespace: 'shop', serviceAccount: 'cart', workload: 'cart-1' }, { maxUses: 2 });
  assert.ok(minted.ok);
  assert.ok(Math.abs(Date.parse(minted.expiresAt) - clock - 3600_000) < 1000, 'one hour by default');
  assert.match(minted.token, new RegExp(`^tjt_[A-Za-z0-9_-]{43}\\.${ca.caPin().slice('sha256:'.length)}$`), 'the token pins the CA');
  const first = await generateKeyAndCsr();
  const a = await ca.signCsr(first.csrPem, { credentials: { joinToken: minted.token } });
  assert.ok(a.ok);
  assert.ok((await ca.signCsr((await generateKeyAndCsr()).csrPem, { credentials: { joinToken: minted.token } })).ok);
  const spent = await ca.signCsr((await generateKeyAndCsr()).csrPem, { credentials: { joinToken: minted.token } });
  assert.equal(spent.ok ? 'ok' : spent.code, 'UNAUTHENTICATED');
  assert.match(spent.ok ? '' : spent.message, /used up \(2 of 2/);
  const listed = await ca.listJoinTokens();
  assert.deepEqual(listed.map((t) => [t.id, t.namespace, t.serviceAccount, t.uses, t.maxUses]), [[minted.id, 'shop', 'cart', 2, 2]]);
  assert.ok(!JSON.stringify(listed).includes(minted.token.slice(4, 40)), 'no secret in the listing');

  // Renewal: the CSR signed with the current key, no token (even once the token is gone).
  assert.ok(await ca.revokeJoinTokenById(minted.id));
  assert.deepEqual(await ca.listJoinTokens(), []);
  const next = await generateKeyAndCsr();
  const proof = (key: string) => sign('sha256', Buffer.from(next.csrPem), key).toString('base64');
  const renewed = await ca.signCsr(next.csrPem, { credentials: { renewal: { certificateChain: a.ok ? a.certificateChain : '', signature: proof(first.privateKeyPem) } } });
  assert.ok(renewed.ok, JSON.stringify(renewed));
  assert.equal(renewed.spiffeId, 'spiffe://mesh.test/ns/shop/sa/cart');
  // Someone holding only the certificate (not its key) cannot renew it.
  const thief = await generateKeyAndCsr();
  const stolen = await ca.signCsr(next.csrPem, { credentials: { renewal: { certificateChain: a.ok ? a.certificateChain : '', signature: proof(thief.privateKeyPem) } } });
  assert.equal(stolen.ok ? 'ok' : stolen.code, 'UNAUTHENTICATED');
  // A renewal cannot change the identity, and an expired certificate proves nothing.
  const other = await generateKeyAndCsr({ sanUri: 'spiffe://mesh.test/ns/shop/sa/payments' });
  const changed = await ca.signCsr(other.csrPem, { credentials: { renewal: { certificateChain: a.ok ? a.certificateChain : '', signature: sign('sha256', Buffer.from(other.csrPem), first.privateKeyPem).toString('base64') } } });
  assert.equal(changed.ok ? 'ok' : changed.code, 'IDENTITY_MISMATCH');
  clock += 25 * 3600_000;
  const late = await ca.signCsr(next.csrPem, { credentials: { renewal: { certificateChain: a.ok ? a.certificateChain : '', signature: proof(first.privateKeyPem) } } });
  assert.equal(late.ok ? 'ok' : late.code, 'UNAUTHENTICATED');
  assert.match(late.ok ? '' : late.message, /not valid now/);
});
