// `npm run bench`: the data-plane benchmark. Not a test: it measures, in one
// run on this machine, the same workloads against direct-to-backend, one
// Trellis proxy, a Trellis sidecar pair, HAProxy and NGINX, and reports every
// figure as a ratio to direct and to HAProxy. See docs/benchmarks.md.
//
//   npm run bench                  # full run (~6 minutes)
//   npm run bench -- --quick       # 3-second phases, for a smoke check
//   npm run bench -- --only trellis,haproxy
//   npm run bench -- --quick --only global-limit   # global rate limit accuracy per balancer
//   npm run bench -- --quick --only memory         # one proxy's RSS with 10, 100, 1,000 services
//
// Writes bench/results/latest.json and bench/results/latest.md.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  startBackend, startHaproxy, startNginxProxy, startTrellis, startTrellisPair, startTrellisExplicit, startTrellisMtlsPair, startTrellisTsPlugin, startTrellisWasmPlugin,
  rssBytes, cpuSeconds, processTree, GRPC_FRAME, type Peer,
} from './peers.ts';
import type { LoadgenResult } from './loadgen.ts';
import { measureGlobalLimit, type GlobalLimitRow } from './global-limit.ts';
import { measureMemory, type MemoryRow } from './memory.ts';
import { renderMarkdown, type BenchResults, type TargetResult } from './report.ts';

const PROXY_CPU = '1';
const LOAD_CPU = '0';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string', default: path.join(import.meta.dirname, 'results') },
  },
});
const phaseSec = values.quick ? 3 : 10;
const only = values.only ? new Set(values.only.split(',')) : null;

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', ['-c', LOAD_CPU, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err || out}`))));
  });
}

/** Sample RSS of the pids every 200 ms while `work` runs; return the peak sum. */
async function withRssPeak<T>(pids: number[], work: () => Promise<T>): Promise<{ result: T; peakRss: number; cpu: number }> {
  let peak = 0;
  const cpu0 = pids.reduce((a, p) => a + cpuSeconds(p), 0);
  const timer = setInterval(() => {
    peak = Math.max(peak, pids.reduce((a, p) => a + rssBytes(p), 0));
  }, 200);
  try {
    const result = await work();
    peak = Math.max(peak, pids.reduce((a, p) => a + rssBytes(p), 0));
    return { result, peakRss: peak, cpu: pids.reduce((a, p) => a + cpuSeconds(p), 0) - cpu0 };
  } finally {
    clearInterval(timer);
  }
}

async function wrk(port: number): Promise<number> {
  const out = await run('wrk', ['-t1', '-c32', `-d${phaseSec}s`, '--latency', `http://127.0.0.1:${port}/`]);
  const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const errs = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (errs && Number(errs[1]) > 0) console.warn(`  wrk saw ${errs[1]} non-2xx responses`);
  return m ? Number(m[1]) : 0;
}

async function h2load(port: number, grpcFile: string | null): Promise<number> {
  const args = ['-t1', '-c16', '-m10', '-D', String(phaseSec)];
  if (grpcFile) args.push('-d', grpcFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers', `http://127.0.0.1:${port}/bench.Echo/Unary`);
  else args.push(`http://127.0.0.1:${port}/`);
  const out = await run('h2load', args);
  const m = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out);
  const failed = /(\d+) failed, (\d+) errored/.exec(out);
  if (failed && (Number(failed[1]) > 0 || Number(failed[2]) > 0)) console.warn(`  h2load: ${failed[0]}`);
  return m ? Number(m[1]) : 0;
}

async function loadgen(port: number, proto: 'h1' | 'grpc', rate: number): Promise<LoadgenResult> {
  const url = proto === 'grpc' ? `http://127.0.0.1:${port}/bench.Echo/Unary` : `http://127.0.0.1:${port}/`;
  const out = await run(process.execPath, [
    path.join(import.meta.dirname, 'loadgen.ts'),
    JSON.stringify({ url, rate, durationMs: phaseSec * 1000, connections: 16, proto }),
  ]);
  const res = JSON.parse(out) as LoadgenResult;
  if (res.completed === 0) console.warn(`  loadgen: nothing completed: ${out.trim()}`);
  return res;
}

