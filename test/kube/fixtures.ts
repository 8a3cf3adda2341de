// Shared by the Kubernetes-mode tests: a `trellis control-plane --kubernetes`
// child process, the trellis CLI, a probe proxy's view of EDS/RDS over a real
// ADS stream, and what a kubelet would do to a Pod's status.
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeCluster } from './harness.ts';
import { freePort } from '../util/etcd.ts';
import { startAdsClient, type AdsClient, type DecodedResource } from '../../src/xds/client.ts';
import { TypeUrl } from '../../src/xds/protos.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const TRELLIS = join(ROOT, 'bin', 'trellis.ts');
export const NS = 'shop';
export const CLUSTER = `reviews.${NS}.svc:9080`;

export interface ControlPlaneProcess {
  api: string;
  xds: string;
  output(): string;
  stop(): Promise<void>;
}

export async function startControlPlane(t: TestContext, kube: KubeCluster, dataDir: string): Promise<ControlPlaneProcess> {
  // A free port can be taken by someone else before the control plane binds it: retry.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(t, kube, dataDir);
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

async function startOnce(t: TestContext, kube: KubeCluster, dataDir: string): Promise<ControlPlaneProcess> {
  const [apiPort, xdsPort] = [await freePort(), await freePort()];
  const child: ChildProcess = spawn(process.execPath, [TRELLIS, 'control-plane', '--kubernetes', '--kubeconfig', kube.kubeconfig, '--data-dir', dataDir, '--api-port', String(apiPort), '--xds-port', String(xdsPort)], {
    cwd: ROOT, env: { ...process.env, NODE_NO_WARNINGS: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  t.after(stop);
  const deadline = Date.now() + 30_000;
  while (!out.includes('"event":"ready"')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`control plane did not start: ${out}`);
    }
    await sleep(50);
  }
  return { api: `http://127.0.0.1:${apiPort}`, xds: `127.0.0.1:${xdsPort}`, output: () => out, stop };
}

export function trellis(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [TRELLIS, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1' }, timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** What a sidecar in `shop` is told about `clusters`: "ip:port HEALTH" per endpoint, sorted. */
export function watchEndpoints(t: TestContext, xds: string, clusters: string[] = [CLUSTER]): { until(want: string[], timeoutMs: number, cluster?: string): Promise<number> } {
  const latest = new Map<string, string[]>();
  const client: AdsClient = startAdsClient({
    serverUri: xds,
    node: { id: 'probe', cluster: 'probe', metadata: { trellis: { kind: 'sidecar', namespace: NS } } },
    backoff: { initialMs: 50, maxMs: 500 },
    onResponse(typeUrl, _version, resources) {
      if (typeUrl !== TypeUrl.endpoint) return { ok: true };
      for (const r of resources) {
        const cla = r.json as { endpoints?: { lbEndpoints?: { endpoint?: { address?: { socketAddress?: { address?: string; portValue?: number } } }; healthStatus?: string }[] }[] };
        latest.set(r.name, (cla.endpoints ?? []).flatMap((l) => l.lbEndpoints ?? []).map((e) => {
          const a = e.endpoint?.address?.socketAddress;
          return `${a?.address}:${a?.portValue} ${e.healthStatus ?? 'UNKNOWN'}`;
        }).sort());
      }
      return { ok: true };
    },
  });
  t.after(() => client.close());
  client.subscribe(TypeUrl.endpoint, clusters);
  return {
    async until(want, timeoutMs, cluster = CLUSTER) {
      const started = Date.now();
      const key = JSON.stringify([...want].sort());
      while (JSON.stringify(latest.get(cluster)) !== key) {
        if (Date.now() - started > timeoutMs) throw new Error(`EDS for ${cluster} is ${JSON.stringify(latest.get(cluster))}, wanted ${key} (after ${timeoutMs} ms)`);
        await sleep(5);
      }
      return Date.now() - started;
    },
  };
}

export const pod = (name: string, version: string) => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { name, namespace: NS, labels: { app: 'reviews', version } },
  spec: { serviceAccountName: 'reviews', containers: [{ name: 'app', image: 'example.invalid/reviews:1', ports: [{ name: 'http', containerPort: 9080 }] }] },
});

/** What the kubelet would report: Running, the pod IP, Ready (or not). */
export async function setPodStatus(kube: KubeCluster, name: string, ip: string, ready: boolean): Promise<void> {
  const r = await kube.api('PATCH', `/api/v1/namespaces/${NS}/pods/${name}/status`, {
    status: {
      phase: 'Running', podIP: ip, podIPs: [{ ip }], startTime: new Date().toISOString(),
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: new Date().toISOString() }],
    },
  }, 'application/merge-patch+json');
  assert.equal(r.status, 200, `pod status ${name}: ${JSON.stringify(r.body)}`);
}

