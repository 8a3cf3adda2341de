// The proxy's mTLS metrics listener, with real certificates from a real mesh
// CA and real sockets: the control plane's serving certificate reads the
// metrics (and the scraper records them); no client certificate, another
// CA's, or a workload's certificate cannot; nothing but /stats/prometheus is
// served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCertificateAuthority, type CertificateAuthority } from '../control-plane/ca/ca.ts';
import { fakeCaStore } from '../control-plane/ca/fake-store.ts';
import { createWorkloadIdentity, type WorkloadIdentity } from './identity/workload-identity.ts';
import { startMetricsListener } from './metrics-listener.ts';
import { tlsFetch } from '../lib/tls-fetch.ts';
import { Scraper } from '../control-plane/telemetry/scraper.ts';

async function workload(ca: CertificateAuthority, namespace: string, serviceAccount: string): Promise<WorkloadIdentity> {
  const t = await ca.createJoinToken({ namespace, serviceAccount, workload: `${serviceAccount}-1` });
  assert.ok(t.ok);
  const id = createWorkloadIdentity({
    ca: {
      async requestCertificate(csrPem: string) {
        const r = await ca.signCsr(csrPem, { credentials: { joinToken: t.token } });
        return r.ok ? { ok: true as const, value: r } : { ok: false as const, code: r.code, message: r.message, retryable: false };
      },
      async fetchTrustBundle() {
        return { ok: true as const, value: ca.trustBundle().pem };
      },
    },
  });
  const r = await id.start({ timeoutMs: 10_000 });
  assert.ok(r.ok);
  return id;
}

const METRICS = '# TYPE istio_requests_total counter\nistio_requests_total{reporter="destination",destination_workload="cart-1",destination_workload_namespace="shop",response_code="200"} 7\n';

test('only the control plane\'s certificate reads the metrics listener; the scraper records them over mTLS', async (t) => {
  const r = await startCertificateAuthority({ store: fakeCaStore(), trustDomain: 'mesh.test' });
  assert.ok(r.ok);
  const ca = r.ca;
  const proxyId = await workload(ca, 'shop', 'cart');
  const otherId = await workload(ca, 'shop', 'intruder');
  t.after(() => { proxyId.stop(); otherId.stop(); });
  const m = await startMetricsListener('127.0.0.1', 0, { identity: proxyId, expose: () => METRICS });
  assert.ok(m.ok, m.ok ? '' : m.error);
  t.after(() => m.listener.close());
  const url = `https://127.0.0.1:${m.listener.port}`;
  const bundle = ca.trustBundle().pem;
  const serving = await ca.issueServingCertificate({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const anyName = { checkServerIdentity: () => undefined };

  // The control plane (spiffe://mesh.test/trellis/control-plane): 200.
  const ok = await tlsFetch(`${url}/stats/prometheus`, { ca: bundle, cert: serving.certificateChain, key: serving.privateKeyPem, ...anyName });
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), METRICS);
  // ... and only the metrics: the admin's other pages are not here.
  for (const p of ['/tap', '/config_dump', '/identity']) {
    const res = await tlsFetch(`${url}${p}`, { ca: bundle, cert: serving.certificateChain, key: serving.privateKeyPem, ...anyName });
    assert.equal(res.status, 404, p);
  }
  // No client certificate: refused in the handshake.
  await assert.rejects(tlsFetch(`${url}/stats/prometheus`, { ca: bundle, ...anyName }));
  // A certificate from another CA: refused in the handshake.
  const other = await startCertificateAuthority({ store: fakeCaStore(), trustDomain: 'mesh.test' });
  assert.ok(other.ok);
  const forged = await other.ca.issueServingCertificate({ dnsNames: ['localhost'], ipAddresses: [] });
  await assert.rejects(tlsFetch(`${url}/stats/prometheus`, { ca: bundle, cert: forged.certificateChain, key: forged.privateKeyPem, ...anyName }));
  // Another workload of the mesh: a valid certificate, but not the control plane: 403.
  const c = otherId.current()!;
  const wrong = await tlsFetch(`${url}/stats/prometheus`, { ca: bundle, cert: c.certificateChain, key: c.privateKeyPem, ...anyName });
  assert.equal(wrong.status, 403);

  // The scraper with the serving certificate as its client certificate.
  const scraper = new Scraper({ targets: () => [{ address: `127.0.0.1:${m.listener.port}`, tls: { namespace: 'shop' } }], intervalMs: 1000, clientCert: () => ({ cert: serving.certificateChain, key: serving.privateKeyPem, ca: bundle }) });
  await scraper.scrapeOnce();
  assert.deepEqual(scraper.status().map((s) => [s.ok, s.error]), [[true, undefined]]);
  // A proxy whose certificate is of another namespace than its node claims is not believed.
  const liar = new Scraper({ targets: () => [{ address: `127.0.0.1:${m.listener.port}`, tls: { namespace: 'billing' } }], intervalMs: 1000, clientCert: () => ({ cert: serving.certificateChain, key: serving.privateKeyPem, ca: bundle }) });
  await liar.scrapeOnce();
  assert.equal(liar.status()[0]?.ok, false);
  assert.match(liar.status()[0]?.error ?? '', /namespace billing/);
});
