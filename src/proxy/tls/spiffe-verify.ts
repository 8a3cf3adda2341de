// SPIFFE checks on a TLS peer: the verified certificate's URI SAN is the
// peer's identity. Chain verification is OpenSSL's (against the trust
// bundle); these functions only read and compare the identity.
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { parseSpiffeId } from '../../lib/spiffe.ts';

export function uriSansOf(cert: Pick<PeerCertificate, 'subjectaltname'> | undefined): string[] {
  const text = cert?.subjectaltname ?? '';
  const out: string[] = [];
  for (const part of text.split(', ')) if (part.startsWith('URI:')) out.push(part.slice(4));
  return out;
}

/** The peer's SPIFFE ID when it presented exactly one valid workload SPIFFE
 * URI SAN (and, with `trustDomain`, in that trust domain). */
export function peerSpiffeId(socket: TLSSocket, trustDomain?: string): string | undefined {
  const uris = uriSansOf(socket.getPeerCertificate()).filter((u) => u.startsWith('spiffe://'));
  if (uris.length !== 1) return undefined;
  const parsed = parseSpiffeId(uris[0]!);
  if (!parsed || (trustDomain !== undefined && parsed.trustDomain !== trustDomain)) return undefined;
  return uris[0];
}

export interface SanMismatchError extends Error {
  code: 'ERR_TLS_SPIFFE_MISMATCH';
}

/** A `checkServerIdentity` for tls.connect: the server must present one of
 * `expected` (any SPIFFE ID when `expected` is empty). Host names are not
 * checked: mesh identity is the SPIFFE ID, not the DNS name. */
export function spiffeServerCheck(expected: readonly string[]): (host: string, cert: PeerCertificate) => Error | undefined {
  const want = new Set(expected);
  return function checkSpiffe(_host, cert) {
    const got = uriSansOf(cert).filter((u) => u.startsWith('spiffe://'));
    const ok = want.size === 0 ? got.some((u) => parseSpiffeId(u) !== undefined) : got.some((u) => want.has(u));
    if (ok) return undefined;
    const err = new Error(`upstream identity ${got.join(',') || '<none>'} is not one of ${[...want].join(',') || 'any SPIFFE ID'}`) as SanMismatchError;
    err.code = 'ERR_TLS_SPIFFE_MISMATCH';
    return err;
  };
}
