// The hand-written PKCS#10 request, read back by an independent parser
// (@peculiar/x509, what the control plane's CA uses): structure, key,
// signature, subject and the requested SPIFFE ID.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import * as x509 from '../../lib/x509.ts';
import { generateKeyAndCsr } from './csr.ts';

test('a CSR without a SAN: ECDSA P-256, O=Trellis, a signature that verifies, and the key that signed it', async () => {
  const { csrPem, privateKeyPem } = await generateKeyAndCsr();
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  assert.equal(csr.subject, 'O=Trellis');
  const alg = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  assert.deepEqual([alg.name, alg.namedCurve], ['ECDSA', 'P-256']);
  assert.equal(await csr.verify(), true);
  assert.equal(csr.extensions.length, 0);
  const fromKey = createPublicKey(createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'der' });
  assert.deepEqual(Buffer.from(csr.publicKey.rawData), fromKey);
});

test('a CSR asking for a SPIFFE ID carries it as a URI SAN in an extension request', async () => {
  const id = 'spiffe://mesh.test/ns/shop/sa/reviews';
  const { csrPem } = await generateKeyAndCsr({ subjectHint: 'reviews-1', sanUri: id });
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  assert.equal(csr.subject, 'O=Trellis, CN=reviews-1');
  assert.equal(await csr.verify(), true);
  const san = csr.extensions.find((e) => e instanceof x509.SubjectAlternativeNameExtension) as x509.SubjectAlternativeNameExtension | undefined;
  assert.deepEqual(san?.names.items.map((n) => [n.type, n.value]), [['url', id]]);
});

test('every CSR has its own key', async () => {
  const a = await generateKeyAndCsr();
  const b = await generateKeyAndCsr();
  assert.notEqual(a.privateKeyPem, b.privateKeyPem);
  assert.notEqual(a.csrPem, b.csrPem);
});
