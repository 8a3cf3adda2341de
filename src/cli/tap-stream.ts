// Client side of the live tap: opens `GET /tap?...` on each proxy's admin
// address (`--admin host:port`, with the proxy's admin token) and hands every
// NDJSON event to a callback, or by default reads the control plane's
// `/api/v1/tap` event stream, which fans in every proxy it knows.
import type { TapEvent } from '../proxy/telemetry/tap.ts';
import type { CommandIO } from './command-io.ts';
import type { TapRequest } from './tap-join.ts';
import { createClient, formatApiError } from './client.ts';
import { resolveConnection, type Connection, type ConnectionFlags } from './contexts.ts';
import { apiFetch } from './api-fetch.ts';
import { closestName, typoLimit } from '../lib/did-you-mean.ts';

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

/** `token`: each proxy's admin token (its /tap answers 401 without it). */
export function openTaps(addresses: readonly string[], q: TapQuery, onLine: (line: TapLine, from: string) => void, token?: (address: string) => string | undefined): TapHandle {
  const ac = new AbortController();
  const errors: string[] = [];
  const one = async (address: string): Promise<void> => {
    const url = new URL(`http://${address}/tap`);
    for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') url.searchParams.set(k, v);
    let res: Response;
    try {
      const t = token?.(address);
      res = await fetch(url, { signal: ac.signal, ...(t !== undefined ? { headers: { authorization: `Bearer ${t}` } } : {}) });
    } catch (err) {
      if (!ac.signal.aborted) errors.push(`${address}: cannot tap the proxy's admin listener (${fetchFailure(err)})`);
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

/** The tap through the control plane (`GET /api/v1/tap`, server-sent
 * events, control-plane/telemetry/tap-proxy.ts): it holds every proxy's
 * admin token, so this is the default when no --admin is given. */
export function openControlPlaneTap(target: string | Connection, q: TapQuery, onLine: (line: TapLine, from: string) => void): TapHandle {
  const conn: Connection = typeof target === 'string' ? { server: target } : target;
  const server = conn.server;
  const ac = new AbortController();
  const errors: string[] = [];
  const run = async (): Promise<void> => {
    const url = new URL(`${server}/api/v1/tap`);
    for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') url.searchParams.set(k, v);
    let res: Response;
    try {
      res = await apiFetch(conn, url.toString(), { signal: ac.signal, headers: { accept: 'text/event-stream' } });
    } catch (err) {
      if (!ac.signal.aborted) errors.push(`${server}: ${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}`);
      return;
    }
    if (res.status !== 200 || !res.body) {
      const text = await res.text().catch(() => '');
      errors.push(`${server}: HTTP ${res.status} ${text.trim()}`);
      return;
    }
    const decoder = new TextDecoder();
    let buf = '';
    const dispatch = (block: string): void => {
      let event = 'message';
      let data = '';
      for (const l of block.split('\n')) {
        if (l.startsWith('event: ')) event = l.slice(7);
        else if (l.startsWith('data: ')) data += l.slice(6);
      }
      if (data === '') return;
      let v: Record<string, unknown>;
      try {
        v = JSON.parse(data) as Record<string, unknown>;
      } catch {
        errors.push(`${server}: unreadable tap event`);
        return;
      }
      const from = typeof v['proxy'] === 'string' ? v['proxy'] : server;
      if (event === 'tap') onLine({ ...v, type: 'exchange' } as unknown as TapLine, from);
      else if (event === 'dropped') onLine({ type: 'dropped', count: Number(v['count']) || 0 }, from);
      else if (event === 'tap-error') errors.push(String(v['message']));
      else if (event === 'start') onLine({ type: 'start' }, from);
    };
    try {
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          dispatch(buf.slice(0, end));
          buf = buf.slice(end + 2);
        }
      }
    } catch (err) {
      if (!ac.signal.aborted) errors.push(`${server}: ${(err as Error).message}`);
    }
  };
  return { done: run().then(() => ({ errors })), stop: () => ac.abort() };
}

/** Where a tap or top command reads from: `--admin` addresses directly (with
 * `--admin-token` or TRELLIS_ADMIN_TOKEN), else the control plane. */
export function openTapFor(o: { admin: string[] | undefined; adminToken: string | undefined } & ConnectionFlags, q: TapQuery, onLine: (line: TapLine, from: string) => void): { handle: TapHandle; sources: number } {
  if (o.admin && o.admin.length > 0) {
    const token = o.adminToken ?? process.env['TRELLIS_ADMIN_TOKEN'];
    return { handle: openTaps(o.admin, q, onLine, token ? () => token : undefined), sources: o.admin.length };
  }
  return { handle: openControlPlaneTap(resolveConnection({ server: o.server, context: o.context }), q, onLine), sources: 1 };
}

/** Why a fetch failed: the socket error's code (ECONNREFUSED...), not "fetch failed". */
function fetchFailure(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string; errors?: { code?: string }[] } }).cause;
  return cause?.code ?? cause?.errors?.[0]?.code ?? cause?.message ?? (err as Error).message;
}

