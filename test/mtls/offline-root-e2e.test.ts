// Keeping the CA root offline (issue 13): an organisation's root signs an
// intermediate; `trellis control-plane --ca-cert INTERMEDIATE --ca-key
// INTERMEDIATE_KEY --ca-root ROOT` is given only the intermediate's key.
// Workload certificates carry leaf -> Trellis intermediate -> the operator's
// intermediate, the trust bundle holds only the self-signed root, and two
// real sidecars talk mTLS verifying that whole path. The control plane's data
// directory holds neither the root's key (never given) nor the operator key.
// Before, `--ca-root` did not exist and an intermediate given as `--ca-cert`
// became the bundle's only anchor: Node's TLS refused the chain ("unable to
// get issuer certificate").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import * as x509 from '../../src/lib/x509.ts';
import { freePort } from '../../src/runner/ports.ts';
import { createCaClient } from '../../src/proxy/identity/ca-client.ts';
import { createWorkloadIdentity } from '../../src/proxy/identity/workload-identity.ts';
import type { ControlPlane } from '../../src/control-plane/control-plane.ts';
import tls from 'node:tls';
import { startCertificateAuthority } from '../../src/control-plane/ca/ca.ts';
import { fakeCaStore } from '../../src/control-plane/ca/fake-store.ts';
import { generateKeyAndCsr } from '../../src/proxy/identity/csr.ts';
import { APPS, ROOT, TRELLIS, apply, events, joinToken, service, trellisRun, waitFor } from '../run/harness.ts';

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

async function keyPair(): Promise<{ keys: CryptoKeyPair; pem: string; body: string }> {
  const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const pem = x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
  return { keys, pem, body: Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64') };
}

/** An offline organisation root and, under it, the intermediate handed to the control plane. */
async function offlineRootAndIntermediate(o: { intermediatePathLen?: number } = {}) {
  const root = await keyPair();
  const now = Date.now();
  const rootCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'O=Example Corp, CN=Example Offline Root', keys: root.keys, signingAlgorithm: alg,
    notBefore: new Date(now - 60_000), notAfter: new Date(now + 365 * 86_400_000),
    extensions: [
      new x509.BasicConstraintsExtension(true, 2, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(root.keys.publicKey),
    ],
  });
  const mid = await keyPair();
  const midCert = await x509.X509CertificateGenerator.create({
    serialNumber: '02', subject: 'O=Example Corp, CN=Example Mesh CA', issuer: rootCert.subject, publicKey: mid.keys.publicKey,
    signingKey: root.keys.privateKey, signingAlgorithm: alg, notBefore: new Date(now - 60_000), notAfter: new Date(now + 180 * 86_400_000),
    extensions: [
      new x509.BasicConstraintsExtension(true, o.intermediatePathLen ?? 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(mid.keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(root.keys.publicKey),
    ],
  });
  return { rootPem: rootCert.toString('pem'), rootKeyBody: root.body, midPem: midCert.toString('pem'), midKeyPem: mid.pem, midKeyBody: mid.body };
}

function allFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? allFiles(p) : [p];
  });
}

function viaSidecar(outbound: number, url: string): Promise<{ status: number; body: string; peer?: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: outbound, path: u.href, headers: { host: u.host }, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body, ...(typeof res.headers['x-peer'] === 'string' ? { peer: res.headers['x-peer'] } : {}) }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

