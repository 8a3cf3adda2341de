import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCertificateAuthority, type CertificateAuthority } from '../../control-plane/ca/ca.ts';
import { fakeCaStore } from '../../control-plane/ca/fake-store.ts';
import type { CaClient } from './ca-client.ts';
import { createWorkloadIdentity } from './workload-identity.ts';
import { trustBundleFromSecret, trustBundleSubscription, TRUST_BUNDLE_SECRET } from './trust-bundle-secret.ts';

async function setup(workloadTtlMs?: number): Promise<{ ca: CertificateAuthority; token: string }> {
  const r = await startCertificateAuthority({ store: fakeCaStore(), trustDomain: 'mesh.test', ...(workloadTtlMs ? { workloadTtlMs } : {}) });
  assert.ok(r.ok);
  const t = await r.ca.createJoinToken({ namespace: 'shop', serviceAccount: 'cart', workload: 'cart-1' });
  assert.ok(t.ok);
  return { ca: r.ca, token: t.token };
}

/** A CA client in front of the CA itself, failing the first `failures` calls. */
function client(ca: CertificateAuthority, token: string, failures: { n: number; retryable: boolean }): CaClient & { calls: number } {
  const c = {
    calls: 0,
    async requestCertificate(csrPem: string) {
      c.calls++;
      if (failures.n > 0) {
        failures.n--;
        return { ok: false as const, code: 'UNAVAILABLE', message: 'down', retryable: failures.retryable };
      }
      const r = await ca.signCsr(csrPem, { credentials: { joinToken: token } });
      return r.ok ? { ok: true as const, value: r } : { ok: false as const, code: r.code, message: r.message, retryable: false };
    },
    async fetchTrustBundle() {
      return { ok: true as const, value: ca.trustBundle().pem };
    },
  };
  return c;
}

test('start retries transient failures and gives up at once on a refused token', async (t) => {
  const { ca, token } = await setup();
  const flaky = client(ca, token, { n: 2, retryable: true });
  const id = createWorkloadIdentity({ ca: flaky });
  t.after(() => id.stop());
  const r = await id.start({ timeoutMs: 10_000 });
  assert.ok(r.ok);
  assert.equal(flaky.calls, 3);
  assert.equal(id.describe().spiffeId, 'spiffe://mesh.test/ns/shop/sa/cart');

  const refused = client(ca, 'tjt_bad', { n: 1, retryable: false });
  const id2 = createWorkloadIdentity({ ca: refused });
  t.after(() => id2.stop());
  const r2 = await id2.start({ timeoutMs: 10_000 });
  assert.deepEqual(r2.ok ? null : r2.code, 'UNAVAILABLE');
  assert.equal(refused.calls, 1);
});

test('a failed renewal keeps the current certificate and retries; onChange sees each rotation', async (t) => {
  const { ca, token } = await setup(2000);
  const failures = { n: 0, retryable: true };
  const c = client(ca, token, failures);
  const id = createWorkloadIdentity({ ca: c, renewAt: 0.3, jitter: 0 });
  t.after(() => id.stop());
  assert.ok((await id.start()).ok);
  const first = id.current()!;
  failures.n = 1;
  const seen: string[] = [];
  id.onChange((cr) => seen.push(cr.certificateChain));
  const end = Date.now() + 5000;
  while (seen.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  assert.equal(seen.length, 1, 'renewed after one failed attempt');
  assert.notEqual(id.current()!.certificateChain, first.certificateChain);
  assert.equal(c.calls, 3);
  assert.equal(id.describe().lastError, null);
});

test('the trust bundle Secret: parsed, validated, applied; garbage is NACKed and changes nothing', async (t) => {
  const { ca, token } = await setup();
  const id = createWorkloadIdentity({ ca: client(ca, token, { n: 0, retryable: true }) });
  t.after(() => id.stop());
  assert.ok((await id.start()).ok);
  const sub = trustBundleSubscription(id);
  assert.deepEqual(sub.names, [TRUST_BUNDLE_SECRET]);
  assert.match(sub.accept(TRUST_BUNDLE_SECRET, { validationContext: {} }) ?? '', /inlineString is required/);
  assert.match(sub.accept(TRUST_BUNDLE_SECRET, { validationContext: { trustedCa: { inlineString: 'nope' } } }) ?? '', /no PEM/);
  const leaf = id.current()!.certificateChain;
  assert.match(trustBundleFromSecret({ validationContext: { trustedCa: { inlineString: leaf } } }).ok ? '' : 'not a CA', /not a CA/);
  assert.equal(id.describe().trustBundle.length, 1);
  await ca.stageRoot();
  assert.equal(sub.accept(TRUST_BUNDLE_SECRET, { validationContext: { trustedCa: { inlineString: ca.trustBundle().pem } } }), undefined);
  assert.equal(id.describe().trustBundle.length, 2);
  assert.equal(id.describe().rotations, 1, 'a bundle update is not a new certificate');
});

test('root rollover: a bundle whose first (active) root is not our certificate\'s makes us renew onto it; staging alone does not', async (t) => {
  const { ca, token } = await setup();
  const c = client(ca, token, { n: 0, retryable: true });
  const id = createWorkloadIdentity({ ca: c, rolloverWindowMs: 200 });
  t.after(() => id.stop());
  assert.ok((await id.start()).ok);
  const oldRoot = ca.trustBundle().roots[0]!.fingerprint;
  assert.deepEqual([id.describe().root, id.describe().rootActive], [oldRoot, true]);
  const staged = await ca.stageRoot();
  id.setTrustBundle(ca.trustBundle().pem);
  await new Promise((r) => setTimeout(r, 400));
  assert.deepEqual([id.describe().rotations, id.describe().root], [1, oldRoot], 'a staged root changes nothing');
  await ca.activateRoot();
  id.setTrustBundle(ca.trustBundle().pem);
  assert.deepEqual([id.describe().root, id.describe().rootActive], [oldRoot, false], 'on the previous root until renewed');
  const end = Date.now() + 5000;
  while (id.describe().root !== staged && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual([id.describe().rotations, id.describe().root, id.describe().rootActive], [2, staged, true], 'renewed onto the active root within the window');
  assert.deepEqual((await ca.holders(oldRoot)).length, 0, 'nothing holds the old root any more');
});
