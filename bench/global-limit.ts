// The global rate limit's accuracy under each load-balancing policy, a part
// of `npm run bench` (`--only global-limit`): an in-process control plane,
// two server sidecars of service `limited` (global 20 req/s, so 10 each) in
// front of one app, and a caller's sidecar whose balancer picks between
// them (each sidecar's app answers its name); 50 req/s offered open loop through the caller for one phase per
// policy. The row says how much of the configured rate got through: a
// balancer that sends the caller's traffic to the sidecar whose share is
// spent admits less (peak EWMA did, at ~0.5, while it read 429s as fast
// answers). Ring hash is left out: with no hash key it picks at random, and
// one hot key would stay on one sidecar (its share only). Real `trellis proxy` processes on loopback, as the tests'
// mesh harness starts them.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlPlane } from '../src/control-plane/control-plane.ts';
import { freePort } from './peers.ts';

export interface GlobalLimitRow {
  balancer: string;
  offeredPerSec: number;
  limitPerSec: number;
  admitted: number;
  seconds: number;
  /** admitted / (limit x seconds). */
  accuracy: number;
  /** Admitted per server sidecar. */
  perSidecar: Record<string, number>;
}

const LIMIT = 20;
const OFFERED = 50;
const POLICIES = ['peakEwma', 'roundRobin', 'leastRequest', 'random', 'weightedRoundRobin'];

const ROOT = path.resolve(import.meta.dirname, '..');

export async function measureGlobalLimit(phaseSec: number, cpu: string): Promise<GlobalLimitRow[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'trellis-bench-rl-'));
  const xdsPort = await freePort();
  const cp = await startControlPlane({ dataDir: path.join(dir, 'cp'), apiPort: 0, xdsPort, log: () => {}, identity: false });
  const children: ChildProcess[] = [];
  const apps = [1, 2].map((i) => http.createServer((_req, res) => res.end(`limited-${i}`)));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const api = async (method: string, p: string, body?: unknown): Promise<any> => { // eslint-disable-line @typescript-eslint/no-explicit-any
    const res = await fetch(`${cp.apiUrl}${p}`, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    if (res.status >= 300) throw new Error(`${method} ${p}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const apply = (kind: string, name: string, spec: object) => api('POST', '/api/v1/apply', { apiVersion: 'trellis.dev/v1alpha1', kind, metadata: { name, namespace: 'default' }, spec });
  const sidecar = async (id: string, workload?: string): Promise<number> => {
    const outbound = await freePort();
    const file = path.join(dir, `${id}.json`);
    writeFileSync(file, JSON.stringify({
      node: { id: `default/${id}`, cluster: id, metadata: { trellis: { kind: 'sidecar', namespace: 'default', ...(workload ? { workload } : {}), inboundAddress: '127.0.0.1', outbound: { address: '127.0.0.1', port: outbound } } } },
      admin: { address: { socketAddress: { address: '127.0.0.1', portValue: 0 } } },
      dynamicResources: { ads: { address: `127.0.0.1:${xdsPort}` } },
    }));
    children.push(spawn('taskset', ['-c', cpu, process.execPath, path.join(ROOT, 'bin', 'trellis.ts'), 'proxy', '--config', file], { stdio: 'ignore', env: { ...process.env, NODE_NO_WARNINGS: '1' } }));
    return outbound;
  };
  /** Every proxy synced at the control plane's current revision. */
  const synced = async (n: number): Promise<void> => {
    for (let i = 0; i < 400; i++) {
      const s = (await api('GET', '/api/v1/proxies')) as { revision: number; proxies: { status: string; version?: string }[] };
      if (s.proxies.length === n && s.proxies.every((p) => p.status === 'synced')) return;
      await sleep(50);
    }
    throw new Error('proxies not synced');
  };
  try {
    for (const [n, app] of apps.entries()) {
      await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
      const appPort = (app.address() as { port: number }).port;
      const i = n + 1;
      await api('POST', '/api/v1/registry/workloads', {
        name: `limited-${i}`, namespace: 'default', address: '127.0.0.1', labels: { app: 'limited' }, ttlSeconds: 600,
        ports: [{ name: 'http', port: appPort, protocol: 'http', proxyPort: await freePort() }],
      });
    }
    await api('POST', '/api/v1/apply', { apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: 'limited', namespace: 'default' }, spec: { selector: { app: 'limited' }, ports: [{ name: 'http', port: 9080, targetPort: 'http', protocol: 'http' }] } });
    await apply('RateLimitPolicy', 'limited', { targetRef: { kind: 'Service', name: 'limited' }, global: { requestsPerSecond: LIMIT } });
    await sidecar('limited-1', 'limited-1');
    await sidecar('limited-2', 'limited-2');
    const caller = await sidecar('caller');
    await synced(3);
    const rows: GlobalLimitRow[] = [];
    for (const policy of POLICIES) {
      await apply('LoadBalancerPolicy', 'limited', { targetRef: { kind: 'Service', name: 'limited' }, type: policy });
      await sleep(300);
      await synced(3);
      await sleep(1000); // every bucket full again, as at the start of a phase
      const r = await offer(agent, caller, phaseSec);
      const row: GlobalLimitRow = { balancer: policy, offeredPerSec: OFFERED, limitPerSec: LIMIT, admitted: r.ok, seconds: phaseSec, accuracy: r.ok / (LIMIT * phaseSec), perSidecar: r.bySidecar };
      console.log(`  ${policy.padEnd(18)} admitted ${r.ok} of ${LIMIT * phaseSec} (${(row.accuracy * 100).toFixed(0)}%)  ${JSON.stringify(r.bySidecar)}${r.other ? `  ${r.other} other` : ''}`);
      rows.push(row);
    }
    return rows;
  } finally {
    for (const c of children) c.kill('SIGKILL');
    agent.destroy();
    for (const app of apps) {
      app.closeAllConnections();
      app.close();
    }
    await cp.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function offer(agent: http.Agent, port: number, seconds: number): Promise<{ ok: number; other: number; bySidecar: Record<string, number> }> {
  const out = { ok: 0, other: 0, bySidecar: {} as Record<string, number> };
  const total = OFFERED * seconds;
  const start = performance.now();
  const inflight: Promise<void>[] = [];
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * OFFERED));
    for (; sent < due; sent++) {
      inflight.push(new Promise<void>((resolve) => {
        const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host: 'limited:9080' }, agent, timeout: 5000 }, (res) => {
          let who = '';
          res.setEncoding('utf8').on('data', (d: string) => (who += d)).on('end', () => {
            if (res.statusCode === 200) {
              out.ok++;
              out.bySidecar[who] = (out.bySidecar[who] ?? 0) + 1;
            } else if (res.statusCode !== 429) out.other++;
            resolve();
          });
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', () => {
          out.other++;
          resolve();
        });
        req.end();
      }));
    }
    await sleep(5);
  }
  await Promise.all(inflight);
  return out;
}
