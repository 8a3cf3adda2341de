// The dedicated egress gateway, all real processes on loopback: a control
// plane, `trellis gateway --register` serving a `trellis-egress` Gateway
// with a join token, a sidecar with a join token, and a loopback HTTPS
// server standing for api.example.com. The app's call leaves through the
// gateway (mTLS sidecar -> gateway, TLS origination with SNI by the
// gateway), undeclared hosts are refused by the gateway, and a plaintext
// connection straight to the gateway's port finds no chain.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.ts';
import { freePorts } from '../../src/runner/ports.ts';
import { Sidecar } from '../../src/runner/sidecar.ts';
import { joinToken } from '../run/harness.ts';
import { createCaClient } from '../../src/proxy/identity/ca-client.ts';
import { createWorkloadIdentity, type Credentials } from '../../src/proxy/identity/workload-identity.ts';
import { eventually, startExternalApi, testCertificate, viaProxy, type ProxiedAnswer } from './kit.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'trellis-egress-gw-test-'));
const { keyFile, certFile } = testCertificate(dir, 'api.example.com');

let cp: ControlPlane;
let external: https.Server;
let gateway: ChildProcess;
let sidecar: Sidecar;
let outbound = 0;
let sidecarAdmin = 0;
let gatewayAdmin = 0;
let gatewayPort = 0;
const seenSni: string[] = [];

async function apply(doc: unknown): Promise<void> {
  const r = await cp.resources.apply(doc);
  assert.ok(r.ok, JSON.stringify(r));
}


before(async () => {
  external = await startExternalApi({ keyFile, certFile }, seenSni);
  const cpDir = path.join(dir, 'cp');
  mkdirSync(cpDir);
  const [xds, ga, sa, ob] = (await freePorts(4)) as [number, number, number, number];
  [gatewayAdmin, sidecarAdmin, outbound] = [ga, sa, ob];
  cp = await startControlPlane({ dataDir: cpDir, apiPort: 0, xdsPort: xds, host: '127.0.0.1', log: () => {} });
  await apply({
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'egress', namespace: 'default' },
    spec: { gatewayClassName: 'trellis-egress', listeners: [{ name: 'mesh', port: 15443, protocol: 'HTTP' }] },
  });
  await apply({
    apiVersion: 'trellis.dev/v1alpha1', kind: 'ExternalService', metadata: { name: 'api-example', namespace: 'default' },
    spec: {
      hosts: ['api.example.com'],
      ports: [{ port: 80, targetPort: (external.address() as AddressInfo).port }],
      endpoints: [{ address: '127.0.0.1' }],
      tls: { mode: 'ORIGINATE', caFile: certFile },
      egressGateway: { name: 'egress' },
    },
  });
  gateway = spawn(process.execPath, [
    path.join(ROOT, 'bin', 'trellis.ts'), 'gateway', '--name', 'egress', '--server', cp.apiUrl, '--listen-address', '127.0.0.1',
    '--port-map', '15443=0', '--admin-port', String(gatewayAdmin), '--drain-ms', '0', '--register', '--service-account', 'egress-gw',
    '--join-token', await joinToken(cp, 'egress-gw', 'egress-gw-1'),
  ], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
  // The registered gateway workload carries the real bound port.
  const reg = await eventually('gateway registration', async () => {
    const res = await fetch(`${cp.apiUrl}/api/v1/registry/workloads`);
    return ((await res.json()) as { items: { labels?: Record<string, string>; ports: { port: number; proxyPort?: number }[] }[] }).items;
  }, (items) => items.some((w) => w.labels?.['trellis.dev/gateway'] === 'egress'));
  gatewayPort = reg.find((w) => w.labels?.['trellis.dev/gateway'] === 'egress')!.ports.find((p) => p.port === 15443)!.proxyPort!;
  assert.ok(gatewayPort > 0);

  process.env.TRELLIS_JOIN_TOKEN = await joinToken(cp, 'client', 'client-1');
  sidecar = new Sidecar({
    kind: 'sidecar', nodeId: 'default/client-1', cluster: 'client', namespace: 'default', workload: 'client-1', identityUrl: cp.apiUrl,
    xdsAddress: cp.xdsAddress, admin: { address: '127.0.0.1', port: sidecarAdmin }, outbound: { address: '127.0.0.1', port: outbound },
    requiredListeners: ['outbound'], drainMs: 0, dir, logTo: path.join(dir, 'proxy.log'),
  }, () => {});
  const ready = await sidecar.start(20_000);
  delete process.env.TRELLIS_JOIN_TOKEN;
  assert.ok(ready.ok, ready.ok ? '' : `${ready.message}\n${readFileSync(path.join(dir, 'proxy.log'), 'utf8').slice(-2000)}`);
});

