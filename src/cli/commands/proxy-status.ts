// `trellis proxy-status [--server URL[,URL...]] [-o table|json]`: the xDS
// sync state of every connected proxy, like `istioctl proxy-status`. Reads
// `GET /api/v1/proxies` from each control-plane replica given (a proxy is
// connected to one replica at a time) and merges the answers; a replica that
// cannot be reached is reported and the others are still shown.
import { parseArgs } from '../command-args.ts';
import { DEFAULT_SERVER } from '../client.ts';
import { resolveConnection, type Connection } from '../contexts.ts';
import { apiFetch } from '../api-fetch.ts';
import { formatAge, renderTable } from '../output.ts';
import { processIO, type CommandIO } from '../command-io.ts';
import type { ProxyStatus, TypeSyncStatus } from '../../xds/server.ts';

export const summary = 'xDS sync state of every connected proxy (CDS/LDS/EDS/RDS: SYNCED, STALE, NACKED)';

const usage = `usage: trellis proxy-status [--server URL[,URL...]] [-o table|json]

  --server   control-plane API URL; repeat it or separate with commas to merge
             several replicas (default $TRELLIS_SERVER, the context's, else ${DEFAULT_SERVER})
  --context  a context from the CLI config (trellis login)
  -o         table (default) or json`;

export type TypeState = 'SYNCED' | 'STALE' | 'NACKED' | 'NOT SENT';

export interface ProxyStatusRow {
  readonly name: string;
  readonly cluster: string;
  readonly controlPlane: string;
  readonly server: string;
  readonly connectedAt: string;
  readonly version: string | null;
  /** The xDS client: Trellis's proxy, or a gRPC implementation and version. */
  readonly userAgent: string;
  /** What translation warned about this proxy's config (e.g. fields its gRPC client kind ignores). */
  readonly warnings: readonly string[];
  /** By xDS short name: CDS, LDS, EDS, RDS (and SDS when subscribed). */
  readonly types: Readonly<Record<string, { readonly state: TypeState; readonly sentVersion: string | null; readonly ackedVersion: string | null; readonly nack: string | null }>>;
}

export interface ReplicaInfo {
  readonly server: string;
  readonly controlPlane: string;
  /** From `GET /api/v1/ha`; null when the replica does not say. */
  readonly isLeader: boolean | null;
  readonly proxies: number;
}

export interface ProxyStatusReport {
  readonly proxies: ProxyStatusRow[];
  readonly replicas: ReplicaInfo[];
  /** Replicas that could not be asked, with the reason. */
  readonly unreachable: { readonly server: string; readonly error: string }[];
}

const TYPES: readonly [string, string][] = [
  ['CDS', 'Cluster'],
  ['LDS', 'Listener'],
  ['EDS', 'ClusterLoadAssignment'],
  ['RDS', 'RouteConfiguration'],
  ['SDS', 'Secret'],
];

/** One type's state from the server's view of it. */
export function typeState(t: TypeSyncStatus | undefined): TypeState {
  if (t === undefined || t.sentVersion === null) return 'NOT SENT';
  if (t.nacked !== null) return 'NACKED';
  if (t.ackedVersion !== t.sentVersion) return 'STALE';
  if (t.latestVersion !== null && t.latestVersion !== t.sentVersion) return 'STALE';
  return 'SYNCED';
}

function toRow(p: ProxyStatus & { warnings?: string[] }, controlPlane: string, server: string): ProxyStatusRow {
  const types: Record<string, ProxyStatusRow['types'][string]> = {};
  for (const [short, long] of TYPES) {
    const t = p.perType[long];
    if (t === undefined && short === 'SDS') continue;
    types[short] = {
      state: typeState(t),
      sentVersion: t?.sentVersion ?? null,
      ackedVersion: t?.ackedVersion ?? null,
      nack: t?.nacked ? `version ${t.nacked.version}: ${t.nacked.message}` : null,
    };
  }
  return { name: p.nodeId, cluster: p.cluster, controlPlane, server, connectedAt: p.connectedAt, version: p.snapshotLabel, userAgent: p.userAgent ?? '', warnings: Array.isArray(p.warnings) ? p.warnings : [], types };
}

