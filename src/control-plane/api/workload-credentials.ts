// The credentials a workload (its runner or sidecar) proves its identity
// with on the API, besides API tokens (auth.ts):
//   Authorization: Bearer tjt_...          a join token, checked without
//                                          spending a use
//   Authorization: Trellis-Workload <chain>.<signature>
//     x-trellis-date: <ISO time>           the workload certificate chain
//                                          (base64 PEM) and an ECDSA-SHA256
//                                          signature (base64) with its key
//                                          over "METHOD\nPATH\nDATE"; the
//                                          date within 5 minutes
//   a client certificate on the HTTPS API  verified by the TLS handshake
// Each makes the caller a registrar for the certificate's (or token's)
// namespace and service account whose identity is proven: the registry then
// marks its workloads as speaking mTLS (registry-api.ts).
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { verify, X509Certificate } from 'node:crypto';
import { apiError, type ApiError } from './http-errors.ts';
import { bearerToken, type Principal } from './auth.ts';
import type { CertificateAuthority } from '../ca/ca.ts';

export const WORKLOAD_AUTH_SCHEME = 'Trellis-Workload';
export const WORKLOAD_DATE_HEADER = 'x-trellis-date';
const MAX_SKEW_MS = 5 * 60_000;

/** What a workload signs for one request. */
export function workloadSigningPayload(method: string, path: string, date: string): string {
  return `${method.toUpperCase()}\n${path}\n${date}`;
}

export function workloadCredentials(ca: CertificateAuthority, now: () => number = Date.now): (req: IncomingMessage) => Promise<Principal | ApiError | undefined> {
  const unauthenticated = (why: string): ApiError => apiError('unauthenticated', why);
  return async (req) => {
    const bearer = bearerToken(req);
    if (bearer?.startsWith('tjt_')) {
      const v = await ca.verifyJoinToken(bearer);
      if (!v.ok) return unauthenticated(`join token: ${v.message}`);
      return { name: `join token ${v.binding.id ?? ''}`.trim(), role: 'registrar', namespace: v.binding.namespace, serviceAccount: v.binding.serviceAccount, via: 'join-token' };
    }
    const h = req.headers.authorization ?? '';
    if (h.startsWith(`${WORKLOAD_AUTH_SCHEME} `)) {
      const [chainB64, sigB64] = h.slice(WORKLOAD_AUTH_SCHEME.length + 1).trim().split('.');
      const date = req.headers[WORKLOAD_DATE_HEADER];
      if (!chainB64 || !sigB64 || typeof date !== 'string') return unauthenticated(`${WORKLOAD_AUTH_SCHEME}: expected "<base64 chain>.<base64 signature>" and an ${WORKLOAD_DATE_HEADER} header`);
      const t = Date.parse(date);
      if (!Number.isFinite(t) || Math.abs(t - now()) > MAX_SKEW_MS) return unauthenticated(`${WORKLOAD_AUTH_SCHEME}: ${WORKLOAD_DATE_HEADER} must be within 5 minutes of the control plane's clock (got ${date})`);
      const cert = ca.verifyWorkloadCertificate(Buffer.from(chainB64, 'base64').toString('utf8'));
      if (!cert.ok) return unauthenticated(cert.message);
      const path = req.url ?? '/';
      let good = false;
      try {
        good = verify('sha256', Buffer.from(workloadSigningPayload(req.method ?? 'GET', path, date)), cert.leaf.publicKey, Buffer.from(sigB64, 'base64'));
      } catch {
        good = false;
      }
      if (!good) return unauthenticated(`${WORKLOAD_AUTH_SCHEME}: the signature was not made with the certificate's key over this request`);
      return { name: cert.spiffeId, role: 'registrar', namespace: cert.namespace, serviceAccount: cert.serviceAccount, via: 'certificate' };
    }
    // A client certificate on the HTTPS API (verified against the bundle by the handshake).
    const sock = req.socket as Partial<TLSSocket>;
    if (bearer === undefined && sock.encrypted && sock.authorized) {
      const peer = sock.getPeerCertificate?.(true) as (ReturnType<TLSSocket['getPeerCertificate']> & { issuerCertificate?: { raw?: Buffer } }) | undefined;
      if (peer?.raw) {
        const pem = new X509Certificate(peer.raw).toString();
        const cert = ca.verifyWorkloadCertificate(`${pem}${peer.issuerCertificate?.raw ? new X509Certificate(peer.issuerCertificate.raw).toString() : ''}`);
        if (cert.ok) return { name: cert.spiffeId, role: 'registrar', namespace: cert.namespace, serviceAccount: cert.serviceAccount, via: 'certificate' };
      }
    }
    return undefined;
  };
}

/** Did the caller prove the identity it registers under (a workload credential, not an API token)? */
export function provesIdentity(p: Principal | undefined): boolean {
  return p !== undefined && (p.via === 'certificate' || p.via === 'join-token');
}
