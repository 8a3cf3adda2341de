// The mesh trust bundle as the control plane pushes it: the xDS Secret
// `trellis-trust-bundle` with `validationContext.trustedCa.inlineString`.
import { X509Certificate } from 'node:crypto';
import type { WorkloadIdentity } from './workload-identity.ts';

export const TRUST_BUNDLE_SECRET = 'trellis-trust-bundle';

export type BundleResult = { ok: true; pem: string } | { ok: false; message: string };

export function trustBundleFromSecret(secret: unknown): BundleResult {
  const s = secret as { validationContext?: { trustedCa?: { inlineString?: unknown; inlineBytes?: unknown } } } | null;
  const ca = s?.validationContext?.trustedCa;
  const pem = typeof ca?.inlineString === 'string' ? ca.inlineString : typeof ca?.inlineBytes === 'string' ? Buffer.from(ca.inlineBytes, 'base64').toString('utf8') : undefined;
  if (pem === undefined) return { ok: false, message: `secret ${TRUST_BUNDLE_SECRET}: validationContext.trustedCa.inlineString is required` };
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return { ok: false, message: `secret ${TRUST_BUNDLE_SECRET}: no PEM certificate in trustedCa` };
  for (const [i, b] of blocks.entries()) {
    try {
      if (!new X509Certificate(b).ca) return { ok: false, message: `secret ${TRUST_BUNDLE_SECRET}: certificate ${i} is not a CA` };
    } catch (err) {
      return { ok: false, message: `secret ${TRUST_BUNDLE_SECRET}: certificate ${i} does not parse: ${(err as Error).message}` };
    }
  }
  return { ok: true, pem };
}

/** The `secrets` option of startXdsSource that feeds the identity's trust bundle. */
export function trustBundleSubscription(identity: Pick<WorkloadIdentity, 'setTrustBundle'>): { names: string[]; accept(name: string, secret: unknown): string | undefined } {
  return {
    names: [TRUST_BUNDLE_SECRET],
    accept(name, secret) {
      if (name !== TRUST_BUNDLE_SECRET) return undefined;
      const r = trustBundleFromSecret(secret);
      if (!r.ok) return r.message;
      identity.setTrustBundle(r.pem);
      return undefined;
    },
  };
}
