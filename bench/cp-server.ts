// Child process of `npm run bench:control-plane`: the control plane's xDS
// core (mesh state -> per-proxy snapshots -> ADS server) over a synthetic
// mesh of N services with two workloads each, driven by commands on stdin
// (one JSON per line) and answering on stdout. Timing is taken here, from
// the server's own ACK events, so it measures the control plane and the
// clients' round trip, not the parent's scheduling.
// Scoped (argv[3] = K > 0): every service's workloads have a Sidecar
// declaring the K services after it (cp-scope.ts), and each service added is
// declared by the Sidecars of the first K services: only their proxies need it.
// A change is timed to the ACK of every connected proxy whose view of the
// type changed (all of them unscoped), each at its own new version.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';
import readline from 'node:readline';
import { constants, performance, PerformanceObserver } from 'node:perf_hooks';
import { MeshSnapshotSource } from '../src/control-plane/snapshots.ts';
import { createXdsServer } from '../src/xds/server.ts';
import { TypeUrl } from '../src/xds/protos.ts';
import type { MeshState, ServiceResource, SidecarResource, WorkloadInstance } from '../src/control-plane/translate/model.ts';
import { scopedDeps } from './cp-scope.ts';

const N = Number(process.argv[2] ?? 1000);
const K = Number(process.argv[3] ?? 0);
let generation = 0;
let extraServices = 0;

function meshState(): MeshState {
  const services: ServiceResource[] = [];
  const workloads: WorkloadInstance[] = [];
  for (let i = 0; i < N + extraServices; i++) {
    services.push({ metadata: { name: `svc-${i}`, namespace: 'default' }, spec: { selector: { app: `svc-${i}` }, ports: [{ name: 'http', port: 8080, protocol: 'http' }] } });
    for (let j = 0; j < 2; j++) {
      // Generation moves one endpoint of svc-0 (scoped: of svc-K, which the
      // first K services' workloads declare): an endpoint-only change.
      const last = i === (K > 0 ? K % N : 0) && j === 0 ? 10 + (generation % 200) : j + 1;
      workloads.push({
        name: `svc-${i}-${j}`,
        namespace: 'default',
        address: `10.${(i >> 8) & 255}.${i & 255}.${last}`,
        ports: [{ port: 8080, protocol: 'http', name: 'http', proxyPort: 15006 }],
        labels: { app: `svc-${i}` },
        locality: { region: 'r1', zone: `z${j}` },
      });
    }
  }
  const sidecars: SidecarResource[] = [];
  if (K > 0) {
    for (let i = 0; i < N; i++) {
      const hosts = scopedDeps(i, N, K).map((d) => `./svc-${d}`);
      if (i < K) for (let e = 0; e < extraServices; e++) hosts.push(`./svc-${N + e}`);
      sidecars.push({ kind: 'Sidecar', metadata: { name: `svc-${i}`, namespace: 'default' }, spec: { selector: { app: `svc-${i}` }, egress: [{ hosts }] } });
    }
  }
  return { services, httpRoutes: [], grpcRoutes: [], tcpRoutes: [], workloads, vips: new Map(), ...(sidecars.length > 0 ? { sidecars } : {}) };
}

const source = new MeshSnapshotSource();
source.setState(meshState(), ++generation);
const xds = createXdsServer({ source, controlPlaneId: 'bench' });
const port = await xds.listen('127.0.0.1', 0);

interface Waiting {
  typeUrl: string;
  /** Node id -> the version it must ACK (the nodes whose view changed). */
  want: Map<string, string>;
  t0: number;
  acked: Map<string, number>;
  expect: number;
  id: string;
  pushes: number;
  cpu: NodeJS.CpuUsage;
  gc0: number;
  gcMajor0: number;
  firstPushMs: number;
  lastPushMs: number;
}
let waiting: Waiting | undefined;
// Time spent in GC, by kind (for TRELLIS_BENCH_DEBUG).
let gcMs = 0;
let gcMajorMs = 0;
if (process.env.TRELLIS_BENCH_DEBUG) {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcMs += e.duration;
      if ((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) gcMajorMs += e.duration;
    }
  }).observe({ entryTypes: ['gc'] });
}
let peakRss = process.memoryUsage().rss;
setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 200).unref();

