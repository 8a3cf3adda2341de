// Client side of the live tap: opens `GET /tap?...` on each proxy's admin
// address and hands every NDJSON event to a callback. Addresses come from
// `--admin host:port` or, by default, from the control plane's scrape targets
// (`/api/v1/metrics/targets`).
import type { TapEvent } from '../proxy/telemetry/tap.ts';
import type { CommandIO } from './command-io.ts';
import { httpMetrics, metricsServer } from './metrics-client.ts';
import { withSpinner } from './spinner.ts';

export interface TapQuery {
  readonly service?: string | undefined;
  readonly path?: string | undefined;
  readonly method?: string | undefined;
  readonly code?: string | undefined;
  readonly authority?: string | undefined;
}

export type TapLine = TapEvent | { type: 'dropped'; count: number } | { type: 'start' };

export interface TapHandle {
  /** Resolves when every stream ended (closed by the proxy or by stop()). */
  readonly done: Promise<{ errors: string[] }>;
  stop(): void;
}

export function openTaps(addresses: readonly string[], q: TapQuery, onLine: (line: TapLine, from: string) => void): TapHandle {
  const ac = new AbortController();
  const errors: string[] = [];
  const one = async (address: string): Promise<void> => {
    const url = new URL(`http://${address}/tap`);
    for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') url.searchParams.set(k, v);
    let res: Response;
    try {
      res = await fetch(url, { signal: ac.signal });
    } catch (err) {
      if (!ac.signal.aborted) errors.push(`${address}: ${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}`);
      return;
    }
    if (res.status !== 200 || !res.body) {
      const text = await res.text().catch(() => '');
      errors.push(`${address}: HTTP ${res.status} ${text.trim()}`);
      return;
    }
    const decoder = new TextDecoder();
    let buf = '';
    try {
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim() === '') continue;
          try {
            onLine(JSON.parse(line) as TapLine, address);
          } catch {
            errors.push(`${address}: unreadable tap line`);
          }
        }
      }
    } catch (err) {
      if (!ac.signal.aborted) errors.push(`${address}: ${(err as Error).message}`);
    }
  };
  const done = Promise.all(addresses.map(one)).then(() => ({ errors }));
  return { done, stop: () => ac.abort() };
}

/** One line per exchange, for humans. */
export function formatTapEvent(e: TapEvent): string {
  return [
    e.direction === 'inbound' ? 'in ' : 'out',
    e.method,
    `${e.authority}${e.path}`,
    String(e.status) + (e.grpc_status !== '' ? ` grpc=${e.grpc_status}` : ''),
    `${e.duration_ms}ms`,
    `${e.bytes_sent}B`,
    `src=${e.source_namespace}/${e.source_workload}`,
    `dst=${e.destination_namespace}/${e.destination_workload}`,
    `flags=${e.response_flags}`,
    ...(e.trace_id ? [`trace=${e.trace_id}`] : []),
  ].join(' ');
}

/** Parse `10s`, `500ms`, `2m`. */
export function parseDuration(v: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

/** The admin addresses to tap: `--admin` as given, else the control plane's
 * scrape targets; or the exit code once the reason is printed (1). */
export async function tapAddresses(command: string, admin: string[] | undefined, server: string | undefined, io: CommandIO, targets?: () => Promise<string[]>): Promise<string[] | number> {
  if (admin && admin.length > 0) return admin;
  const find = targets ?? (async () => (await httpMetrics(metricsServer(server)).targets()).map((t) => t.address));
  let addresses: string[];
  try {
    addresses = await withSpinner('finding proxies…', find, io.spinnerOut);
  } catch (err) {
    io.err(`trellis ${command}: ${(err as Error).message}`);
    return 1;
  }
  if (addresses.length === 0) {
    io.err(`trellis ${command}: no proxies to tap (the control plane reports no scrape targets; use --admin HOST:PORT)`);
    return 1;
  }
  return addresses;
}
