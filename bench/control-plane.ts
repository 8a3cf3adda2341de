// `npm run bench:control-plane`: the control plane at scale. Not a test.
// One run: N services (default 1000, two workloads each) and C simulated
// xDS clients (default 2000, in two processes), then:
//   - full config to every client (initial connect, all four types ACKed);
//   - endpoint-only changes: time from the change to each client's ACK of the
//     new EDS version, p50/p99 across clients and the time to the LAST ACK,
//     repeated;
//   - a change that touches every proxy's CDS (a service added);
//   - control-plane CPU seconds and RSS.
// Targets (issue 16): endpoint change -> last ACK p99 <= 500 ms; a new service
// to every proxy that needs it <= 2 s; first full config to all <= 6 s; RSS <= 1 GB.
//
//   npm run bench:control-plane [-- --services 1000 --clients 2000 --changes 20 --protocol delta|sotw --scoped K]
//
// --protocol: the clients' xDS flavour (default delta, as Trellis proxies;
// sotw as proxyless gRPC). --scoped K: every workload declares the K services
// it calls in a Sidecar (default 0: every proxy gets the whole mesh); a
// service added is then needed by 2K proxies, and only they are waited for.
// Each client's first full config is counted in bytes (what a proxy holds
// grows with it).
//
// TRELLIS_BENCH_DEBUG=1: per change, when the pushes went out, when the ACKs
// came back, and the control plane's CPU and GC. TRELLIS_BENCH_PROFILE=DIR:
// CPU profiles of every process; TRELLIS_BENCH_PHASE_PROFILE=DIR: of the
// control plane during the endpoint changes alone.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '1000' },
    clients: { type: 'string', default: '2000' },
    changes: { type: 'string', default: '20' },
    protocol: { type: 'string', default: 'delta' },
    scoped: { type: 'string', default: '0' },
    out: { type: 'string', default: path.join(import.meta.dirname, 'results') },
  },
});
const N = Number(values.services);
const C = Number(values.clients);
const CHANGES = Number(values.changes);
const PROTOCOL = values.protocol === 'sotw' ? 'sotw' : 'delta';
const SCOPED = Number(values.scoped);

