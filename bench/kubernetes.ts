// `npm run bench:kubernetes`: Kubernetes mode at scale, against the real
// kube-apiserver of test/kube/harness.ts. Not a test. One run:
//   - S Services (default 1000) with two Pods each (2S Pods, status Ready,
//     as a kubelet would set it) created through the API;
//   - `trellis control-plane --kubernetes` started on them: time to ready;
//   - P probe proxies (default 20, real ADS streams, sidecar kind) each
//     watching the EDS of the services whose Pods change;
//   - R readiness flips (default 20): a Pod's Ready condition toggled through
//     the status subresource; time from the PATCH to the last probe's ACK of
//     the EDS that shows it, p50/p99;
//   - the control plane's RSS.
//
//   npm run bench:kubernetes [-- --services 1000 --probes 20 --flips 20]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { kubeMissingReason, startKubeCluster, type KubeCluster } from '../test/kube/harness.ts';
import { freePort } from '../test/util/etcd.ts';
import { startAdsClient } from '../src/xds/client.ts';
import { TypeUrl } from '../src/xds/protos.ts';

const { values } = parseArgs({ options: { services: { type: 'string', default: '1000' }, probes: { type: 'string', default: '20' }, flips: { type: 'string', default: '20' } } });
const S = Number(values.services);
const P = Number(values.probes);
const FLIPS = Number(values.flips);
const NS = 'bench';
const TRELLIS = path.join(import.meta.dirname, '..', 'bin', 'trellis.ts');

const skip = kubeMissingReason();
if (skip) {
  console.log(`bench:kubernetes skipped: ${skip}`);
  process.exit(0);
}

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)] ?? NaN;
// Pod IPs from 198.18.0.0/15 (RFC 2544, for benchmarks): only data in the API, nothing is dialled.
const ip = (i: number): string => `198.${18 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`;

/** Run `fn` over `items`, `width` at a time. */
async function pool<T>(items: T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

async function must(kube: KubeCluster, method: string, p: string, body: unknown, ct?: string): Promise<void> {
  const r = await kube.api(method, p, body, ct);
  if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
}

const setReady = (kube: KubeCluster, name: string, address: string, ready: boolean) =>
  must(kube, 'PATCH', `/api/v1/namespaces/${NS}/pods/${name}/status`, {
    status: { phase: 'Running', podIP: address, podIPs: [{ ip: address }], conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  }, 'application/merge-patch+json');

const kube = await startKubeCluster();
const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-bench-kube-'));
let cp: ReturnType<typeof spawn> | undefined;
try {
  let t0 = Date.now();
  await must(kube, 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  await must(kube, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'app' } });
  const svcs = Array.from({ length: S }, (_, i) => `svc-${i}`);
  await pool(svcs, 16, (name) => must(kube, 'POST', `/api/v1/namespaces/${NS}/services`, {
    apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 8080 }] },
  }));
  const pods = svcs.flatMap((svc, i) => [0, 1].map((k) => ({ svc, name: `${svc}-${k}`, address: ip(2 * i + k) })));
  await pool(pods, 16, async (p) => {
    await must(kube, 'POST', `/api/v1/namespaces/${NS}/pods`, {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: p.name, labels: { app: p.svc } },
      spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: 'example.invalid/app:1', ports: [{ name: 'http', containerPort: 8080 }] }] },
    });
    await setReady(kube, p.name, p.address, true);
  });
  console.log(`cluster: ${S} services, ${pods.length} ready pods created in ${Date.now() - t0} ms`);

  const [apiPort, xdsPort] = [await freePort(), await freePort()];
  t0 = Date.now();
  const child = spawn(process.execPath, [TRELLIS, 'control-plane', '--kubernetes', '--kubeconfig', kube.kubeconfig, '--data-dir', dataDir, '--api-port', String(apiPort), '--xds-port', String(xdsPort)], { stdio: ['ignore', 'pipe', 'inherit'] });
  cp = child;
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  while (!out.includes('"event":"ready"')) {
    if (child.exitCode !== null) throw new Error(`control plane exited: ${out}`);
    await sleep(50);
  }
  console.log(`control plane ready (initial list of ${S + pods.length} objects mirrored) in ${Date.now() - t0} ms`);

  // Probes: each watches the EDS of the services whose pods flip.
  const flipped = Array.from({ length: FLIPS }, (_, k) => pods[(k * 7919) % pods.length]!);
  const clusters = [...new Set(flipped.map((p) => `${p.svc}.${NS}.svc:8080`))];
  const seen: Map<string, string>[] = [];
  const probes = Array.from({ length: P }, (_, n) => {
    const view = new Map<string, string>();
    seen.push(view);
    const c = startAdsClient({
      serverUri: `127.0.0.1:${xdsPort}`,
      node: { id: `probe-${n}`, cluster: `probe-${n}`, metadata: { trellis: { kind: 'sidecar', namespace: NS } } },
      onResponse(typeUrl, _v, resources) {
        if (typeUrl === TypeUrl.endpoint) {
          for (const r of resources) {
            const cla = r.json as { endpoints?: { lbEndpoints?: { endpoint?: { address?: { socketAddress?: { address?: string } } }; healthStatus?: string }[] }[] };
            for (const e of (cla.endpoints ?? []).flatMap((l) => l.lbEndpoints ?? [])) view.set(e.endpoint?.address?.socketAddress?.address ?? '', e.healthStatus ?? 'UNKNOWN');
          }
        }
        return { ok: true };
      },
    });
    c.subscribe(TypeUrl.endpoint, clusters);
    return c;
  });
  const deadline = Date.now() + 60_000;
  while (!seen.every((v) => flipped.every((p) => v.get(p.address) === 'HEALTHY'))) {
    if (Date.now() > deadline) throw new Error('probes never saw every flipped pod healthy');
    await sleep(20);
  }

  const times: number[] = [];
  for (let k = 0; k < FLIPS; k++) {
    const p = flipped[k]!;
    const want = (k % 2 === 0) ? 'UNHEALTHY' : 'HEALTHY';
    // Each pod flips once to not ready; odd flips bring the previous one back.
    const target = want === 'UNHEALTHY' ? p : flipped[k - 1]!;
    const start = performance.now();
    await setReady(kube, target.name, target.address, want === 'HEALTHY');
    const limit = Date.now() + 10_000;
    while (!seen.every((v) => v.get(target.address) === want)) {
      if (Date.now() > limit) throw new Error(`flip ${k}: not every probe saw ${target.name} ${want} within 10 s`);
      await sleep(1);
    }
    times.push(performance.now() - start);
    await sleep(50);
  }
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
  console.log(`readiness change -> all ${P} probes' EDS: p50 ${pct(times, 50).toFixed(1)} ms, p99 ${pct(times, 99).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms (${FLIPS} flips)`);
  console.log(`control plane RSS: ${rss.toFixed(0)} MiB`);
  for (const c of probes) c.close();
} finally {
  cp?.kill('SIGTERM');
  if (cp && cp.exitCode === null) await new Promise((r) => cp!.once('exit', r));
  await kube.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
