// `trellis routes SERVICE [-n NS] [--window 1m] [-o json]`: golden metrics per
// route of a service, as its callers' proxies saw them (routes are the
// callers' HTTPRoute rules): one row per (route, parent, backend), for the
// routes callers addressed SERVICE by and those that sent traffic to it.
import { parseOrExit } from '../command-args.ts';
import type { GoldenMetrics, StatRow } from '../../control-plane/telemetry/golden.ts';
import { parseWindow } from '../../control-plane/telemetry/golden.ts';
import { fitTable, fmtMs, fmtPercent, fmtRps, type Column } from '../fit-table.ts';
import { httpMetrics } from '../metrics-client.ts';
import { resolveConnection } from '../contexts.ts';
import { processIO, type CommandIO } from '../command-io.ts';
import { withSpinner } from '../spinner.ts';

export const summary = 'golden metrics per route of a service (client side)';

const usage = 'usage: trellis routes SERVICE [-n NAMESPACE] [--window 1m|5m|15m] [-o table|json] [--server URL]';

/** `reviews.shop.svc.cluster.local` -> `reviews` in the namespace asked about, else `reviews.other`. */
function serviceName(host: string | undefined, namespace: string): string {
  if (host === undefined) return '-';
  const m = /^([^.]+)\.([^.]+)\.svc(\.cluster\.local)?$/.exec(host);
  if (!m) return host;
  return m[2] === namespace ? m[1]! : `${m[1]}.${m[2]}`;
}

const columns = (namespace: string): Column<StatRow>[] => [
  { header: 'ROUTE', value: (r) => r.name, minWidth: 10 },
  { header: 'PARENT', value: (r) => serviceName(r.parent, namespace), minWidth: 8, priority: 2.5 },
  { header: 'BACKEND', value: (r) => serviceName(r.service, namespace), minWidth: 8, priority: 2 },
  { header: 'SUCCESS', value: (r) => fmtPercent(r.successRate), align: 'right' },
  { header: 'RPS', value: (r) => fmtRps(r.rps), align: 'right' },
  { header: 'LATENCY_P50', value: (r) => fmtMs(r.latencyMs.p50), align: 'right', priority: 4 },
  { header: 'LATENCY_P95', value: (r) => fmtMs(r.latencyMs.p95), align: 'right', priority: 3 },
  { header: 'LATENCY_P99', value: (r) => fmtMs(r.latencyMs.p99), align: 'right', priority: 5 },
];

export async function exec(argv: string[], io: CommandIO, metrics?: GoldenMetrics): Promise<number> {
  const args = parseOrExit('routes', argv, { namespace: { type: 'string', short: 'n' }, window: { type: 'string', short: 'w' }, output: { type: 'string', short: 'o' }, server: { type: 'string' }, context: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, usage, io);
  if (typeof args === 'number') return args;
  const { values, positionals } = args;
  const service = positionals[0];
  if (!service || positionals.length > 1) {
    io.err(`trellis routes: SERVICE: exactly one service name is required\n\n${usage}`);
    return 2;
  }
  const w = parseWindow(values.window);
  if (!w.ok) {
    io.err(`trellis routes: --${w.error}`);
    return 2;
  }
  const output = values.output ?? 'table';
  if (output !== 'table' && output !== 'json') {
    io.err(`trellis routes: -o: must be table or json (got "${output}")`);
    return 2;
  }
  const src = metrics ?? httpMetrics(resolveConnection({ server: values.server, context: values.context }));
  const namespace = values.namespace ?? 'default';
  let rows: StatRow[];
  try {
    rows = await withSpinner('fetching metrics…', () => src.routes({ window: w.window, service, namespace }), io.spinnerOut);
  } catch (err) {
    io.err(`trellis routes: ${(err as Error).message}`);
    return 1;
  }
  if (output === 'json') {
    io.out(JSON.stringify({ service, window: w.window, items: rows }, null, 2));
    return 0;
  }
  if (rows.length === 0) {
    io.out(`No traffic to ${service} (as a parent or as a backend of a route) in the last ${w.window}.`);
    return 0;
  }
  io.out(fitTable(columns(namespace), rows, io.columns));
  return 0;
}

export function run(argv: string[]): Promise<number> {
  return exec(argv, processIO());
}
