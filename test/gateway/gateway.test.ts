// `trellis gateway` as a real process against a real control plane: an HTTP
// listener routes a Gateway's HTTPRoute to a mesh service, and two HTTPS
// listeners on one port terminate TLS with their own certificate chosen by
// SNI (operator certificates from --cert-dir, Kubernetes TLS Secret layout).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.ts';
import { openMemoryStore } from '../../src/control-plane/store/memory.ts';
import { freePorts } from '../../src/runner/ports.ts';
import { eventually } from './kit.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'trellis-gateway-test-'));

function makeCert(name: string, host: string): { cert: Buffer } {
  const d = path.join(dir, 'certs', 'default', name);
  mkdirSync(d, { recursive: true });
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-keyout', path.join(d, 'tls.key'), '-out', path.join(d, 'tls.crt'), '-subj', `/CN=${host}`, '-addext', `subjectAltName=DNS:${host}`,
  ], { stdio: 'ignore' });
  return { cert: readFileSync(path.join(d, 'tls.crt')) };
}

let cp: ControlPlane;
let backend: http.Server;
let gateway: ChildProcess;
let httpPort = 0;
let httpsPort = 0;
const certA = makeCert('cert-a', 'a.example.com');
const certB = makeCert('cert-b', 'b.example.com');

async function apply(doc: unknown): Promise<void> {
  const r = await cp.resources.apply(doc);
  assert.ok(r.ok, JSON.stringify(r));
}

before(async () => {
  backend = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ backend: 'web', host: req.headers.host, path: req.url }));
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const backendPort = (backend.address() as AddressInfo).port;
  cp = await startControlPlane({ store: openMemoryStore(), apiPort: 0, xdsPort: 0, log: () => {} });
  await apply({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { selector: { app: 'web' }, ports: [{ port: 8080, targetPort: backendPort, protocol: 'http' }] } });
  await apply({
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'edge', namespace: 'default' },
    spec: {
      gatewayClassName: 'trellis',
      listeners: [
        { name: 'http', port: 80, protocol: 'HTTP' },
        { name: 'https-a', port: 443, protocol: 'HTTPS', hostname: 'a.example.com', tls: { mode: 'Terminate', certificateRefs: [{ name: 'cert-a' }] } },
        { name: 'https-b', port: 443, protocol: 'HTTPS', hostname: 'b.example.com', tls: { mode: 'Terminate', certificateRefs: [{ name: 'cert-b' }] } },
      ],
    },
  });
  await apply({
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'web', namespace: 'default' },
    spec: { parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'web', port: 8080 }] }] },
  });
  const reg = await fetch(`${cp.apiUrl}/api/v1/registry/workloads`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'web-1', namespace: 'default', serviceAccount: 'web', address: '127.0.0.1', ports: [{ port: backendPort, protocol: 'http' }], labels: { app: 'web' }, locality: {} }),
  });
  assert.ok(reg.ok, await reg.text());
  [httpPort, httpsPort] = (await freePorts(2)) as [number, number];
  gateway = spawn(process.execPath, [
    path.join(ROOT, 'bin', 'trellis.ts'), 'gateway', '--name', 'edge', '--server', cp.apiUrl, '--listen-address', '127.0.0.1',
    '--port-map', `80=${httpPort}`, '--port-map', `443=${httpsPort}`, '--cert-dir', path.join(dir, 'certs'), '--admin-port', '0', '--drain-ms', '0',
  ], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
});

after(async () => {
  if (gateway && gateway.exitCode === null) {
    const exited = new Promise((r) => gateway.once('exit', r));
    gateway.kill('SIGKILL');
    await exited;
  }
  await cp?.close();
  backend?.closeAllConnections();
  await new Promise((r) => backend?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function get(opts: http.RequestOptions & { tls?: { servername: string; ca: Buffer } }): Promise<{ status: number; body: string; cn?: string }> {
  return new Promise((resolve, reject) => {
    const cb = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const peer = (res.socket as TLSSocket).getPeerCertificate?.();
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), ...(peer?.subject ? { cn: String(peer.subject.CN) } : {}) });
      });
    };
    const req = opts.tls
      ? https.request({ ...opts, servername: opts.tls.servername, ca: opts.tls.ca, agent: false }, cb)
      : http.request({ ...opts, agent: false }, cb);
    req.setTimeout(3000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}


test('an HTTP Gateway listener routes its HTTPRoute to a mesh service', async () => {
  const r = await eventually('the gateway routing', () => get({ host: '127.0.0.1', port: httpPort, path: '/hello', headers: { host: 'shop.example.com' } }), (v) => v.status === 200);
  const body = JSON.parse(r.body) as { backend: string; path: string };
  assert.equal(body.backend, 'web');
  assert.equal(body.path, '/hello');
});

test('HTTPS listeners terminate TLS with the certificate chosen by SNI', async () => {
  const a = await eventually('the gateway routing', () => get({ host: '127.0.0.1', port: httpsPort, path: '/a', headers: { host: 'a.example.com' }, tls: { servername: 'a.example.com', ca: certA.cert } }), (v) => v.status === 200);
  assert.equal(a.cn, 'a.example.com');
  assert.equal((JSON.parse(a.body) as { backend: string }).backend, 'web');
  const b = await get({ host: '127.0.0.1', port: httpsPort, path: '/b', headers: { host: 'b.example.com' }, tls: { servername: 'b.example.com', ca: certB.cert } });
  assert.equal(b.status, 200);
  assert.equal(b.cn, 'b.example.com');
  // b's certificate does not verify for a's name: each host gets its own.
  await assert.rejects(get({ host: '127.0.0.1', port: httpsPort, path: '/', headers: { host: 'b.example.com' }, tls: { servername: 'b.example.com', ca: certA.cert } }));
});