test('a control plane holding only an intermediate key issues chains to an offline root; sidecars verify leaf -> intermediates -> root', { timeout: 120_000 }, async (t) => {
  const pki = await offlineRootAndIntermediate();
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-offline-root-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files = { cert: path.join(dir, 'mesh-ca.pem'), key: path.join(dir, 'mesh-ca.key'), root: path.join(dir, 'root.pem') };
  writeFileSync(files.cert, pki.midPem, { mode: 0o600 });
  writeFileSync(files.key, pki.midKeyPem, { mode: 0o600 });
  writeFileSync(files.root, pki.rootPem, { mode: 0o600 });
  const dataDir = path.join(dir, 'data');
  const apiPort = await freePort();
  const xdsPort = await freePort();
  const child = spawn(process.execPath, [TRELLIS, 'control-plane', '--data-dir', dataDir, '--api-port', String(apiPort), '--xds-port', String(xdsPort),
    '--trust-domain', 'corp.test', '--ca-cert', files.cert, '--ca-key', files.key, '--ca-root', files.root], {
    cwd: ROOT, env: { ...process.env, NODE_NO_WARNINGS: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.after(async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  });
  await waitFor('control plane ready', () => (/"event":"ready"/.test(out) ? true : child.exitCode !== null ? Promise.reject(new Error(err)) : undefined), 30_000);
  const ready = JSON.parse(out.split('\n').find((l) => l.includes('"ready"'))!) as { api: string; xds: string };
  const cp = { apiUrl: ready.api, xdsAddress: ready.xds } as ControlPlane;

  // The bundle is the offline root alone.
  const bundle = await (await fetch(`${cp.apiUrl}/api/v1/identity/trust-bundle`)).text();
  const bundleCerts = bundle.match(/-----BEGIN CERTIFICATE-----/g) ?? [];
  assert.equal(bundleCerts.length, 1, bundle);
  assert.ok(bundle.includes(pki.rootPem.split('\n')[1]!), 'the bundle holds the root');

  // An issued chain: leaf, Trellis intermediate, the operator's intermediate; it verifies up to the root.
  const tok = await joinToken(cp, 'tester', 'tester-1');
  const tester = createWorkloadIdentity({ ca: createCaClient({ baseUrl: cp.apiUrl, joinToken: tok }), bundlePollMs: 0 });
  t.after(() => tester.stop());
  const got = await tester.start({ timeoutMs: 10_000 });
  assert.ok(got.ok, JSON.stringify(got));
  const chain = (got.credentials.certificateChain.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
  assert.equal(chain.length, 3);
  const root = new X509Certificate(pki.rootPem);
  assert.equal(chain[2]!.fingerprint256, new X509Certificate(pki.midPem).fingerprint256);
  assert.ok(chain[0]!.verify(chain[1]!.publicKey) && chain[1]!.verify(chain[2]!.publicKey) && chain[2]!.verify(root.publicKey));
  assert.equal(got.credentials.root, root.fingerprint256.toLowerCase());

  // Two real sidecars, mTLS between them.
  await apply(cp, service('reviews', 9080, 'http'));
  await apply(cp, service('productpage', 9080, 'http'));
  const reviewsPort = await freePort();
  const reviews = trellisRun(t, cp, ['--service', 'reviews', '--workload', 'reviews-1', '--port', `${reviewsPort}:http`, '--', process.execPath, path.join(APPS, 'http-server.ts'), String(reviewsPort), 'reviews-v1'],
    { TRELLIS_JOIN_TOKEN: await joinToken(cp, 'reviews', 'reviews-1') });
  const ppPort = await freePort();
  const productpage = trellisRun(t, cp, ['--service', 'productpage', '--workload', 'productpage-1', '--port', `${ppPort}:http`, '--', process.execPath, path.join(APPS, 'http-server.ts'), String(ppPort), 'productpage'],
    { TRELLIS_JOIN_TOKEN: await joinToken(cp, 'productpage', 'productpage-1') });
  const outbound = await waitFor('productpage sidecar ready', () => {
    if (productpage.child.exitCode !== null) return Promise.reject(new Error(productpage.stderr()));
    return events(productpage.stderr()).find((e) => e.event === 'sidecar_ready')?.outbound as number | undefined;
  }, 30_000);
  await waitFor('reviews started', () => (events(reviews.stderr()).some((e) => e.event === 'app_started') ? true
    : reviews.child.exitCode !== null ? Promise.reject(new Error(reviews.stderr())) : undefined), 30_000);
  const answer = await waitFor('reviews answering through the sidecars over mTLS', async () => {
    const r = await viaSidecar(outbound, 'http://reviews:9080/hello').catch(() => undefined);
    return r?.status === 200 ? r : undefined;
  }, 30_000);
  // The callee's sidecar saw the caller's verified SPIFFE ID: the TLS handshake checked the path to the root.
  assert.deepEqual(answer, { status: 200, body: 'reviews-v1 /hello', peer: 'spiffe://corp.test/ns/default/sa/productpage' });

  // The data directory holds no root key (and not the operator key either).
  // (PEM line breaks, raw or JSON-escaped, removed; every P-256 PKCS#8 starts
  // with the same 48 base64 characters, the private scalar follows.)
  const stored = allFiles(dataDir).map((f) => readFileSync(f).toString('latin1')).join('\n').replace(/\\n|\n/g, '');
  assert.match(stored, /BEGIN PRIVATE KEY/, 'the store does hold a key: the Trellis intermediate\'s');
  for (const [what, body] of [['root', pki.rootKeyBody], ['operator intermediate', pki.midKeyBody]] as const) {
    assert.ok(!stored.includes(body.slice(48, 92)), `the data dir holds the ${what} key`);
  }
});

test('the CA with an operator intermediate: the chain in one file or a separate root, pathLen and missing-root errors name the field', async (t) => {
  const pki = await offlineRootAndIntermediate();
  const issue = async (operatorCa: { certPem: string; keyPem: string; rootPem?: string }, sa: string) => {
    const r = await startCertificateAuthority({ store: fakeCaStore(), trustDomain: 'corp.test', operatorCa });
    assert.ok(r.ok, JSON.stringify(r));
    const tok = await r.ca.createJoinToken({ namespace: 'shop', serviceAccount: sa, workload: `${sa}-1` });
    assert.ok(tok.ok);
    const { csrPem, privateKeyPem } = await generateKeyAndCsr();
    const s = await r.ca.signCsr(csrPem, { credentials: { joinToken: tok.token } });
    assert.ok(s.ok, JSON.stringify(s));
    return { ...s, key: privateKeyPem };
  };
  for (const [how, operatorCa] of [
    ['chain in --ca-cert', { certPem: pki.midPem + pki.rootPem, keyPem: pki.midKeyPem }],
    ['separate root', { certPem: pki.midPem, keyPem: pki.midKeyPem, rootPem: pki.rootPem }],
  ] as const) {
    const server = await issue(operatorCa, 'server');
    const client = await issue(operatorCa, 'client');
    assert.equal(server.trustBundle.trim(), pki.rootPem.trim(), `${how}: the bundle is the root alone`);
    assert.equal((server.certificateChain.match(/BEGIN CERTIFICATE/g) ?? []).length, 3, how);
    // Node's TLS, as the sidecars use it, verifies leaf -> Trellis intermediate -> operator intermediate -> root both ways.
    const srv = tls.createServer({ key: server.key, cert: server.certificateChain, ca: server.trustBundle, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (s) => s.end('ok'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    t.after(() => srv.close());
    const got = await new Promise<string>((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port: (srv.address() as { port: number }).port, key: client.key, cert: client.certificateChain, ca: client.trustBundle, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' });
      let d = '';
      c.setEncoding('utf8').on('data', (x: string) => (d += x)).on('end', () => resolve(d)).on('error', reject);
    });
    assert.equal(got, 'ok', how);
  }

  const refused = async (operatorCa: { certPem: string; keyPem: string; rootPem?: string }, re: RegExp) => {
    const r = await startCertificateAuthority({ store: fakeCaStore(), trustDomain: 'corp.test', operatorCa });
    assert.ok(!r.ok);
    assert.equal(r.code, 'INVALID_ARGUMENT');
    assert.match(r.message, re);
  };
  await refused({ certPem: pki.midPem, keyPem: pki.midKeyPem }, /^caCert: .*is not self-signed and its issuer .*Example Offline Root.* is not among the given certificates/);
  const tight = await offlineRootAndIntermediate({ intermediatePathLen: 0 });
  await refused({ certPem: tight.midPem, keyPem: tight.midKeyPem, rootPem: tight.rootPem }, /^caCert: .*Example Mesh CA.* has pathLenConstraint 0, but 1 CA certificate\(s\) sit beneath it/);
  await refused({ certPem: pki.midPem, keyPem: tight.midKeyPem, rootPem: pki.rootPem }, /^caKey: the key does not belong/);
  await refused({ certPem: pki.midPem, keyPem: pki.midKeyPem, rootPem: tight.rootPem }, /not among the given certificates/);
});

test('trellis control-plane with an intermediate and no path to its root exits 2 with one line naming the flag', { timeout: 30_000 }, async (t) => {
  const pki = await offlineRootAndIntermediate();
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-offline-root-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'ca.pem'), pki.midPem, { mode: 0o600 });
  writeFileSync(path.join(dir, 'ca.key'), pki.midKeyPem, { mode: 0o600 });
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, [TRELLIS, 'control-plane', '--data-dir', path.join(dir, 'data'), '--api-port', '0', '--xds-port', '0',
      '--ca-cert', path.join(dir, 'ca.pem'), '--ca-key', path.join(dir, 'ca.key')], { cwd: ROOT, env: { ...process.env, NODE_NO_WARNINGS: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    c.once('exit', (code) => resolve({ code, stderr }));
  });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^trellis control-plane: CA: caCert: .*is not self-signed.*give the chain up to the root/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
});
