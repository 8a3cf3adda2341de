// `trellis edges [-n NS] [--window 1m] [-o json]`: who calls whom, with
// request rate, success, latency and the share secured by mTLS.
import { parseArgs } from '../command-args.ts';
import type { EdgeRow, GoldenMetrics } from '../../control-plane/telemetry/golden.ts';
import { parseWindow } from '../../control-plane/telemetry/golden.ts';
import { fitTable, fmtMs, fmtPercent, fmtRps, type Column } from '../fit-table.ts';
import { httpMetrics } from '../metrics-client.ts';
import { resolveConnection } from '../contexts.ts';
import { processIO, type CommandIO } from '../command-io.ts';
import { withSpinner } from '../spinner.ts';

export const summary = 'traffic edges between workloads (source -> destination) with rate, success, latency and mTLS';

const usage = 'usage: trellis edges [-n NAMESPACE] [--window 1m|5m|15m] [-o table|json] [--server URL]';

const columns: Column<EdgeRow>[] = [
  { header: 'SRC', value: (r) => r.source.workload, minWidth: 6 },
  { header: 'DST', value: (r) => r.destination.workload, minWidth: 6 },
  { header: 'SRC_NS', value: (r) => r.source.namespace, minWidth: 6, priority: 2 },
  { header: 'DST_NS', value: (r) => r.destination.namespace, minWidth: 6, priority: 1 },
  { header: 'SUCCESS', value: (r) => fmtPercent(r.successRate), align: 'right' },
  { header: 'RPS', value: (r) => fmtRps(r.rps), align: 'right' },
  { header: 'LATENCY_P50', value: (r) => fmtMs(r.latencyMs.p50), align: 'right', priority: 3 },
  { header: 'LATENCY_P99', value: (r) => fmtMs(r.latencyMs.p99), align: 'right', priority: 4 },
  { header: 'MTLS', value: (r) => fmtPercent(r.mtlsShare), align: 'right', priority: 5 },
];

export async function exec(argv: string[], io: CommandIO, metrics?: GoldenMetrics): Promise<number> {
  let values: { namespace?: string; window?: string; output?: string; server?: string; context?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { namespace: { type: 'string', short: 'n' }, window: { type: 'string', short: 'w' }, output: { type: 'string', short: 'o' }, server: { type: 'string' }, context: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    io.err(`trellis edges: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) {
    io.out(usage);
    return 0;
  }
  const w = parseWindow(values.window);
  if (!w.ok) {
    io.err(`trellis edges: --${w.error}`);
    return 2;
  }
  const output = values.output ?? 'table';
  if (output !== 'table' && output !== 'json') {
    io.err(`trellis edges: -o: must be table or json (got "${output}")`);
    return 2;
  }
  const src = metrics ?? httpMetrics(resolveConnection({ server: values.server, context: values.context }));
  let rows: EdgeRow[];
  try {
    rows = await withSpinner('fetching edges…', () => src.edges({ window: w.window, namespace: values.namespace }), io.spinnerOut);
  } catch (err) {
    io.err(`trellis edges: ${(err as Error).message}`);
    return 1;
  }
  if (output === 'json') {
    io.out(JSON.stringify({ window: w.window, items: rows }, null, 2));
    return 0;
  }
  if (rows.length === 0) {
    io.out(`No edges with traffic in the last ${w.window}.`);
    return 0;
  }
  io.out(fitTable(columns, rows, io.columns));
  return 0;
}

export function run(argv: string[]): Promise<number> {
  return exec(argv, processIO());
}
