// `trellis stat [services|workloads] [-n NS] [--window 1m|5m|15m] [-o json|table]`:
// golden metrics per service or workload, like `linkerd viz stat`.
import { parseOrExit } from '../command-args.ts';
import type { GoldenMetrics, StatRow } from '../../control-plane/telemetry/golden.ts';
import { parseWindow } from '../../control-plane/telemetry/golden.ts';
import { fitTable, fmtMs, fmtPercent, fmtRps, type Column } from '../fit-table.ts';
import { httpMetrics } from '../metrics-client.ts';
import { resolveConnection } from '../contexts.ts';
import { processIO, type CommandIO } from '../command-io.ts';
import { withSpinner } from '../spinner.ts';

export const summary = 'golden metrics (success rate, RPS, latency, mTLS) per service or workload';

const usage = `usage: trellis stat [services|workloads] [-n NAMESPACE] [--window 1m|5m|15m] [-o table|json] [--server URL]

Success rate, request rate and latency percentiles over the window, from the
server-side proxies. MESHED counts the proxies reporting; MTLS is the share of
requests that arrived over mutual TLS; TCP_CONN counts opaque TCP connections
in the window.`;

const KINDS: Record<string, 'services' | 'workloads'> = {
  svc: 'services', service: 'services', services: 'services',
  wl: 'workloads', workload: 'workloads', workloads: 'workloads', deploy: 'workloads', deployment: 'workloads', deployments: 'workloads',
};

export function statColumns(allNamespaces: boolean): Column<StatRow>[] {
  return [
    ...(allNamespaces ? [{ header: 'NAMESPACE', value: (r: StatRow) => r.namespace, priority: 2, minWidth: 6 }] : []),
    { header: 'NAME', value: (r) => r.name, minWidth: 8 },
    { header: 'MESHED', value: (r) => String(r.meshed), align: 'right', priority: 3 },
    { header: 'SUCCESS', value: (r) => fmtPercent(r.successRate), align: 'right' },
    { header: 'RPS', value: (r) => fmtRps(r.rps), align: 'right' },
    { header: 'LATENCY_P50', value: (r) => fmtMs(r.latencyMs.p50), align: 'right', priority: 5 },
    { header: 'LATENCY_P95', value: (r) => fmtMs(r.latencyMs.p95), align: 'right', priority: 4 },
    { header: 'LATENCY_P99', value: (r) => fmtMs(r.latencyMs.p99), align: 'right', priority: 6 },
    { header: 'TCP_CONN', value: (r) => String(Math.round(r.tcpConnections)), align: 'right', priority: 1 },
    { header: 'MTLS', value: (r) => fmtPercent(r.mtlsShare), align: 'right', priority: 3.5 },
  ];
}

export async function exec(argv: string[], io: CommandIO, metrics?: GoldenMetrics): Promise<number> {
  const args = parseOrExit('stat', argv, {
        namespace: { type: 'string', short: 'n' },
        'all-namespaces': { type: 'boolean', short: 'A' },
        window: { type: 'string', short: 'w' },
        output: { type: 'string', short: 'o' },
        server: { type: 'string' }, context: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      }, usage, io);
  if (typeof args === 'number') return args;
  const { values, positionals } = args;
  const kindArg = positionals[0] ?? 'services';
  const kind = KINDS[kindArg];
  if (!kind || positionals.length > 1) {
    io.err(`trellis stat: KIND: must be services or workloads (got "${positionals.join(' ')}")\n\n${usage}`);
    return 2;
  }
  const w = parseWindow(values.window);
  if (!w.ok) {
    io.err(`trellis stat: --${w.error}`);
    return 2;
  }
  const output = values.output ?? 'table';
  if (output !== 'table' && output !== 'json') {
    io.err(`trellis stat: -o: must be table or json (got "${output}")`);
    return 2;
  }
  const src = metrics ?? httpMetrics(resolveConnection({ server: values.server, context: values.context }));
  const namespace = values['all-namespaces'] ? undefined : (values.namespace ?? undefined);
  let rows: StatRow[];
  try {
    rows = await withSpinner('fetching metrics…', () => src[kind]({ window: w.window, namespace }), io.spinnerOut);
  } catch (err) {
    io.err(`trellis stat: ${(err as Error).message}`);
    return 1;
  }
  if (output === 'json') {
    io.out(JSON.stringify({ kind, window: w.window, items: rows }, null, 2));
    return 0;
  }
  if (rows.length === 0) {
    io.out(`No traffic found in the last ${w.window}${namespace ? ` in namespace ${namespace}` : ''}.`);
    return 0;
  }
  const all = namespace === undefined && new Set(rows.map((r) => r.namespace)).size > 1;
  io.out(fitTable(statColumns(all), rows, io.columns));
  return 0;
}

export function run(argv: string[]): Promise<number> {
  return exec(argv, processIO());
}
