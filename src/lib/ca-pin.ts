// The CA pin a join token carries (kubeadm's discovery-token CA hash):
// `sha256:<hex>` of a root certificate's DER SubjectPublicKeyInfo. Minted
// by the control plane (control-plane/ca/join-tokens.ts), checked by the
// proxy before it trusts anything it is told (proxy/identity/ca-client.ts).
import { createHash, X509Certificate } from 'node:crypto';

export function spkiPin(certPem: string): string {
  const der = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(der).digest('hex')}`;
}

/** A join token's two parts, `tjt_<secret>[.<hex>]`: the secret (what the
 * CA hashes and checks) and the CA pin, `sha256:<hex>`. */
export function parseJoinToken(token: string): { secret: string; caPin?: string } {
  const m = /^(tjt_[A-Za-z0-9_-]{43})(?:\.([0-9a-f]{64}))?$/.exec(token.trim());
  if (!m) return { secret: token.trim() };
  return { secret: m[1]!, ...(m[2] ? { caPin: `sha256:${m[2]}` } : {}) };
}

/** The CA certificates of `bundlePem` whose key matches `pin`. */
export function rootsMatchingPin(bundlePem: string, pin: string): string[] {
  const blocks = bundlePem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.filter((b) => {
    try {
      return new X509Certificate(b).ca && spkiPin(b) === pin;
    } catch {
      return false;
    }
  });
}
