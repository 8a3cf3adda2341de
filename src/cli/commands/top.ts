// `trellis top [SERVICE] [--admin HOST:PORT]... [--interval 1s] [--duration D] [--rows N]`:
// a live view of the busiest paths, built from the tap stream: count,
// success, best / worst / last latency per (method, authority, path), one
// count per request (the caller's and the callee's views of a request are
// joined, tap-join.ts). On a terminal the table is redrawn every interval;
// piped, it is printed once when the duration ends (default 5s).
import { parseOrExit } from '../command-args.ts';
import { processIO, type CommandIO } from '../command-io.ts';
import { fitTable, fmtMs, fmtPercent, type Column } from '../fit-table.ts';
import { checkTapTarget, openTapFor, parseDuration } from '../tap-stream.ts';
import { TapJoiner, type TapRequest } from '../tap-join.ts';

/** Piped without --duration: how long to watch before printing the table. */
export const NO_TTY_SNAPSHOT_MS = 5_000;

export const summary = 'live view of the busiest paths (from the tap stream)';

const usage = 'usage: trellis top [SERVICE] [--path PREFIX] [--admin HOST:PORT]... [--admin-token T] [--interval 1s] [--duration D] [--rows N] [--server URL]';

export interface PathStats {
  readonly source: string;
  readonly destination: string;
  readonly method: string;
  readonly path: string;
  count: number;
  successes: number;
  best: number;
  worst: number;
  last: number;
}

/** Counts per (source, destination, method, path without query), bounded. */
export class TopTable {
  private readonly rows = new Map<string, PathStats>();
  private readonly maxPaths: number;
  constructor(maxPaths = 10_000) {
    this.maxPaths = maxPaths;
  }
  /** One request (both sides joined): counted once, as its caller saw it. */
  add(e: TapRequest): void {
    const q = e.path.indexOf('?');
    const path = q < 0 ? e.path : e.path.slice(0, q);
    const source = `${e.source_namespace}/${e.source_workload}`;
    const destination = `${e.destination_namespace}/${e.destination_workload}`;
    const key = `${source} ${destination} ${e.method} ${e.authority}${path}`;
    let r = this.rows.get(key);
    if (!r) {
      if (this.rows.size >= this.maxPaths) return;
      this.rows.set(key, (r = { source, destination, method: e.method, path: `${e.authority}${path}`, count: 0, successes: 0, best: Infinity, worst: 0, last: 0 }));
    }
    r.count++;
    if (e.status < 500 && !['2', '4', '12', '13', '14', '15'].includes(e.grpc_status)) r.successes++;
    r.best = Math.min(r.best, e.duration_ms);
    r.worst = Math.max(r.worst, e.duration_ms);
    r.last = e.duration_ms;
  }
  /** Busiest first. */
  top(n: number): PathStats[] {
    return [...this.rows.values()].sort((a, b) => b.count - a.count || a.path.localeCompare(b.path)).slice(0, n);
  }
}

export const topColumns: Column<PathStats>[] = [
  { header: 'SOURCE', value: (r) => r.source, minWidth: 8, priority: 2 },
  { header: 'DESTINATION', value: (r) => r.destination, minWidth: 8, priority: 3 },
  { header: 'METHOD', value: (r) => r.method },
  { header: 'PATH', value: (r) => r.path, minWidth: 12 },
  { header: 'COUNT', value: (r) => String(r.count), align: 'right' },
  { header: 'SUCCESS', value: (r) => fmtPercent(r.count > 0 ? r.successes / r.count : null), align: 'right', priority: 4 },
  { header: 'BEST', value: (r) => fmtMs(r.best === Infinity ? null : r.best), align: 'right', priority: 1 },
  { header: 'WORST', value: (r) => fmtMs(r.worst), align: 'right', priority: 1.5 },
  { header: 'LAST', value: (r) => fmtMs(r.last), align: 'right', priority: 5 },
];

export async function exec(argv: string[], io: CommandIO, deps: { tty?: boolean } = {}): Promise<number> {
  const args = parseOrExit('top', argv, {
        path: { type: 'string' }, admin: { type: 'string', multiple: true }, 'admin-token': { type: 'string' }, interval: { type: 'string' }, duration: { type: 'string' },
        rows: { type: 'string' }, server: { type: 'string' }, context: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      }, usage, io);
  if (typeof args === 'number') return args;
  const { values, positionals } = args;
  const intervalMs = parseDuration(values.interval ?? '1s');
  if (intervalMs === undefined || intervalMs < 100) {
    io.err('trellis top: --interval: must be a duration of at least 100ms (e.g. 1s)');
    return 2;
  }
  const durationMs = values.duration === undefined ? undefined : parseDuration(values.duration);
  if (values.duration !== undefined && durationMs === undefined) {
    io.err('trellis top: --duration: must look like 500ms, 10s or 2m');
    return 2;
  }
  const rowsN = Number(values.rows ?? 20);
  if (!Number.isInteger(rowsN) || rowsN < 1) {
    io.err('trellis top: --rows: must be a positive integer');
    return 2;
  }
  const tty = deps.tty ?? (io.columns !== undefined);
  let stopAfterMs = durationMs;
  if (!tty && stopAfterMs === undefined) {
    stopAfterMs = NO_TTY_SNAPSHOT_MS;
    io.err(`trellis top: output is not a terminal: printing one table after ${NO_TTY_SNAPSHOT_MS / 1000}s of traffic (--duration sets how long)`);
  }
  if (!values.admin?.length) {
    const bad = await checkTapTarget('top', positionals[0], { server: values.server, context: values.context }, io);
    if (bad !== undefined) return bad;
  }
  const table = new TopTable();
  const joiner = new TapJoiner((r) => table.add(r));
  const { handle, sources } = openTapFor({ admin: values.admin, adminToken: values['admin-token'], server: values.server, context: values.context }, { service: positionals[0], path: values.path }, (line, from) => {
    if (line.type === 'exchange') joiner.add(line, from);
  });
  const render = (): string => {
    const rows = table.top(rowsN);
    return rows.length === 0 ? '(waiting for traffic…)' : fitTable(topColumns, rows, io.columns);
  };
  const redraw = tty ? setInterval(() => io.out(`\x1b[H\x1b[2J${render()}`), intervalMs) : undefined;
  const stopTimer = stopAfterMs === undefined ? undefined : setTimeout(() => handle.stop(), stopAfterMs);
  const onSigint = (): void => handle.stop();
  process.once('SIGINT', onSigint);
  const { errors } = await handle.done;
  joiner.flush();
  clearInterval(redraw);
  clearTimeout(stopTimer);
  process.off('SIGINT', onSigint);
  io.out(render());
  for (const e of errors) io.err(`trellis top: ${e}`);
  return errors.length >= sources ? 1 : 0;
}

export function run(argv: string[]): Promise<number> {
  return exec(argv, processIO());
}
