// A workload's proof of identity for the registry: a certificate of its own
// from its join token (one use), renewed by proof of possession so the
// short-lived token is needed once; every registry call is signed with it
// (registration.ts), and the control plane then knows the workload speaks
// mTLS (control-plane/registry-api.ts). Used by `trellis run` and
// `trellis gateway --register`.
import { createCaClient } from '../proxy/identity/ca-client.ts';
import { createWorkloadIdentity, type WorkloadIdentity } from '../proxy/identity/workload-identity.ts';
import type { WorkloadSigner } from './registration.ts';

export type WorkloadProof = { ok: true; signer: WorkloadSigner; stop(): void } | { ok: false; message: string };

export async function proveWorkloadIdentity(opts: { apiUrl: string; joinToken: string; caBundle?: string; timeoutMs?: number }): Promise<WorkloadProof> {
  const identity: WorkloadIdentity = createWorkloadIdentity({
    ca: createCaClient({ baseUrl: opts.apiUrl, joinToken: opts.joinToken, ...(opts.caBundle ? { caBundle: opts.caBundle } : {}) }),
    bundlePollMs: 0,
  });
  const got = await identity.start({ timeoutMs: opts.timeoutMs ?? 30_000 });
  if (!got.ok) {
    identity.stop();
    return { ok: false, message: `cannot prove the workload's identity with its join token: ${got.code}: ${got.message}` };
  }
  return { ok: true, signer: () => identity.current(), stop: () => identity.stop() };
}