function child(script: string, args: string[], cpu: string): { proc: ChildProcess; lines: AsyncIterableIterator<string> } {
  // TRELLIS_BENCH_PROFILE=DIR writes CPU profiles of the control plane and the clients there.
  const prof = process.env.TRELLIS_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.TRELLIS_BENCH_PROFILE}`, `--cpu-prof-name=${script.replace('.ts', '')}-\${pid}.cpuprofile`] : [];
  const proc = spawn('taskset', ['-c', cpu, process.execPath, ...prof, path.join(import.meta.dirname, script), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const rl = readline.createInterface({ input: proc.stdout! });
  return { proc, lines: rl[Symbol.asyncIterator]() };
}

async function nextJson(lines: AsyncIterableIterator<string>, timeoutMs: number): Promise<Record<string, unknown>> {
  const t = sleep(timeoutMs).then(() => {
    throw new Error(`no answer within ${timeoutMs} ms`);
  });
  const r = await Promise.race([lines.next(), t]);
  if (r.done) throw new Error('child exited');
  return JSON.parse(r.value) as Record<string, unknown>;
}

const pct = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : 0;
};

const server = child('cp-server.ts', [String(N), String(SCOPED)], '0');
const procs: ChildProcess[] = [server.proc];
let id = 0;
const ask = async (op: string, timeoutMs = 30_000): Promise<Record<string, unknown>> => {
  const myId = `c${++id}`;
  server.proc.stdin!.write(`${JSON.stringify({ op, id: myId, expect: C })}\n`);
  for (;;) {
    const m = await nextJson(server.lines, timeoutMs);
    if (m.id === myId) return m;
  }
};

try {
  const hello = await nextJson(server.lines, 60_000);
  const port = hello.port as number;
  console.log(`control plane up on ${port} with ${N} services; connecting ${C} clients`);
  const t0 = performance.now();
  const perProc = Math.ceil(C / 2);
  const clientProcs = [0, 1].map((k) => child('cp-clients.ts', [String(port), String(Math.min(perProc, C - k * perProc)), String(k * perProc), String(N), PROTOCOL, String(SCOPED)], '1'));
  procs.push(...clientProcs.map((c) => c.proc));
  const readies = await Promise.all(clientProcs.map((c) => nextJson(c.lines, 300_000)));
  const fullPushMs = performance.now() - t0;
  const configBytesPerClient = Math.round(readies.reduce((a, r) => a + (r.configBytesPerClient as number), 0) / readies.length);
  console.log(`first full config: ${(configBytesPerClient / 1024).toFixed(1)} KiB per client`);
  console.log(`full config to all ${C} clients: ${fullPushMs.toFixed(0)} ms`);
  const afterConnect = await ask('stats');
  // Endpoint changes are timed in steady state, not in the wake of 2,000
  // proxies connecting at once (the full push above has its own figure).
  await sleep(1000);

  const endpoint: { lastAckMs: number; p50Ms: number; p99Ms: number }[] = [];
  for (let i = 0; i < CHANGES; i++) {
    await sleep(200);
    const r = await ask('endpoint-change');
    endpoint.push(r as unknown as { lastAckMs: number; p50Ms: number; p99Ms: number });
    console.log(`endpoint change ${i + 1}: last ACK ${(r.lastAckMs as number).toFixed(0)} ms (per-client p50 ${(r.p50Ms as number).toFixed(0)}, p99 ${(r.p99Ms as number).toFixed(0)})`);
  }
  const cds: number[] = [];
  let cdsProxies = 0;
  for (let i = 0; i < 3; i++) {
    await sleep(200);
    const r = await ask('service-added', 120_000);
    cds.push(r.lastAckMs as number);
    cdsProxies = r.proxies as number;
    console.log(`service added: ${r.proxies} proxies need it; last ACK ${(r.lastAckMs as number).toFixed(0)} ms`);
  }
  const end = await ask('stats');
  const last = endpoint.map((e) => e.lastAckMs);
  const results = {
    date: new Date().toISOString(),
    services: N,
    clients: C,
    protocol: PROTOCOL,
    scopedDependencies: SCOPED,
    loadAverage: (await import('node:os')).loadavg().map((x) => Math.round(x * 10) / 10),
    fullPushMs: Math.round(fullPushMs),
    configBytesPerClient,
    endpointChange: {
      changes: CHANGES,
      lastAckP50Ms: Math.round(pct(last, 0.5)),
      lastAckP99Ms: Math.round(pct(last, 0.99)),
      perClientP50Ms: Math.round(pct(endpoint.map((e) => e.p50Ms), 0.5)),
      perClientP99Ms: Math.round(pct(endpoint.map((e) => e.p99Ms), 0.99)),
    },
    cdsChangeLastAckMs: cds.map(Math.round),
    cdsChangeProxies: cdsProxies,
    controlPlane: {
      cpuSecondsTotal: end.cpuSeconds,
      cpuSecondsAfterConnect: afterConnect.cpuSeconds,
      rssBytes: end.rss,
      peakRssBytes: end.peakRss,
      connected: end.connected,
    },
    targets: { endpointChangeP99Ms: 500, serviceAddedMs: 2000, fullPushMs: 6000, rssBytes: 1024 ** 3 },
  };
  const md = [
    '# Control-plane scale benchmark',
    '',
    `${results.date}: ${N} services (2 workloads each), ${C} simulated xDS clients (ADS, ${PROTOCOL === 'delta' ? 'incremental (delta)' : 'state of the world'}, ${SCOPED > 0 ? `each workload declaring ${SCOPED} services` : 'unscoped'}, ACK on receipt), control plane on CPU 0, clients on CPU 1; load average at the end ${results.loadAverage.join(' ')}.`,
    '',
    '| measure | value | target |',
    '|---|---|---|',
    `| full config to all clients (connect -> LDS/CDS/EDS/RDS received) | ${results.fullPushMs} ms | ≤ 6000 ms |`,
    `| first full config, per client | ${(configBytesPerClient / 1024).toFixed(1)} KiB | – |`,
    `| endpoint change -> last client's ACK, p50 over ${CHANGES} changes | ${results.endpointChange.lastAckP50Ms} ms | – |`,
    `| endpoint change -> last client's ACK, p99 | ${results.endpointChange.lastAckP99Ms} ms | ≤ 500 ms |`,
    `| endpoint change -> a client's ACK, p50 / p99 across clients | ${results.endpointChange.perClientP50Ms} / ${results.endpointChange.perClientP99Ms} ms | – |`,
    `| service added -> last ACK of the ${cdsProxies} proxies that need it | ${results.cdsChangeLastAckMs.join(', ')} ms | ≤ 2000 ms |`,
    `| control-plane CPU (whole run) | ${(end.cpuSeconds as number).toFixed(1)} s | – |`,
    `| control-plane RSS now / peak | ${((end.rss as number) / 2 ** 20).toFixed(0)} / ${((end.peakRss as number) / 2 ** 20).toFixed(0)} MB | ≤ 1024 MB |`,
    '',
  ].join('\n');
  mkdirSync(values.out, { recursive: true });
  writeFileSync(path.join(values.out, 'control-plane.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(path.join(values.out, 'control-plane.md'), md);
  console.log(`\n${md}`);
} finally {
  for (const p of procs) p.kill('SIGTERM');
}
// The children are told to stop; do not wait for their pipes to close.
process.exit(0);
