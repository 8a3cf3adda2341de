// GET /api/v1/discovery names the xDS ports the control plane actually
// bound (here both picked by the OS), with no credentials even where the
// rest of the API requires them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startControlPlane } from './control-plane.ts';
import { openMemoryStore } from './store/memory.ts';
import { discoverXds } from '../cli/control-plane-target.ts';

test('discovery: the bound xDS ports, public under requireAuth; the CLI dials them on the API host', async (t) => {
  const cp = await startControlPlane({ store: openMemoryStore(), apiPort: 0, xdsPort: 0, xdsTlsPort: 0, requireAuth: true, log: () => {} });
  t.after(() => cp.close());
  const port = Number(cp.xdsAddress.split(':').pop());
  const tlsPort = Number(cp.xdsTlsAddress?.split(':').pop());
  assert.ok(port > 0 && tlsPort > 0 && port !== tlsPort, `${cp.xdsAddress} ${cp.xdsTlsAddress}`);
  const res = await fetch(`${cp.apiUrl}/api/v1/discovery`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { xds: { port, tlsPort } });
  assert.equal((await fetch(`${cp.apiUrl}/api/v1/proxies`)).status, 401, 'the rest of the API still requires credentials');

  const target = { conn: { server: cp.apiUrl }, source: '--server' };
  // On loopback the plaintext port, with or without a workload identity.
  assert.deepEqual(await discoverXds(target, { workloadIdentity: false }), { address: `127.0.0.1:${port}`, tls: false });
  assert.deepEqual(await discoverXds(target, { workloadIdentity: true }), { address: `127.0.0.1:${port}`, tls: false });
});
