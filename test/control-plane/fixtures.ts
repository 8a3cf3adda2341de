// Shared pieces of the control-plane end-to-end tests (ha, mesh-e2e,
// proxyless-grpc, telemetry-resource): the JSON API client, an HTTP backend
// that answers its name, a `trellis proxy` sidecar process on xDS, a GET
// through a proxy by Host, and the Service / split-route resources they
// apply.
import type { TestContext } from 'node:test';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../proxy/helpers.ts';

const TRELLIS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'trellis.ts');

export type ApiAnswer = { status: number; json: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** One JSON call to a control plane's API at `base` (http://host:port). */
export async function call(base: string, method: string, p: string, body?: unknown): Promise<ApiAnswer> {
  const res = await fetch(`${base}${p}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(5_000),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

/** An HTTP server on 127.0.0.1:0 answering `name`; closed after the test. */
export async function backend(t: TestContext, name: string): Promise<number> {
  const server = http.createServer((_req, res) => res.end(name));
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as { port: number }).port;
}

/** A `trellis proxy` process, sidecar `default/productpage-1`, configured
 * over ADS from `ads` ("host:port[,host:port...]": it fails over in order),
 * with its explicit outbound listener on `outbound`; killed after the test
 * (and `agent` destroyed). */
export async function xdsSidecar(t: TestContext, ads: string): Promise<{ outbound: number; pid: number; stderr: () => string; adminPort: Promise<number> }> {
  const outbound = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-sidecar-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sidecar.json');
  writeFileSync(file, JSON.stringify({
    node: { id: 'default/productpage-1', cluster: 'productpage', metadata: { trellis: { kind: 'sidecar', namespace: 'default', workload: 'productpage-1', outbound: { address: '127.0.0.1', port: outbound } } } },
    admin: { address: { socketAddress: { address: '127.0.0.1', portValue: 0 } } },
    dynamicResources: { ads: { address: ads } },
  }));
  const child = spawn(process.execPath, [TRELLIS, 'proxy', '--config', file], { env: { ...process.env, NODE_NO_WARNINGS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  // The log (JSON lines on stdout): kept until the 'started' line gives the admin port.
  let stdout = '';
  const adminPort = new Promise<number>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < 1_000_000) stdout += d;
      const m = /"event":"started".*?"admin":\{"address":"[^"]*","port":(\d+)\}/.exec(stdout);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', () => reject(new Error(`trellis proxy exited before starting: ${stderr}`)));
  });
  adminPort.catch(() => {});
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.after(async () => {
    child.kill('SIGKILL');
    await exited;
    agent.destroy();
  });
  return { outbound, pid: child.pid!, stderr: () => stderr, adminPort };
}

/** Keep-alive for `get`; destroy it when the proxy goes away. */
export const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

/** GET / on 127.0.0.1:`port` with Host `host` (a proxy's listener). */
export function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** A Service in `default` with one port named after its protocol. */
export function service(name: string, selector: Record<string, string>, port: { port: number; protocol: 'http' | 'grpc' } = { port: 9080, protocol: 'http' }) {
  return {
    apiVersion: 'trellis.dev/v1alpha1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: { selector, ports: [{ name: port.protocol, port: port.port, targetPort: port.protocol, protocol: port.protocol }] },
  };
}

/** reviews:9080 split between reviews-v1 and reviews-v2 by weight. */
export function reviewsSplit(weights: [number, number]) {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'reviews', namespace: 'default' },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'reviews', port: 9080 }],
      rules: [{ backendRefs: [{ name: 'reviews-v1', port: 9080, weight: weights[0] }, { name: 'reviews-v2', port: 9080, weight: weights[1] }] }],
    },
  };
}
