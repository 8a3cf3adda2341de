// The HTTPS ingress of examples/gateways/ingress-https.yaml, applied as it
// is, served by `trellis gateway` (a real process) against a real control
// plane, with certificates from a test CA in --cert-dir. Every HTTPS listener
// (www, api) answers HTTP/1.1 and HTTP/2 (ALPN h2): curl --http1.1, curl
// --http2 and Node's http2 client. Before, h2 negotiated by ALPN and then
// never got an answer. The SNI/Host rule: a Host the SNI's certificate does
// not serve gets 421 Misdirected Request; an unknown SNI, or none (there is
// no catch-all listener), is refused in the handshake.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { parseYamlDocuments } from '../../src/api/yaml-documents.ts';
import { startControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.ts';
import { openMemoryStore } from '../../src/control-plane/store/memory.ts';
import { freePorts } from '../../src/runner/ports.ts';
import { eventually } from './kit.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const CURL = '/usr/bin/curl';
const dir = mkdtempSync(path.join(os.tmpdir(), 'trellis-ingress-https-'));
const caPem = path.join(dir, 'ca.pem');

/** A test CA (fixture) and, per host, a leaf it signs in the Secret layout --cert-dir reads. */
function makePki(hosts: Record<string, string>): void {
  const caKey = path.join(dir, 'ca.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-keyout', caKey, '-out', caPem, '-subj', '/CN=trellis test ingress CA'], { stdio: 'ignore' });
  for (const [secret, host] of Object.entries(hosts)) {
    const d = path.join(dir, 'certs', 'default', secret);
    mkdirSync(d, { recursive: true });
    const csr = path.join(d, 'tls.csr');
    const ext = path.join(d, 'ext.cnf');
    writeFileSync(ext, `subjectAltName=DNS:${host}\n`);
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(d, 'tls.key'), '-out', csr, '-subj', `/CN=${host}`], { stdio: 'ignore' });
    execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', caPem, '-CAkey', caKey, '-CAcreateserial', '-days', '1', '-out', path.join(d, 'tls.crt'), '-extfile', ext], { stdio: 'ignore' });
  }
}

let cp: ControlPlane;
let gateway: ChildProcess;
const backends: http.Server[] = [];
let httpsPort = 0;

async function backend(name: string): Promise<number> {
  const s = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ backend: name, host: req.headers.host, path: req.url }));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  backends.push(s);
  return (s.address() as AddressInfo).port;
}

before(async () => {
  makePki({ 'www-example-com': 'www.example.com', 'api-example-com': 'api.example.com' });
  cp = await startControlPlane({ store: openMemoryStore(), apiPort: 0, xdsPort: 0, log: () => {} });
  for (const name of ['productpage', 'details']) {
    const port = await backend(name);
    assert.ok((await cp.resources.apply({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { selector: { app: name }, ports: [{ port: 9080, targetPort: port, protocol: 'http' }] } })).ok);
    const reg = await fetch(`${cp.apiUrl}/api/v1/registry/workloads`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: `${name}-1`, namespace: 'default', serviceAccount: name, address: '127.0.0.1', ports: [{ port, protocol: 'http' }], labels: { app: name }, locality: {} }),
    });
    assert.ok(reg.ok, await reg.text());
  }
  // The example, as shipped.
  const parsed = parseYamlDocuments(readFileSync(path.join(ROOT, 'examples', 'gateways', 'ingress-https.yaml'), 'utf8'));
  assert.ok(parsed.ok);
  for (const d of parsed.documents) {
    const r = await cp.resources.apply(d.value);
    assert.ok(r.ok, JSON.stringify(r));
  }
  const [httpPort, port] = (await freePorts(2)) as [number, number];
  httpsPort = port;
  gateway = spawn(process.execPath, [
    path.join(ROOT, 'bin', 'trellis.ts'), 'gateway', '--name', 'public', '--server', cp.apiUrl, '--listen-address', '127.0.0.1',
    '--port-map', `80=${httpPort}`, '--port-map', `443=${httpsPort}`, '--cert-dir', path.join(dir, 'certs'), '--admin-port', '0', '--drain-ms', '0',
  ], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
  await eventually('the gateway serving HTTPS', () => curl(['--http1.1'], 'www.example.com', '/'), (r) => r.code === 200);
});