/** One line per request, for humans: the sides seen (`out` the caller's
 * proxy, `in` the callee's), then the caller's view, then the callee's
 * timing, status and attempts where they differ. */
export function formatTapRequest(r: TapRequest): string {
  const sides = r.client && r.server ? 'out+in' : r.client ? 'out   ' : 'in    ';
  const s = r.client ? r.server : null;
  return [
    sides,
    r.method,
    `${r.authority}${r.path}`,
    String(r.status) + (r.grpc_status !== '' ? ` grpc=${r.grpc_status}` : ''),
    `${r.duration_ms}ms`,
    `${r.bytes_sent}B`,
    `src=${r.source_namespace}/${r.source_workload}`,
    `dst=${r.destination_namespace}/${r.destination_workload}`,
    `flags=${r.response_flags}`,
    ...(s ? [`server=${s.status !== r.status ? `${s.status}/` : ''}${s.duration_ms}ms`] : []),
    ...(r.attempts > 1 ? [`attempts=${r.attempts}`] : []),
    ...(r.trace_id ? [`trace=${r.trace_id}`] : []),
  ].join(' ');
}

/** Parse `10s`, `500ms`, `2m`. */
export function parseDuration(v: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}


/** A tap target (SERVICE) must name a mesh Service (short name, `name.ns` or
 * its host): else the reason, a suggestion and exit 1, instead of a tap that
 * waits forever for traffic that cannot match. Skipped with --admin (no
 * control plane to ask). */
export async function checkTapTarget(command: string, service: string | undefined, flags: ConnectionFlags, io: CommandIO): Promise<number | undefined> {
  if (service === undefined) return undefined;
  const client = createClient(resolveConnection(flags));
  const r = await client.list('Service', {});
  if (!r.ok) {
    io.err(`trellis ${command}: ${formatApiError(r.error, r.status)}`);
    return 1;
  }
  const names = new Set<string>();
  for (const s of r.body.items) {
    const ns = s.metadata.namespace ?? 'default';
    names.add(s.metadata.name);
    names.add(`${s.metadata.name}.${ns}`);
    names.add(`${s.metadata.name}.${ns}.svc.cluster.local`);
  }
  if (names.has(service)) return undefined;
  const short = [...new Set(r.body.items.map((s) => s.metadata.name))].sort();
  const guess = closestName(service, short, typoLimit(service));
  io.err(`trellis ${command}: unknown service "${service}": no Service of that name in the mesh${guess ? `; did you mean "${guess}"?` : ''}${short.length > 0 ? ` (services: ${short.slice(0, 12).join(', ')}${short.length > 12 ? ', …' : ''})` : ' (there are no services: `trellis apply -f` one first)'}`);
  return 1;
}