/** The last version each node ACKed, per type. */
const acked = new Map<string, Map<string, string>>();
xds.on((ev) => {
  if (ev.kind === 'ack') {
    let m = acked.get(ev.nodeId);
    if (m === undefined) acked.set(ev.nodeId, (m = new Map()));
    m.set(ev.typeUrl, ev.version);
  } else if (ev.kind === 'disconnect') acked.delete(ev.nodeId);
  if (waiting && ev.kind === 'push' && ev.typeUrl === waiting.typeUrl && waiting.want.get(ev.nodeId) === ev.version) {
    waiting.pushes++;
    waiting.lastPushMs = performance.now() - waiting.t0;
    if (waiting.pushes === 1) waiting.firstPushMs = waiting.lastPushMs;
  }
  if (!waiting || ev.kind !== 'ack' || ev.typeUrl !== waiting.typeUrl || waiting.want.get(ev.nodeId) !== ev.version) return;
  if (waiting.acked.has(ev.nodeId)) return;
  waiting.acked.set(ev.nodeId, performance.now() - waiting.t0);
  if (waiting.acked.size >= waiting.expect) {
    const w = waiting;
    waiting = undefined;
    const lat = [...w.acked.values()].sort((a, b) => a - b);
    const cpu = process.cpuUsage(w.cpu);
    if (process.env.TRELLIS_BENCH_DEBUG) process.stderr.write(`[cp-server] ${w.pushes} pushes from ${w.firstPushMs.toFixed(0)} to ${w.lastPushMs.toFixed(0)} ms; ACKs from ${lat[0]!.toFixed(0)} to ${lat[lat.length - 1]!.toFixed(0)} ms; CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms, GC ${(gcMs - w.gc0).toFixed(0)} ms (major ${(gcMajorMs - w.gcMajor0).toFixed(0)})\n`);
    out({ id: w.id, done: true, proxies: w.expect, lastAckMs: lat[lat.length - 1], p50Ms: lat[Math.floor(lat.length * 0.5)], p99Ms: lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))] });
  }
});

function out(o: object): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

/** The version of `typeUrl` a client's view holds now ("default/svc-w-j" serves workload svc-w-j). */
function versionFor(nodeId: string, typeUrl: string): string {
  const workload = nodeId.slice(nodeId.indexOf('/') + 1);
  const snap = source.snapshotFor({ id: nodeId, cluster: '', locality: { region: '', zone: '', subZone: '' }, metadata: { trellis: { kind: 'sidecar', namespace: 'default', workload } }, userAgentName: '', userAgentVersion: '' });
  return snap?.types.get(typeUrl as never)?.version ?? '';
}

/** The connected nodes whose view of `typeUrl` moved from what they ACKed, with the new version. */
function changedNodes(typeUrl: string): Map<string, string> {
  const want = new Map<string, string>();
  for (const [nodeId, m] of acked) {
    const v = versionFor(nodeId, typeUrl);
    if (v !== m.get(typeUrl)) want.set(nodeId, v);
  }
  return want;
}

// TRELLIS_BENCH_PHASE_PROFILE=DIR: a CPU profile of the endpoint changes alone
// (from the first to the first service added), written to DIR.
const phaseDir = process.env.TRELLIS_BENCH_PHASE_PROFILE;
let profiler: Session | undefined;
async function phaseProfile(op: string): Promise<void> {
  if (!phaseDir) return;
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve, reject) => profiler!.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
  if (op === 'endpoint-change' && profiler === undefined) {
    profiler = new Session();
    profiler.connect();
    await post('Profiler.enable');
    await post('Profiler.start');
  } else if (op === 'service-added' && profiler !== undefined) {
    const { profile } = (await post('Profiler.stop')) as { profile: object };
    writeFileSync(path.join(phaseDir, 'endpoint-changes.cpuprofile'), JSON.stringify(profile));
    profiler.disconnect();
  }
}

out({ ready: true, port, services: N });

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const cmd = JSON.parse(line) as { op: string; id: string; expect: number };
  if (cmd.op === 'stats') {
    const cpu = process.cpuUsage();
    const m = process.memoryUsage();
    if (process.env.TRELLIS_BENCH_DEBUG) process.stderr.write(`[cp-server] heapUsed ${(m.heapUsed / 2 ** 20).toFixed(0)} MB heapTotal ${(m.heapTotal / 2 ** 20).toFixed(0)} MB external ${(m.external / 2 ** 20).toFixed(0)} MB arrayBuffers ${(m.arrayBuffers / 2 ** 20).toFixed(0)} MB rss ${(m.rss / 2 ** 20).toFixed(0)} MB\n`);
    out({ id: cmd.id, cpuSeconds: (cpu.user + cpu.system) / 1e6, rss: m.rss, peakRss, connected: xds.status().length });
    return;
  }
  await phaseProfile(cmd.op);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const gc0 = gcMs;
  const gcMajor0 = gcMajorMs;
  let typeUrl: string;
  if (cmd.op === 'endpoint-change') {
    generation++;
    typeUrl = TypeUrl.endpoint;
  } else if (cmd.op === 'service-added') {
    extraServices++;
    typeUrl = TypeUrl.cluster;
  } else return out({ id: cmd.id, error: `unknown op ${cmd.op}` });
  const state = meshState();
  const t1 = performance.now();
  source.setState(state, ++generation);
  if (process.env.TRELLIS_BENCH_DEBUG) process.stderr.write(`[cp-server] ${cmd.op}: state ${(t1 - t0).toFixed(0)} ms, setState ${(performance.now() - t1).toFixed(0)} ms\n`);
  const want = changedNodes(typeUrl);
  if (want.size === 0) return out({ id: cmd.id, done: true, proxies: 0, lastAckMs: 0, p50Ms: 0, p99Ms: 0 });
  waiting = { typeUrl, want, t0, acked: new Map(), expect: want.size, id: cmd.id, pushes: 0, cpu: cpu0, gc0, gcMajor0, firstPushMs: 0, lastPushMs: 0 };
});
process.on('SIGTERM', () => {
  void xds.close().then(() => process.exit(0));
});
