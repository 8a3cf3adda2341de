// A control plane plus real `trellis proxy` processes over xDS, for policy
// tests: resources go through the HTTP API (as `trellis apply`), workloads
// through the registry, traffic through a sidecar's outbound (or inbound)
// listener to real servers on loopback.
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.ts';
import { freePort } from '../proxy/helpers.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
  ms: number;
}

export interface Mesh {
  cp: ControlPlane;
  /** Apply a resource; returns its store revision. */
  apply(obj: object): Promise<number>;
  remove(kind: string, name: string): Promise<void>;
  register(w: { name: string; port: number; labels: Record<string, string>; proxyPort?: number; zone?: string }): Promise<void>;
  /** Start a sidecar; `workload` gives it inbound listeners. */
  sidecar(o: { id: string; workload?: string; zone?: string }): Promise<{ outbound: number; nodeId: string; kill(): Promise<void> }>;
  /** Until the proxy has ACKed a snapshot computed from at least `revision`
   * (store revisions are global: an apply's revision covers earlier registrations). */
  synced(nodeId: string, revision: number): Promise<void>;
  request(port: number, host: string, o?: { method?: string; path?: string; headers?: Record<string, string>; timeoutMs?: number }): Promise<Reply>;
}

export function service(name: string, selector: Record<string, string>, port = 9080): object {
  return {
    apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name, namespace: 'default' },
    spec: { selector, ports: [{ name: 'http', port, targetPort: 'http', protocol: 'http' }] },
  };
}

export function policy(kind: string, name: string, spec: object): object {
  return { apiVersion: 'trellis.dev/v1alpha1', kind, metadata: { name, namespace: 'default' }, spec };
}

/** An HTTP server on loopback; closed after the test. */
export async function server(t: TestContext, handler: http.RequestListener): Promise<number> {
  const s = http.createServer(handler);
  s.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => {
    s.closeAllConnections();
    s.close(() => r());
  }));
  return (s.address() as { port: number }).port;
}

export async function startMesh(t: TestContext): Promise<Mesh> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-pol-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const xdsPort = await freePort();
  const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort, log: () => {} });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const children: { kill(): void; exited: Promise<void> }[] = [];
  t.after(async () => {
    for (const c of children) c.kill();
    await Promise.all(children.map((c) => c.exited));
    agent.destroy();
    await cp.close();
  });

  async function api(method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const res = await fetch(`${cp.apiUrl}${p}`, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null };
  }

  function request(port: number, host: string, o: { method?: string; path?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<Reply> {
    const start = performance.now();
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path ?? '/', headers: { host, ...(o.headers ?? {}) }, agent, timeout: o.timeoutMs ?? 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, ms: performance.now() - start }));
      });
      req.on('timeout', () => req.destroy(new Error('client timeout')));
      req.on('error', reject);
      req.end();
    });
  }

  return {
    cp,
    async apply(obj) {
      const r = await api('POST', '/api/v1/apply', obj);
      assert.ok(r.status < 300, `apply: ${r.status} ${JSON.stringify(r.json)}`);
      const rv = JSON.stringify(r.json).match(/"resourceVersion":"(\d+)"/);
      return rv ? Number(rv[1]) : 0;
    },
    async remove(kind, name) {
      const r = await api('DELETE', `/api/v1/resources/${kind}/default/${name}`);
      assert.ok(r.status < 300 || r.status === 404, `delete: ${r.status} ${JSON.stringify(r.json)}`);
    },
    async register(w) {
      const r = await api('POST', '/api/v1/registry/workloads', {
        name: w.name, namespace: 'default', address: '127.0.0.1',
        ports: [{ name: 'http', port: w.port, protocol: 'http', ...(w.proxyPort ? { proxyPort: w.proxyPort } : {}) }],
        labels: w.labels, ttlSeconds: 120, ...(w.zone ? { locality: { region: 'r1', zone: w.zone } } : {}),
      });
      assert.equal(r.status, 201, JSON.stringify(r.json));
    },
    async sidecar(o) {
      const outbound = await freePort();
      const dir = mkdtempSync(path.join(tmpdir(), 'trellis-pol-sc-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const file = path.join(dir, 'sidecar.json');
      const nodeId = `default/${o.id}`;
      writeFileSync(file, JSON.stringify({
        node: {
          id: nodeId, cluster: o.id,
          ...(o.zone ? { locality: { region: 'r1', zone: o.zone } } : {}),
          metadata: { trellis: { kind: 'sidecar', namespace: 'default', ...(o.workload ? { workload: o.workload } : {}), inboundAddress: '127.0.0.1', outbound: { address: '127.0.0.1', port: outbound } } },
        },
        admin: { address: { socketAddress: { address: '127.0.0.1', portValue: 0 } } },
        dynamicResources: { ads: { address: `127.0.0.1:${xdsPort}` } },
      }));
      const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'trellis.ts'), 'proxy', '--config', file], {
        cwd: ROOT, env: { ...process.env, NODE_NO_WARNINGS: '1' }, stdio: ['ignore', 'ignore', process.env.TRELLIS_TEST_LOG ? 'inherit' : 'ignore'],
      });
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      children.push({ kill: () => child.kill('SIGKILL'), exited });
      return { outbound, nodeId, kill: async () => { child.kill('SIGKILL'); await exited; } };
    },
    async synced(nodeId, revision) {
      const until = Date.now() + 15_000;
      let last = '';
      while (Date.now() < until) {
        const r = await api('GET', '/api/v1/proxies');
        const p = (r.json.proxies as { nodeId: string; status: string }[]).find((x) => x.nodeId === nodeId);
        last = JSON.stringify({ revision: r.json.revision, p });
        if (p?.status === 'synced' && (r.json.revision as number) >= revision) return;
        await sleep(25);
      }
      assert.fail(`proxy ${nodeId} not synced at revision ${revision}: ${last}`);
    },
    request,
  };
}

/** Binomial bounds: is `k` of `n` within `z` standard deviations of `p`? */
export function withinBinomial(k: number, n: number, p: number, z = 4.5): boolean {
  const sd = Math.sqrt(n * p * (1 - p));
  return Math.abs(k - n * p) <= z * sd + 1e-9;
}
