// Renders bench results as a markdown table with ratios to direct and HAProxy.
import type { LoadgenResult } from './loadgen.ts';
import type { GlobalLimitRow } from './global-limit.ts';
import type { MemoryRow } from './memory.ts';

export interface TargetResult {
  name: string;
  idleRssBytes: number;
  peakRssBytes: number;
  /** req/s at saturation, by workload (http1, http2, grpc). */
  throughput: Record<string, number>;
  /** Proxy CPU microseconds per request at saturation. */
  cpuUsPerRequest: Record<string, number>;
  /** Fixed-rate latency, by "workload@rate". */
  latency: Record<string, LoadgenResult>;
  error?: string;
}

export interface BenchResults {
  date: string;
  machine: { cpus: number; model: string; node: string };
  phaseSeconds: number;
  setup: string;
  targets: TargetResult[];
  /** Global rate limit accuracy per balancer (bench/global-limit.ts). */
  globalRateLimit?: GlobalLimitRow[];
  memory?: MemoryRow[];
}

const mb = (b: number): string => (b ? `${(b / 1024 / 1024).toFixed(1)} MB` : '–');
const ratio = (a: number | undefined, b: number | undefined): string => (a && b ? `${(a / b).toFixed(2)}×` : '–');
const us = (x: number | undefined): string => (x === undefined ? '–' : x >= 1000 ? `${(x / 1000).toFixed(2)} ms` : `${x} µs`);

export function renderMarkdown(r: BenchResults): string {
  const direct = r.targets.find((t) => t.name === 'direct');
  const haproxy = r.targets.find((t) => t.name === 'haproxy');
  const lines: string[] = [];
  lines.push(`# Trellis data-plane benchmark`, '', `${r.date} — ${r.machine.cpus} CPUs (${r.machine.model}), Node ${r.machine.node}, ${r.phaseSeconds} s phases.`, '', r.setup, '');
  lines.push('## Throughput at saturation (req/s)', '');
  lines.push('| target | workload | req/s | vs direct | vs HAProxy | proxy CPU/req |', '|---|---|---|---|---|---|');
  for (const t of r.targets) {
    if (t.error) {
      lines.push(`| ${t.name} | – | failed: ${t.error.replace(/\|/g, '/').slice(0, 120)} | | | |`);
      continue;
    }
    for (const [w, v] of Object.entries(t.throughput)) {
      lines.push(`| ${t.name} | ${w} | ${v} | ${ratio(v, direct?.throughput[w])} | ${ratio(v, haproxy?.throughput[w])} | ${t.cpuUsPerRequest[w] !== undefined ? `${t.cpuUsPerRequest[w]} µs` : '–'} |`);
    }
  }
  lines.push('', '## Latency at a fixed rate (open loop, 16 connections)', '');
  lines.push('| target | workload | p50 | p90 | p99 | p99.9 | p50 over direct | p99 over direct | ok/sent |', '|---|---|---|---|---|---|---|---|---|');
  for (const t of r.targets) {
    for (const [w, l] of Object.entries(t.latency)) {
      const d = direct?.latency[w];
      const over = (k: 'p50' | 'p99'): string => (d ? us(l.latencyUs[k] - d.latencyUs[k]) : '–');
      lines.push(`| ${t.name} | ${w} | ${us(l.latencyUs.p50)} | ${us(l.latencyUs.p90)} | ${us(l.latencyUs.p99)} | ${us(l.latencyUs.p999)} | ${over('p50')} | ${over('p99')} | ${l.completed}/${l.sent} |`);
    }
  }
  lines.push('', '## Memory (RSS)', '', '| target | idle | peak under load | idle vs HAProxy |', '|---|---|---|---|');
  for (const t of r.targets) {
    if (t.name === 'direct') continue;
    lines.push(`| ${t.name} | ${mb(t.idleRssBytes)} | ${mb(t.peakRssBytes)} | ${ratio(t.idleRssBytes, haproxy?.idleRssBytes)} |`);
  }
  if (r.memory) {
    lines.push('', '## One proxy\'s memory by config size', '', 'A static bootstrap with N services (a virtual host and a cluster per service on each of two listeners; bench/memory.ts). Peak is under wrk, h2load and gRPC through the first service.', '');
    lines.push('| services | idle RSS | peak RSS |', '|---|---|---|');
    for (const m of r.memory) lines.push(`| ${m.services} | ${mb(m.idleRssBytes)} | ${mb(m.peakRssBytes)} |`);
  }
  if (r.globalRateLimit) {
    lines.push('', '## Global rate limit accuracy per balancer', '', 'Two server sidecars share a global limit; one caller\'s sidecar offers more than the limit (bench/global-limit.ts).', '');
    lines.push('| balancer | offered | limit | admitted | of the limit | per server sidecar |', '|---|---|---|---|---|---|');
    for (const g of r.globalRateLimit) {
      lines.push(`| ${g.balancer} | ${g.offeredPerSec}/s | ${g.limitPerSec}/s | ${(g.admitted / g.seconds).toFixed(1)}/s | ${(g.accuracy * 100).toFixed(0)}% | ${Object.entries(g.perSidecar).sort().map(([k, v]) => `${k} ${v}`).join(', ')} |`);
    }
  }
  lines.push('');
  return lines.join('\n');
}
