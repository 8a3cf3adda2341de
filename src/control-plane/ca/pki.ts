// X.509 building blocks for the mesh CA, on WebCrypto + @peculiar/x509:
// ECDSA P-256 keys, a self-signed root, an intermediate, workload leaf
// certificates carrying one SPIFFE URI SAN, PEM helpers and fingerprints.
import { createHash, X509Certificate as NodeX509 } from 'node:crypto';
import * as x509 from '../../lib/x509.ts';

export const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface KeyPairPem {
  readonly keys: CryptoKeyPair;
  readonly privateKeyPem: string;
}

export async function generateKeyPair(): Promise<KeyPairPem> {
  const keys = (await crypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { keys, privateKeyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}

/** Import a PKCS#8 PEM EC P-256 private key (with its public half from `certPem`). */
export async function importKeyPair(privateKeyPem: string, certPem: string): Promise<CryptoKeyPair> {
  const der = x509.PemConverter.decodeFirst(privateKeyPem);
  const privateKey = await crypto.subtle.importKey('pkcs8', der, EC_ALG, true, ['sign']);
  const publicKey = await new x509.X509Certificate(certPem).publicKey.export(EC_ALG, ['verify']);
  return { privateKey, publicKey };
}

function serial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f; // positive
  return Buffer.from(b).toString('hex');
}

export async function createRoot(opts: { trustDomain: string; now: Date; ttlMs: number; keys: CryptoKeyPair }): Promise<string> {
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `O=Trellis, OU=${opts.trustDomain}, CN=Trellis Root CA ${opts.now.toISOString()}`,
    notBefore: new Date(opts.now.getTime() - 60_000),
    notAfter: new Date(opts.now.getTime() + opts.ttlMs),
    keys: opts.keys,
    signingAlgorithm: EC_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(opts.keys.publicKey),
    ],
  });
  return cert.toString('pem');
}

export async function createIntermediate(opts: {
  trustDomain: string; now: Date; ttlMs: number; keys: CryptoKeyPair; issuerCertPem: string; issuerKey: CryptoKey;
}): Promise<string> {
  const issuer = new x509.X509Certificate(opts.issuerCertPem);
  const notAfter = Math.min(opts.now.getTime() + opts.ttlMs, issuer.notAfter.getTime());
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `O=Trellis, OU=${opts.trustDomain}, CN=Trellis Intermediate CA ${opts.now.toISOString()}`,
    issuer: issuer.subject,
    notBefore: new Date(opts.now.getTime() - 60_000),
    notAfter: new Date(notAfter),
    publicKey: opts.keys.publicKey,
    signingKey: opts.issuerKey,
    signingAlgorithm: EC_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(opts.keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey),
    ],
  });
  return cert.toString('pem');
}

/** A leaf certificate signed by `issuer`, serverAuth + clientAuth, not a CA,
 * valid for `ttlMs` (never past the issuer). With an empty subject the SAN
 * extension is critical (RFC 5280 4.2.1.6). */
async function signLeaf(opts: {
  subject: string; sans: x509.JsonGeneralName[]; publicKey: x509.PublicKey | CryptoKey; now: Date; ttlMs: number; issuerCertPem: string; issuerKey: CryptoKey;
}): Promise<{ certPem: string; notAfter: Date }> {
  const issuer = new x509.X509Certificate(opts.issuerCertPem);
  const notAfter = new Date(Math.min(opts.now.getTime() + opts.ttlMs, issuer.notAfter.getTime()));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: opts.subject,
    issuer: issuer.subject,
    notBefore: new Date(opts.now.getTime() - 60_000),
    notAfter,
    publicKey: opts.publicKey,
    signingKey: opts.issuerKey,
    signingAlgorithm: EC_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(opts.sans, opts.subject === ''),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), notAfter };
}

/** A workload leaf: the SPIFFE ID as the only SAN (URI, critical because the
 * subject is empty), serverAuth + clientAuth, not a CA. */
export function signWorkload(opts: {
  spiffeId: string; publicKey: x509.PublicKey; now: Date; ttlMs: number; issuerCertPem: string; issuerKey: CryptoKey;
}): Promise<{ certPem: string; notAfter: Date }> {
  return signLeaf({ ...opts, subject: '', sans: [{ type: 'url', value: opts.spiffeId }] });
}

/** The control plane's serving certificate: its SPIFFE ID (what proxies
 * check) plus DNS names and IP addresses (what browsers and the CLI check),
 * serverAuth + clientAuth. */
