// The proxy admin's sensitive routes and the control plane's use of them
// (issue 13): `/tap` and state changes need the proxy's admin token, which
// reaches the control plane in the node metadata; the control plane connects
// to an advertised admin address only where it is the registered workload's
// address or the xDS stream's own (a fake `trellis.admin` made it fetch any
// host:port).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.ts';
import { adminAddressRefusal } from '../../src/control-plane/telemetry/proxy-nodes.ts';
import { openRawAds } from '../util/xds-raw-stream.ts';
import { TypeUrl } from '../../src/xds/protos.ts';
import { startApp, startInboundProxy } from '../authz/kit.ts';

async function controlPlane(t: TestContext): Promise<ControlPlane> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-cp-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort: 0, identity: false, log: () => {}, scrapeIntervalMs: 100, dashboard: false });
  t.after(() => cp.close());
  return cp;
}

/** An ADS stream from 127.0.0.1 whose node metadata says what we like. */
async function fakeNode(t: TestContext, cp: ControlPlane, id: string, trellis: Record<string, unknown>): Promise<void> {
  const s = openRawAds(cp.xdsPort, { ownConnection: true });
  t.after(() => s.close());
  s.send({ typeUrl: TypeUrl.cluster, node: { id, cluster: id, metadata: { trellis: { kind: 'sidecar', namespace: 'shop', ...trellis } } } });
  await s.next();
}

/** A server on 127.0.0.2 (another loopback address than the xDS peer's) counting hits. */
async function victim(t: TestContext): Promise<{ port: number; hits: () => number }> {
  let hits = 0;
  const s = http.createServer((_req, res) => {
    hits++;
    res.end('secret');
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.2', r));
  t.after(() => s.close());
  return { port: (s.address() as { port: number }).port, hits: () => hits };
}

test('a fake trellis.admin is ignored unless it is the registered workload\'s address or the stream\'s own', async (t) => {
  const cp = await controlPlane(t);
  const v = await victim(t);
  await fakeNode(t, cp, 'shop/evil', { workload: 'evil', admin: `127.0.0.2:${v.port}` });
  await sleep(400); // several scrape intervals
  assert.equal(v.hits(), 0, 'the control plane never fetched the advertised address');
  assert.equal(cp.proxies.get('shop/evil')?.admin, undefined);
  assert.deepEqual(cp.proxies.targets(), []);

  // Registered at 127.0.0.2: now the same claim is the workload's own address.
  const reg = await fetch(`${cp.apiUrl}/api/v1/registry/workloads`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'real', namespace: 'shop', address: '127.0.0.2', ports: [{ name: 'http', port: 8080, protocol: 'http' }], ttlSeconds: 60 }),
  });
  assert.equal(reg.status, 201, await reg.text());
  await sleep(100);
  await fakeNode(t, cp, 'shop/real', { workload: 'real', admin: `127.0.0.2:${v.port}` });
  assert.equal(cp.proxies.get('shop/real')?.admin, `127.0.0.2:${v.port}`);
});

test('adminAddressRefusal: peer, registered workload, anything else', () => {
  const who = { namespace: 'shop', workload: 'w' };
  assert.equal(adminAddressRefusal('10.0.0.5:15000', who, '10.0.0.5', () => undefined), null);
  assert.equal(adminAddressRefusal('10.0.0.6:15000', who, '10.0.0.5', () => '10.0.0.6'), null);
  assert.equal(adminAddressRefusal('[::1]:15000', who, '::1', () => undefined), null);
  assert.match(adminAddressRefusal('169.254.169.254:80', who, '10.0.0.5', () => '10.0.0.6')!, /neither the address the xDS stream comes from \(10\.0\.0\.5\) nor the registered address 10\.0\.0\.6/);
  assert.match(adminAddressRefusal('127.0.0.1:6379', who, '10.0.0.5', () => undefined)!, /a registered workload's address/);
});

test('the control plane taps a proxy with the token from its node metadata; the proxy refuses anyone without it', async (t) => {
  const cp = await controlPlane(t);
  const app = await startApp(t);
  const token = 'tok-0123456789abcdef-tok';
  const { proxy, port } = await startInboundProxy(t, app, [], { admin: { address: '127.0.0.1', port: 0 }, node: { id: 'shop/orders-1', cluster: 'orders', locality: { region: '', zone: '', subZone: '' }, metadata: { trellis: { adminToken: token } } } });
  assert.equal(proxy.adminToken, token);
  const admin = `127.0.0.1:${proxy.adminPort}`;
  assert.equal((await fetch(`http://${admin}/tap`)).status, 401);
  assert.equal((await fetch(`http://${admin}/stats/prometheus`)).status, 200, 'read-only routes stay open on the loopback admin');
  await fakeNode(t, cp, 'shop/orders-1', { workload: 'orders-1', admin, adminToken: token });

  const ac = new AbortController();
  t.after(() => ac.abort());
  const res = await fetch(`${cp.apiUrl}/api/v1/tap`, { signal: ac.signal });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  let text = '';
  const until = async (re: RegExp): Promise<void> => {
    const end = Date.now() + 5000;
    while (!re.test(text) && Date.now() < end) {
      const { value, done } = await Promise.race([reader.read(), sleep(200).then(() => ({ value: undefined, done: false }))]);
      if (done) break;
      if (value) text += new TextDecoder().decode(value);
      if (!re.test(text)) await fetch(`http://127.0.0.1:${port}/tapped`).then((r) => r.text()).catch(() => '');
    }
    assert.match(text, re);
  };
  await until(/event: tap\ndata: .*"path":"\/tapped"/);
  assert.doesNotMatch(text, /tap-error/);
});
