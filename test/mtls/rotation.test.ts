// Certificate and root rotation under steady load: no request may fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { get, spiffe, startApp, startCaAndIds, startInbound, startOutbound } from './sidecar-fixtures.ts';

/** Keep `concurrency` request loops running through `port` until stop(). */
function steadyLoad(port: number, concurrency = 4): { stop(): Promise<{ ok: number; failed: string[] }> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let running = true;
  let ok = 0;
  const failed: string[] = [];
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        const r = await get(port, {}, agent);
        if (r.status === 200) ok++;
        else failed.push(`status ${r.status}`);
      } catch (err) {
        failed.push((err as Error).message);
      }
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return { ok, failed };
    },
  };
}

/** The serial of the certificate B's inbound listener presents to a new handshake. */
async function servedSerial(port: number, client: { key: string; cert: string; ca: string }): Promise<string> {
  const c = tls.connect({ host: '127.0.0.1', port, ...client, ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined });
  c.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    c.once('secureConnect', resolve);
    c.once('error', reject);
  });
  const serial = c.getPeerCertificate().serialNumber;
  c.destroy();
  return serial.toLowerCase();
}

const waitFor = async (cond: () => boolean, ms: number): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 50));
  }
};

test('4 s certificates rotate at about half-life under steady load with zero failed requests', async (t) => {
  const { a, b } = await startCaAndIds(t, { ca: { workloadTtlMs: 4000 } });
  const app = await startApp(t);
  const bPort = await startInbound(t, b, app, { mode: 'STRICT' });
  // Connections are recycled every 10 requests, so new handshakes happen throughout.
  const aPort = await startOutbound(t, a, bPort, { sans: [spiffe('ratings')], maxRequestsPerConnection: 10 });
  const firstB = new X509Certificate(b.current()!.certificateChain).serialNumber.toLowerCase();
  const load = steadyLoad(aPort);
  await waitFor(() => a.describe().rotations >= 3 && b.describe().rotations >= 3, 9000);
  const { ok, failed } = await load.stop();
  assert.deepEqual(failed, []);
  assert.ok(ok > 50, `requests served: ${ok}`);
  const now = b.current()!;
  const nowSerial = new X509Certificate(now.certificateChain).serialNumber.toLowerCase();
  assert.notEqual(nowSerial, firstB);
  const ac = a.current()!;
  assert.equal(await servedSerial(bPort, { key: ac.privateKeyPem, cert: ac.certificateChain, ca: ac.trustBundle }), nowSerial, 'new handshakes present the new certificate');
});

test('root rotation with overlap (stage, activate, retire) keeps traffic flowing', async (t) => {
  const { tca, a, b } = await startCaAndIds(t);
  const app = await startApp(t);
  const bPort = await startInbound(t, b, app, { mode: 'STRICT' });
  const aPort = await startOutbound(t, a, bPort, { sans: [spiffe('ratings')], maxRequestsPerConnection: 5 });
  const pushBundle = () => {
    // What the xDS Secret `trellis-trust-bundle` delivers to every proxy.
    a.setTrustBundle(tca.ca.trustBundle().pem);
    b.setTrustBundle(tca.ca.trustBundle().pem);
  };
  const load = steadyLoad(aPort, 2);
  const oldRoot = tca.ca.trustBundle().roots[0]!.fingerprint;
  await tca.ca.stageRoot();
  pushBundle();
  await tca.ca.activateRoot();
  assert.ok((await b.rotateNow()).ok); // B now chains to the new root, A still to the old one
  assert.equal((await get(aPort)).status, 200);
  assert.ok((await a.rotateNow()).ok);
  assert.equal((await get(aPort)).status, 200);
  assert.deepEqual(await tca.ca.retireRoot(oldRoot), { ok: true });
  pushBundle();
  assert.equal(a.describe().trustBundle.length, 1);
  const r = await get(aPort);
  assert.deepEqual([r.status, r.body?.peer], [200, spiffe('reviews')]);
  const { ok, failed } = await load.stop();
  assert.deepEqual(failed, []);
  assert.ok(ok > 0);
});