export async function applyObjects(kube: KubeCluster, docs: unknown[]): Promise<void> {
  const r = await kube.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs }) });
  assert.equal(r.code, 0, `kubectl apply: ${r.stderr}`);
}


/** The weighted backends a sidecar in `shop` is given for calls to `host`: "cluster=weight" joined by ", ". */
export function watchRoutes(t: TestContext, xds: string, host: string): { until(want: string, timeoutMs: number): Promise<void>; now(): string | undefined } {
  let latest: string | undefined;
  const client: AdsClient = startAdsClient({
    serverUri: xds,
    node: { id: 'route-probe', cluster: 'route-probe', metadata: { trellis: { kind: 'sidecar', namespace: NS } } },
    backoff: { initialMs: 50, maxMs: 500 },
    onResponse(typeUrl, _version, resources: readonly DecodedResource[]) {
      if (typeUrl !== TypeUrl.route) return { ok: true };
      type Action = { cluster?: string; weightedClusters?: { clusters?: { name: string; weight?: number | { value?: number } }[] } };
      const vhosts = resources.flatMap((r) => ((r.json as { virtualHosts?: { domains?: string[]; routes?: { route?: Action }[] }[] }).virtualHosts ?? []));
      const vh = vhosts.find((v) => (v.domains ?? []).includes(host));
      const action = vh?.routes?.find((r) => r.route)?.route;
      latest = action?.weightedClusters
        ? (action.weightedClusters.clusters ?? []).map((c) => `${c.name}=${typeof c.weight === 'object' ? c.weight?.value : c.weight}`).join(', ')
        : action?.cluster;
      return { ok: true };
    },
  });
  t.after(() => client.close());
  client.subscribe(TypeUrl.route, ['outbound']);
  return {
    now: () => latest,
    async until(want, timeoutMs) {
      const started = Date.now();
      while (latest !== want) {
        if (Date.now() - started > timeoutMs) throw new Error(`route to ${host} is ${JSON.stringify(latest)}, wanted ${JSON.stringify(want)} (after ${timeoutMs} ms)`);
        await sleep(10);
      }
    },
  };
}

/** A kubeconfig for the ServiceAccount `trellis install` creates, bound to
 * its ClusterRole (applied here from installManifests()): the control plane
 * then runs with exactly the RBAC it ships with, not as cluster admin. */
export async function installedControlPlaneKubeconfig(kube: KubeCluster, file: string): Promise<string> {
  const { installManifests } = await import('../../src/control-plane/kubernetes/install.ts');
  const rbac = installManifests().filter((o) => ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding'].includes(o['kind'] as string));
  await applyObjects(kube, rbac);
  const token = await kube.kubectl(['-n', 'trellis-system', 'create', 'token', 'trellis', '--duration', '1h']);
  assert.equal(token.code, 0, token.stderr);
  const { readFileSync, writeFileSync } = await import('node:fs');
  writeFileSync(file, readFileSync(kube.kubeconfig, 'utf8')
    .replace(/client-certificate-data: .*\n/, '')
    .replace(/client-key-data: .*\n/, `token: ${token.stdout.trim()}\n`), { mode: 0o600 });
  return file;
}