/** Asks every server and merges; rows sorted by proxy, then replica. */
export async function collectProxyStatus(servers: readonly (string | Connection)[], timeoutMs = 10_000): Promise<ProxyStatusReport> {
  const proxies: ProxyStatusRow[] = [];
  const replicas: ReplicaInfo[] = [];
  const unreachable: { server: string; error: string }[] = [];
  await Promise.all(
    servers.map(async (target) => {
      const conn: Connection = typeof target === 'string' ? { server: target } : target;
      const server = conn.server;
      try {
        const res = await apiFetch(conn, '/api/v1/proxies', { signal: AbortSignal.timeout(timeoutMs) });
        if (!res.ok) {
          const msg = ((await res.json().catch(() => ({}))) as { error?: { message?: string } }).error?.message;
          throw new Error(`HTTP ${res.status}${msg ? `: ${msg}` : ''}`);
        }
        const body = (await res.json()) as { controlPlane?: string; proxies?: ProxyStatus[] };
        if (!Array.isArray(body.proxies)) throw new Error('the answer has no "proxies" list');
        const controlPlane = body.controlPlane ?? server;
        for (const p of body.proxies) proxies.push(toRow(p, controlPlane, server));
        replicas.push({ server, controlPlane, isLeader: await leaderFlag(conn, timeoutMs), proxies: body.proxies.length });
      } catch (err) {
        const cause = (err as { cause?: { code?: string; errors?: { code?: string }[] } }).cause;
        unreachable.push({ server, error: cause?.code ?? cause?.errors?.[0]?.code ?? (cause as Error | undefined)?.message ?? (err as Error).message });
      }
    }),
  );
  proxies.sort((a, b) => (a.name === b.name ? (a.controlPlane < b.controlPlane ? -1 : 1) : a.name < b.name ? -1 : 1));
  unreachable.sort((a, b) => (a.server < b.server ? -1 : 1));
  replicas.sort((a, b) => (a.controlPlane < b.controlPlane ? -1 : 1));
  return { proxies, replicas, unreachable };
}

async function leaderFlag(conn: Connection, timeoutMs: number): Promise<boolean | null> {
  try {
    const res = await apiFetch(conn, '/api/v1/ha', { signal: AbortSignal.timeout(timeoutMs) });
    const body = res.ok ? ((await res.json()) as { isLeader?: unknown }) : {};
    return typeof body.isLeader === 'boolean' ? body.isLeader : null;
  } catch {
    return null;
  }
}

/** The table, then every NACK in full. */
export function renderProxyStatus(report: ProxyStatusReport, now = Date.now()): string {
  const planes = report.replicas.length + report.unreachable.length > 1
    ? ['', `CONTROL PLANES: ${report.replicas.map((r) => `${r.controlPlane}${r.isLeader ? ' (leader)' : ''} ${r.proxies} prox${r.proxies === 1 ? 'y' : 'ies'}`).join(', ')}`]
    : [];
  if (report.proxies.length === 0) return ['No proxies connected.', ...planes].join('\n');
  const showSds = report.proxies.some((p) => p.types['SDS'] !== undefined);
  const shown = TYPES.map(([s]) => s).filter((s) => s !== 'SDS' || showSds);
  const header = ['NAME', 'CLUSTER', ...shown, 'VERSION', 'CONTROL PLANE', 'CONNECTED SINCE'];
  const rows = report.proxies.map((p) => [
    p.name,
    p.cluster || '-',
    ...shown.map((s) => p.types[s]?.state ?? '-'),
    p.version ?? '-',
    p.controlPlane,
    formatAge(p.connectedAt, now),
  ]);
  const out = [renderTable(header, rows)];
  const nacks = report.proxies.flatMap((p) => shown.flatMap((s) => (p.types[s]?.nack ? [`  ${p.name} ${s} (${p.controlPlane}) ${p.types[s]!.nack}`] : [])));
  if (nacks.length > 0) out.push('', 'NACKED:', ...nacks);
  const warned = report.proxies.flatMap((p) => p.warnings.map((w) => `  ${p.name} (${p.userAgent || 'unknown client'}) ${w}`));
  if (warned.length > 0) out.push('', 'WARNINGS:', ...warned);
  out.push(...planes);
  return out.join('\n');
}

export function serverList(flags: readonly string[] | undefined, context?: string): string[] {
  const raw = flags && flags.length > 0 ? flags : [resolveConnection({ context }).server];
  return [...new Set(raw.flatMap((f) => f.split(',')).map((s) => s.trim().replace(/\/+$/, '')).filter((s) => s !== ''))];
}

export async function exec(argv: string[], io: CommandIO): Promise<number> {
  let values: { server?: string[]; context?: string; output?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { server: { type: 'string', multiple: true }, context: { type: 'string' }, output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    io.err(`trellis proxy-status: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) {
    io.out(usage);
    return 0;
  }
  const output = values.output ?? 'table';
  if (output !== 'table' && output !== 'json') {
    io.err(`trellis proxy-status: -o: must be table or json (got "${output}")`);
    return 2;
  }
  const servers = serverList(values.server, values.context);
  const bad = servers.find((s) => !/^https?:\/\/[^/]+/.test(s));
  if (bad !== undefined) {
    io.err(`trellis proxy-status: --server: must be an http(s) URL such as ${DEFAULT_SERVER} (got "${bad}")`);
    return 2;
  }
  const report = await collectProxyStatus(servers.map((s) => resolveConnection({ server: s, context: values.context })));
  for (const u of report.unreachable) io.err(`trellis proxy-status: cannot reach the control plane at ${u.server} (${u.error})`);
  if (report.unreachable.length === servers.length) return 1;
  io.out(output === 'json' ? JSON.stringify(report, null, 2) : renderProxyStatus(report));
  return 0;
}

export function run(argv: string[]): Promise<number> {
  return exec(argv, processIO());
}
