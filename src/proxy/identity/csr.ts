// The workload's key pair and its certificate signing request. The key is
// generated here (ECDSA P-256) and never leaves the process: only the CSR
// (public key + signature) goes to the control plane. The CSR names no
// identity: the CA takes it from the join token.
//
// The PKCS#10 request (RFC 2986) is a few fixed DER structures around the
// public key node:crypto exports, signed with node:crypto, so the proxy does
// not load an X.509 library for it (@peculiar/x509 and its ASN.1 stack keep
// ~20 MB of a sidecar's memory; the control plane, which parses and signs
// certificates, still uses it).
import { generateKeyPairSync, sign } from 'node:crypto';

export interface WorkloadKey {
  /** PKCS#8 PEM, for node:tls. */
  readonly privateKeyPem: string;
  readonly csrPem: string;
}

// ---- DER ----

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
}

const seq = (...c: Buffer[]): Buffer => tlv(0x30, ...c);
const set = (...c: Buffer[]): Buffer => tlv(0x31, ...c);

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const b: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) b.unshift(0x80 | (v & 0x7f));
    out.push(...b);
  }
  return tlv(0x06, Buffer.from(out));
}

const OID_ORGANIZATION = '2.5.4.10';
const OID_COMMON_NAME = '2.5.4.3';
const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';

function rdn(type: string, value: string): Buffer {
  return set(seq(oid(type), tlv(0x0c, Buffer.from(value, 'utf8'))));
}

function pem(der: Buffer, label: string): string {
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

export async function generateKeyAndCsr(opts: { subjectHint?: string; sanUri?: string } = {}): Promise<WorkloadKey> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const subject = seq(rdn(OID_ORGANIZATION, 'Trellis'), ...(opts.subjectHint ? [rdn(OID_COMMON_NAME, opts.subjectHint)] : []));
  const attributes = opts.sanUri
    ? tlv(0xa0, seq(oid(OID_EXTENSION_REQUEST), set(seq(seq(oid(OID_SUBJECT_ALT_NAME),
        tlv(0x04, seq(tlv(0x86, Buffer.from(opts.sanUri, 'utf8'))))))))) // [6] uniformResourceIdentifier
    : tlv(0xa0);
  const info = seq(tlv(0x02, Buffer.from([0])), subject, publicKey.export({ type: 'spki', format: 'der' }), attributes);
  const signature = sign('sha256', info, { key: privateKey, dsaEncoding: 'der' });
  const csr = seq(info, seq(oid(OID_ECDSA_SHA256)), tlv(0x03, Buffer.from([0]), signature));
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    csrPem: pem(csr, 'CERTIFICATE REQUEST'),
  };
}
