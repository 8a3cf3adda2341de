// Shared setup for the sidecar mTLS tests: one CA, identities for the caller
// ("reviews", proxy A) and the callee ("ratings", proxy B).
import type { TestContext } from 'node:test';
import { startIdentity, startTestCa, type TestCa } from './harness.ts';
import type { WorkloadIdentity, WorkloadIdentityOptions } from '../../src/proxy/identity/workload-identity.ts';
import type { CaOptions } from '../../src/control-plane/ca/ca.ts';

export { get, spiffe, startApp, startInbound, startOutbound } from './harness.ts';

export async function startCaAndIds(t: TestContext, o: { ca?: Partial<CaOptions>; id?: Partial<WorkloadIdentityOptions> } = {}): Promise<{ tca: TestCa; a: WorkloadIdentity; b: WorkloadIdentity }> {
  const tca = await startTestCa(t, o.ca);
  const a = await startIdentity(t, tca, 'reviews', o.id);
  const b = await startIdentity(t, tca, 'ratings', o.id);
  return { tca, a, b };
}