after(async () => {
  if (gateway && gateway.exitCode === null) {
    const exited = new Promise((r) => gateway.once('exit', r));
    gateway.kill('SIGKILL');
    await exited;
  }
  await cp?.close();
  for (const b of backends) {
    b.closeAllConnections();
    b.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

interface CurlAnswer {
  /** curl's exit status (0: an HTTP answer came). */
  exit: number;
  code: number;
  version: string;
  body: string;
  stderr: string;
}

/** curl against the gateway: `host` resolved to 127.0.0.1 (its SNI), `extra` flags first. */
function curl(extra: string[], host: string, urlPath: string): Promise<CurlAnswer> {
  const args = ['-sS', '--max-time', '5', '--cacert', caPem, '--resolve', `${host}:${httpsPort}:127.0.0.1`, '-w', '\n%{http_version} %{http_code}', ...extra, `https://${host}:${httpsPort}${urlPath}`];
  return new Promise((resolve) => {
    execFile(CURL, args, { timeout: 10_000 }, (err, stdout, stderr) => {
      const lines = stdout.split('\n');
      const [version = '', code = '0'] = (lines.pop() ?? '').split(' ');
      resolve({ exit: err ? (typeof err.code === 'number' ? err.code : -1) : 0, code: Number(code), version, body: lines.join('\n'), stderr });
    });
  });
}

/** Node's http2 client: one GET with `authority` on a connection whose SNI is `sni`. */
function nodeH2(sni: string, authority: string, urlPath: string): Promise<{ status: number; body: string; alpn: string | undefined; error?: string }> {
  return new Promise((resolve) => {
    const session = http2.connect(`https://${sni}:${httpsPort}`, { ca: readFileSync(caPem), servername: sni, lookup: (_h, _o, cb) => cb(null, [{ address: '127.0.0.1', family: 4 }]) } as http2.SecureClientSessionOptions);
    const timer = setTimeout(() => finish({ status: 0, body: '', alpn: undefined, error: 'timeout' }), 5000);
    function finish(v: { status: number; body: string; alpn: string | undefined; error?: string }): void {
      clearTimeout(timer);
      session.destroy();
      resolve(v);
    }
    session.on('error', (e) => finish({ status: 0, body: '', alpn: undefined, error: e.message }));
    const req = session.request({ ':path': urlPath, ':authority': authority });
    let status = 0;
    let body = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => finish({ status, body, alpn: (session.socket as tls.TLSSocket).alpnProtocol || undefined }));
    req.on('error', (e) => finish({ status, body, alpn: undefined, error: e.message }));
    req.end();
  });
}

/** HTTP/1.1 with https.request: SNI `sni`, Host `host`. */
function nodeH1(sni: string, host: string, urlPath: string): Promise<{ status: number; body: string; error?: string }> {
  return new Promise((resolve) => {
    const req = https.request({ host: '127.0.0.1', port: httpsPort, path: urlPath, servername: sni, ca: readFileSync(caPem), headers: { host }, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, body: '', error: e.message }));
    req.end();
  });
}

const listeners = [
  { host: 'www.example.com', path: '/', backend: 'productpage' },
  { host: 'api.example.com', path: '/details/1', backend: 'details' },
];

for (const l of listeners) {
  test(`HTTPS listener ${l.host}: HTTP/1.1 and HTTP/2 (curl --http1.1, curl --http2, Node http2) reach ${l.backend}`, async () => {
    const h1 = await curl(['--http1.1'], l.host, l.path);
    assert.deepEqual([h1.exit, h1.version, h1.code], [0, '1.1', 200], h1.stderr);
    assert.equal((JSON.parse(h1.body) as { backend: string }).backend, l.backend);
    const h2 = await curl(['--http2'], l.host, l.path);
    assert.deepEqual([h2.exit, h2.version, h2.code], [0, '2', 200], `curl --http2: ${h2.stderr}`);
    assert.equal((JSON.parse(h2.body) as { backend: string }).backend, l.backend);
    const node = await nodeH2(l.host, l.host, l.path);
    assert.deepEqual([node.error, node.alpn, node.status], [undefined, 'h2', 200]);
    assert.equal((JSON.parse(node.body) as { backend: string; path: string }).path, l.path);
  });
}

test('SNI/Host mismatch: a Host the SNI certificate does not serve gets 421 Misdirected Request (HTTP/1.1 and HTTP/2)', async () => {
  // SNI www.example.com, Host api.example.com: not api's content.
  for (const flag of ['--http1.1', '--http2']) {
    const r = await curl([flag, '-H', 'host: api.example.com', '-D', '-'], 'www.example.com', '/details/1');
    assert.equal(r.code, 421, `${flag}: ${r.body}`);
    assert.match(r.body, /x-trellis-proxy-error: MISDIRECTED_REQUEST/i);
    assert.doesNotMatch(r.body, /"backend"/);
  }
  const h2 = await nodeH2('www.example.com', 'api.example.com', '/details/1');
  assert.equal(h2.status, 421);
  const h1 = await nodeH1('api.example.com', 'www.example.com', '/');
  assert.equal(h1.status, 421);
  // The port in Host and letter case do not matter.
  const same = await nodeH1('www.example.com', `WWW.example.com:${httpsPort}`, '/');
  assert.equal(same.status, 200);
});

test('an unknown SNI, or none, is refused in the handshake (no catch-all listener): never the www certificate', async () => {
  const unknown = await curl(['--http1.1', '-k'], 'other.example.com', '/');
  assert.notEqual(unknown.exit, 0, 'curl got an answer for an unknown name');
  assert.equal(unknown.code, 0);
  const noSni = await new Promise<string>((resolve) => {
    execFile(CURL, ['-sS', '-k', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', `https://127.0.0.1:${httpsPort}/`], (err, stdout) => resolve(err ? `failed ${stdout}` : stdout));
  });
  assert.match(noSni, /^failed/, 'a client without SNI got an answer');
  // Node sees the handshake fail, not a certificate for another host.
  const r = await new Promise<string>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: httpsPort, servername: 'other.example.com', rejectUnauthorized: false }, () => {
      resolve(`handshake done: ${String(s.getPeerCertificate().subject?.CN)}`);
      s.destroy();
    });
    s.on('error', (e) => resolve(`error: ${e.message}`));
  });
  assert.match(r, /^error/);
});
