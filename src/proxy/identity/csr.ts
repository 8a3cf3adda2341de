// The workload's key pair and its certificate signing request. The key is
// generated here (ECDSA P-256, WebCrypto) and never leaves the process: only
// the CSR (public key + signature) goes to the control plane. The CSR names
// no identity: the CA takes it from the join token.
import * as x509 from '../../lib/x509.ts';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface WorkloadKey {
  /** PKCS#8 PEM, for node:tls. */
  readonly privateKeyPem: string;
  readonly csrPem: string;
}

export async function generateKeyAndCsr(opts: { subjectHint?: string; sanUri?: string } = {}): Promise<WorkloadKey> {
  const keys = (await crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: opts.subjectHint ? `O=Trellis, CN=${opts.subjectHint}` : 'O=Trellis',
    keys,
    signingAlgorithm: ALG,
    extensions: opts.sanUri ? [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: opts.sanUri }])] : [],
  });
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { privateKeyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), csrPem: csr.toString('pem') };
}