after(async () => {
  await sidecar?.stop();
  if (gateway && gateway.exitCode === null) {
    const exited = new Promise((r) => gateway.once('exit', r));
    gateway.kill('SIGKILL');
    await exited;
  }
  await cp?.close();
  external?.closeAllConnections();
  await new Promise((r) => external?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const viaSidecar = (url: string): Promise<ProxiedAnswer> => viaProxy(outbound, url);

const adminText = async (port: number, p: string): Promise<string> => (await fetch(`http://127.0.0.1:${port}${p}`)).text();

test('the app reaches api.example.com through the egress gateway (mTLS in, TLS with SNI out)', async () => {
  const r = await eventually('call through the gateway', () => viaSidecar('http://api.example.com/v1/things'), (v) => v.status === 200);
  assert.deepEqual(JSON.parse(r.body), { external: 'api', host: 'api.example.com', path: '/v1/things' });
  assert.deepEqual([...new Set(seenSni)], ['api.example.com']);
  // The path: the sidecar has no direct cluster for the host, only the gateway's;
  // the gateway holds the origination cluster and counted the request on it.
  const sc = await adminText(sidecarAdmin, '/clusters');
  assert.ok(!sc.includes('external|api.example.com|80'), sc.slice(0, 500));
  assert.ok(sc.includes('egress-gateway|default|egress'), sc.slice(0, 500));
  const gwClusters = await adminText(gatewayAdmin, '/clusters');
  assert.ok(gwClusters.includes('external|api.example.com|80'));
  const stats = await adminText(gatewayAdmin, '/stats/prometheus');
  // Counted by the gateway, on the origination cluster, from a caller that came in over mTLS.
  const line = stats.split('\n').find((l) => l.startsWith('trellis_requests_total{direction="gateway"') && l.includes('destination_service="external|api.example.com|80"') && l.includes('response_code="200"'));
  assert.ok(line, stats.split('\n').filter((l) => l.startsWith('trellis_requests_total')).join('\n'));
  assert.match(line, /mtls="true"/);
  assert.ok(Number(line.trim().split(/\s+/).pop()) >= 1, line);
});

/** A mesh caller with its own workload identity, straight to the gateway over mTLS. */
async function meshCaller(): Promise<Credentials> {
  const id = createWorkloadIdentity({ ca: createCaClient({ baseUrl: cp.apiUrl, joinToken: await joinToken(cp, 'direct', 'direct-1') }), bundlePollMs: 0 });
  const r = await id.start({ timeoutMs: 5000 });
  id.stop();
  assert.ok(r.ok, JSON.stringify(r));
  return r.credentials;
}

function viaGatewayMtls(c: Credentials, host: string): Promise<{ status: number; body: string; error?: string; peer?: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port: gatewayPort, path: '/x', headers: { host }, agent: false,
      key: c.privateKeyPem, cert: c.certificateChain, ca: c.trustBundle, minVersion: 'TLSv1.3',
      checkServerIdentity: () => undefined, // SPIFFE URI SAN checked below
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => {
        const e = res.headers['x-trellis-proxy-error'];
        const peer = (res.socket as TLSSocket).getPeerCertificate?.()?.subjectaltname;
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), ...(typeof e === 'string' ? { error: e } : {}), ...(peer ? { peer } : {}) });
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

test('an undeclared host is refused with 403 EGRESS_DENIED, by the sidecar and by the gateway itself', async () => {
  const r = await viaSidecar('http://evil.example.org/exfiltrate');
  assert.equal(r.status, 403);
  assert.equal(r.error, 'EGRESS_DENIED');
  const c = await meshCaller();
  const ok = await eventually('mTLS call to the gateway', () => viaGatewayMtls(c, 'api.example.com'), (v) => v.status === 200);
  assert.match(ok.peer ?? '', /URI:spiffe:\/\/[^/]+\/ns\/default\/sa\/egress-gw/);
  const denied = await viaGatewayMtls(c, 'evil.example.org');
  assert.equal(denied.status, 403);
  assert.equal(denied.error, 'EGRESS_DENIED');
});

test('the gateway refuses plaintext callers (mesh identities only)', async () => {
  const outcome = await new Promise<string>((resolve) => {
    const s = net.connect(gatewayPort, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nhost: api.example.com\r\n\r\n'));
    let data = '';
    s.setTimeout(5000, () => { s.destroy(); resolve(`timeout ${data}`); });
    s.on('data', (c: Buffer) => { data += c.toString(); });
    s.on('error', (e) => resolve(`error ${e.message}`));
    s.on('close', () => resolve(`closed ${data}`));
  });
  assert.doesNotMatch(outcome, /^timeout/);
  assert.doesNotMatch(outcome, /HTTP\/1\.1 200/);
  assert.doesNotMatch(outcome, /api/);
});