export function signServing(opts: {
  spiffeId: string; dnsNames: readonly string[]; ipAddresses: readonly string[]; publicKey: CryptoKey; now: Date; ttlMs: number; issuerCertPem: string; issuerKey: CryptoKey;
}): Promise<{ certPem: string; notAfter: Date }> {
  return signLeaf({
    ...opts,
    subject: 'O=Trellis, CN=trellis-control-plane',
    sans: [
      { type: 'url', value: opts.spiffeId },
      ...opts.dnsNames.map((value) => ({ type: 'dns' as const, value })),
      ...opts.ipAddresses.map((value) => ({ type: 'ip' as const, value })),
    ],
  });
}

/** SHA-256 of the DER, lower-case hex with colons (as `openssl x509 -fingerprint -sha256`). */
export function fingerprint(certPem: string): string {
  return new NodeX509(certPem).fingerprint256.toLowerCase();
}

/** Every PEM certificate block in `text`, in order. */
export function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((s) => `${s}\n`) ?? [];
}

export function notAfterOf(certPem: string): Date {
  return new Date(new NodeX509(certPem).validTo);
}

/** The URI SANs of a certificate (node's `subjectAltName` text parsed). */
export function uriSans(certPem: string): string[] {
  return parseUriSans(new NodeX509(certPem).subjectAltName ?? '');
}

/** `URI:spiffe://a, DNS:x` (node's subjectaltname format) -> URIs. Values
 * containing commas are quoted by node; SPIFFE IDs never contain commas. */
export function parseUriSans(text: string): string[] {
  const out: string[] = [];
  for (const part of text.split(', ')) if (part.startsWith('URI:')) out.push(part.slice(4));
  return out;
}

export function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/**
 * An operator CA's path up to its self-signed root: `certs[0]` is the CA
 * whose key the control plane holds, the rest (its chain and the root, in any
 * order) come from the same file or a separate root file. Every link must
 * verify, every certificate must be a CA, and each one's pathLenConstraint
 * must leave room for the CAs beneath it, counting the Trellis intermediate
 * that the operator CA signs (RFC 5280 4.2.1.9). Returns the path from the
 * operator CA to the root, root last.
 */
export function operatorPath(certs: readonly string[]): { ok: true; path: string[] } | { ok: false; message: string } {
  if (certs.length === 0) return { ok: false, message: 'no PEM certificate found' };
  const pool = certs.map((pem) => ({ pem, node: new NodeX509(pem) }));
  const path = [pool[0]!];
  for (;;) {
    const cur = path[path.length - 1]!;
    if (cur.node.checkIssued(cur.node) && cur.node.verify(cur.node.publicKey)) break; // self-signed: the root
    const issuer = pool.find((c) => !path.includes(c) && cur.node.checkIssued(c.node) && cur.node.verify(c.node.publicKey));
    if (!issuer) {
      return { ok: false, message: `"${cur.node.subject.replace(/\n/g, ', ')}" is not self-signed and its issuer "${cur.node.issuer.replace(/\n/g, ', ')}" is not among the given certificates: give the chain up to the root (the root's certificate, not its key)` };
    }
    path.push(issuer);
  }
  for (let i = 0; i < path.length; i++) {
    const c = new x509.X509Certificate(path[i]!.pem);
    const bc = c.getExtension(x509.BasicConstraintsExtension);
    const name = `"${c.subject}"`;
    if (!bc?.ca) return { ok: false, message: `${name} is not a CA (basicConstraints cA is false)` };
    // Beneath path[i]: the Trellis intermediate and path[0..i-1].
    const below = i + 1;
    if (bc.pathLength !== undefined && bc.pathLength < below) {
      return { ok: false, message: `${name} has pathLenConstraint ${bc.pathLength}, but ${below} CA certificate(s) sit beneath it (the Trellis intermediate${i > 0 ? ` and ${i} of the given chain` : ''}): it needs at least ${below}` };
    }
    const ku = c.getExtension(x509.KeyUsagesExtension);
    if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) return { ok: false, message: `${name} lacks keyUsage keyCertSign` };
  }
  return { ok: true, path: path.map((c) => c.pem) };
}

/** Does `keys.privateKey` belong to the certificate's public key? */
export async function keyMatches(keys: CryptoKeyPair): Promise<boolean> {
  const data = crypto.getRandomValues(new Uint8Array(32));
  const sig = await crypto.subtle.sign(EC_ALG, keys.privateKey, data);
  return crypto.subtle.verify(EC_ALG, keys.publicKey, sig, data);
}
