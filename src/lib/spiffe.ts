// SPIFFE IDs of mesh workloads: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.

const TD = /^[a-z0-9._-]{1,255}$/;
const SEG = /^[A-Za-z0-9._-]{1,253}$/;

export function spiffeIdFor(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** The control plane's own identity: not of the /ns/<ns>/sa/<sa> form, so no
 * join token (always bound to a namespace and service account) can get it. */
export function controlPlaneSpiffeId(trustDomain: string): string {
  return `spiffe://${trustDomain}/trellis/control-plane`;
}

export interface SpiffeId {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** Parse a workload SPIFFE ID; undefined when it is not one. */
export function parseSpiffeId(id: string): SpiffeId | undefined {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id);
  if (!m || !TD.test(m[1]!) || !SEG.test(m[2]!) || !SEG.test(m[3]!)) return undefined;
  return { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! };
}

export function isValidTrustDomain(td: string): boolean {
  return TD.test(td);
}
