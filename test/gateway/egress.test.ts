// Egress through a real sidecar process: a declared ExternalService is
// reachable (TLS originated by the sidecar, SNI and CA verified against a
// loopback HTTPS server standing for api.example.com), a plain-HTTP one too,
// and any undeclared host is refused with 403 EGRESS_DENIED.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.ts';
import { openMemoryStore } from '../../src/control-plane/store/memory.ts';
import { freePorts } from '../../src/runner/ports.ts';
import { Sidecar } from '../../src/runner/sidecar.ts';
import { startExternalApi, testCertificate, viaProxy, type ProxiedAnswer } from './kit.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'trellis-egress-test-'));
const { keyFile, certFile } = testCertificate(dir, 'api.example.com');

let cp: ControlPlane;
let external: https.Server;
let plain: http.Server;
let sidecar: Sidecar;
let outbound = 0;
const seenSni: string[] = [];

before(async () => {
  external = await startExternalApi({ keyFile, certFile }, seenSni);
  plain = http.createServer((req, res) => res.end(`plain ${req.headers.host}`));
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  cp = await startControlPlane({ store: openMemoryStore(), apiPort: 0, xdsPort: 0, log: () => {} });
  for (const doc of [
    {
      apiVersion: 'trellis.dev/v1alpha1', kind: 'ExternalService', metadata: { name: 'api-example', namespace: 'default' },
      spec: {
        hosts: ['api.example.com'],
        ports: [{ port: 80, targetPort: (external.address() as AddressInfo).port }],
        endpoints: [{ address: '127.0.0.1' }],
        tls: { mode: 'ORIGINATE', caFile: certFile },
      },
    },
    {
      apiVersion: 'trellis.dev/v1alpha1', kind: 'ExternalService', metadata: { name: 'plain-example', namespace: 'default' },
      spec: { hosts: ['plain.example.com'], ports: [{ port: 8080, targetPort: (plain.address() as AddressInfo).port }], endpoints: [{ address: '127.0.0.1' }] },
    },
    {
      apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: 'reviews', namespace: 'default' },
      spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080, protocol: 'http' }] },
    },
  ]) {
    const r = await cp.resources.apply(doc);
    assert.ok(r.ok, JSON.stringify(r));
  }
  const [admin, ob] = (await freePorts(2)) as [number, number];
  outbound = ob;
  sidecar = new Sidecar({
    kind: 'sidecar', nodeId: 'default/client-1', cluster: 'client', namespace: 'default', workload: 'client-1',
    xdsAddress: cp.xdsAddress, admin: { address: '127.0.0.1', port: admin }, outbound: { address: '127.0.0.1', port: ob },
    requiredListeners: ['outbound'], drainMs: 0, dir, logTo: path.join(dir, 'proxy.log'),
  }, () => {});
  const ready = await sidecar.start(20_000);
  assert.ok(ready.ok, ready.ok ? '' : `${ready.message}\n${readFileSync(path.join(dir, 'proxy.log'), 'utf8').slice(-2000)}`);
});

after(async () => {
  await sidecar?.stop();
  await cp?.close();
  for (const s of [external, plain]) {
    s?.closeAllConnections();
    await new Promise((r) => s?.close(r));
  }
  rmSync(dir, { recursive: true, force: true });
});

const viaSidecar = (url: string): Promise<ProxiedAnswer> => viaProxy(outbound, url);

test('a declared ExternalService is reached with TLS originated by the sidecar (SNI, CA verified)', async () => {
  const r = await viaSidecar('http://api.example.com/v1/things');
  assert.equal(r.status, 200, r.body);
  const body = JSON.parse(r.body) as { external: string; host: string; path: string };
  assert.deepEqual(body, { external: 'api', host: 'api.example.com', path: '/v1/things' });
  assert.deepEqual([...new Set(seenSni)], ['api.example.com']);
});

test('a declared plain-HTTP ExternalService is reached on its declared port only', async () => {
  const ok = await viaSidecar('http://plain.example.com:8080/');
  assert.equal(ok.status, 200);
  assert.match(ok.body, /^plain plain\.example\.com:8080/);
  const otherPort = await viaSidecar('http://plain.example.com:9999/');
  assert.equal(otherPort.status, 403);
  assert.equal(otherPort.error, 'EGRESS_DENIED');
});

test('a known service on a port it does not have: 404 naming the service and its ports, not "egress denied"', async () => {
  for (const host of ['reviews:9999', 'reviews.default.svc.cluster.local:9999', 'reviews']) {
    const r = await viaSidecar(`http://${host}/`);
    assert.equal(r.status, 404, `${host}: ${r.body}`);
    assert.equal(r.error, 'NO_SUCH_PORT');
    assert.equal(r.body, `${host}: service reviews in namespace default has no such port; its ports are 9080 (http)\n`);
  }
});

test('undeclared hosts are refused with 403 EGRESS_DENIED', async () => {
  const r = await viaSidecar('http://evil.example.org/exfiltrate');
  assert.equal(r.status, 403);
  assert.equal(r.error, 'EGRESS_DENIED');
  assert.equal(r.body, 'egress denied: evil.example.org: the destination is neither a mesh Service nor a declared ExternalService; declare it with an ExternalService (docs/gateways.md)\n');
});

test('CONNECT to an undeclared host:port (an HTTPS_PROXY-style client) is refused with 403 EGRESS_DENIED too', async () => {
  const answer = await new Promise<string>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: outbound, method: 'CONNECT', path: 'evil.example.org:443', agent: false });
    req.on('connect', (res, socket) => {
      socket.destroy();
      resolve(`${res.statusCode} ${String(res.headers['x-trellis-proxy-error'])}`);
    });
    req.on('response', (res) => {
      res.resume();
      resolve(`${res.statusCode} ${String(res.headers['x-trellis-proxy-error'])}`);
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
  assert.equal(answer, '403 EGRESS_DENIED');
});