async function measure(name: string, roots: number[], h1Port: number, h2Port: number, grpcFile: string): Promise<TargetResult> {
  console.log(`- ${name}`);
  await sleep(1000);
  const pids = roots.flatMap(processTree);
  const idleRss = pids.reduce((a, p) => a + rssBytes(p), 0);
  const r: TargetResult = { name, idleRssBytes: idleRss, peakRssBytes: 0, throughput: {}, cpuUsPerRequest: {}, latency: {} };
  const track = async (key: string, fn: () => Promise<number>): Promise<void> => {
    const { result, peakRss, cpu } = await withRssPeak(pids, fn);
    r.throughput[key] = Math.round(result);
    r.peakRssBytes = Math.max(r.peakRssBytes, peakRss);
    if (pids.length > 0 && result > 0) r.cpuUsPerRequest[key] = Math.round((cpu * 1e6) / (result * phaseSec));
    console.log(`  ${key.padEnd(10)} ${Math.round(result)} req/s`);
  };
  await track('http1', () => wrk(h1Port));
  await track('http2', () => h2load(h2Port, null));
  await track('grpc', () => h2load(h2Port, grpcFile));
  for (const [proto, rate] of [['h1', 1000], ['h1', 5000], ['grpc', 1000]] as const) {
    const key = `${proto === 'h1' ? 'http1' : proto}@${rate}`;
    const { result, peakRss } = await withRssPeak(pids, () => loadgen(proto === 'h1' ? h1Port : h2Port, proto, rate));
    r.peakRssBytes = Math.max(r.peakRssBytes, peakRss);
    r.latency[key] = result;
    console.log(`  ${key.padEnd(10)} p50 ${result.latencyUs.p50} µs  p99 ${result.latencyUs.p99} µs  (${result.completed}/${result.sent} ok)`);
  }
  return r;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'trellis-bench-'));
  // NGINX workers drop privileges: they must be able to read the files served.
  chmodSync(dir, 0o755);
  const grpcFile = path.join(dir, 'req.bin');
  writeFileSync(grpcFile, GRPC_FRAME);
  const backend = await startBackend(path.join(dir, 'backend'), LOAD_CPU);
  const results: TargetResult[] = [];
  const want = (n: string): boolean => only === null || only.has(n);
  try {
    if (want('direct')) results.push(await measure('direct', [], backend.h1Port, backend.h2Port, grpcFile));
    const starters: [string, (d: string, cpu: string, be: { h1Port: number; h2Port: number }) => Promise<Peer>][] = [
      ['haproxy', startHaproxy],
      ['nginx', startNginxProxy],
      ['trellis', startTrellis],
      ['trellis-ts-plugin', startTrellisTsPlugin],
      ['trellis-wasm-plugin', startTrellisWasmPlugin],
      ['trellis-pair', startTrellisPair],
      ['trellis-explicit', startTrellisExplicit],
      ['trellis-mtls', startTrellisMtlsPair],
    ];
    for (const [name, start] of starters) {
      if (!want(name)) continue;
      const peerDir = path.join(dir, name);
      mkdirSync(peerDir, { recursive: true });
      let peer: Peer | undefined;
      try {
        peer = await start(peerDir, PROXY_CPU, backend);
        results.push(await measure(name, peer.pids, peer.h1Port, peer.h2Port, grpcFile));
      } catch (err) {
        console.error(`  ${name} failed: ${err instanceof Error ? err.message : String(err)} (logs in ${peerDir})`);
        results.push({ name, idleRssBytes: 0, peakRssBytes: 0, throughput: {}, cpuUsPerRequest: {}, latency: {}, error: String(err) });
      } finally {
        await peer?.stop();
      }
    }
  } finally {
    await backend.stop();
  }
  let globalRateLimit: GlobalLimitRow[] | undefined;
  if (want('global-limit')) {
    console.log('- global rate limit accuracy per balancer');
    try {
      globalRateLimit = await measureGlobalLimit(phaseSec, PROXY_CPU);
    } catch (err) {
      console.error(`  global-limit failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  let memory: MemoryRow[] | undefined;
  if (want('memory')) {
    console.log('- one proxy\'s memory with 10, 100 and 1,000 services');
    try {
      const memDir = path.join(dir, 'memory');
      mkdirSync(memDir, { recursive: true });
      memory = await measureMemory(memDir, phaseSec, PROXY_CPU, LOAD_CPU, grpcFile);
    } catch (err) {
      console.error(`  memory failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const out: BenchResults = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? 'unknown', node: process.version },
    phaseSeconds: phaseSec,
    setup: 'proxy pinned to CPU 1 (taskset); backend (NGINX, 1 KiB responses) and load generators on CPU 0; wrk -t1 -c32 (HTTP/1.1), h2load -t1 -c16 -m10 (HTTP/2, gRPC unary); fixed-rate latency from bench/loadgen.ts, 16 connections, open loop',
    targets: results,
    ...(globalRateLimit ? { globalRateLimit } : {}),
    ...(memory ? { memory } : {}),
  };
  mkdirSync(values.out, { recursive: true });
  writeFileSync(path.join(values.out, 'latest.json'), `${JSON.stringify(out, null, 2)}\n`);
  const md = renderMarkdown(out);
  writeFileSync(path.join(values.out, 'latest.md'), md);
  console.log(`\n${md}`);
  rmSync(dir, { recursive: true, force: true });
}

await main();
