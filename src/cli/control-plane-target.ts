// The control plane a proxy-running command (`trellis run`, `gateway`,
// `node-proxy`) talks to, chosen like every other command's (contexts.ts:
// --server, else $TRELLIS_SERVER, else the context), and its xDS address
// asked of that control plane's API (GET /api/v1/discovery), so
// non-default ports need no extra flag. One control plane: a flag wins over
// the environment and nothing else is tried; an unreachable API is an error
// naming the address and how it was chosen, never a fallback.
// --control-plane / $TRELLIS_CONTROL_PLANE remain as deprecated spellings of
// --server / $TRELLIS_SERVER.
import { apiFetch } from './api-fetch.ts';
import { resolveConnection, type Connection } from './contexts.ts';
import { isLoopbackAddress } from '../control-plane/api/auth.ts';
import type { XdsDiscovery } from '../control-plane/discovery-api.ts';

export const CONTROL_PLANE_OPTIONS = {
  server: { type: 'string' },
  context: { type: 'string' },
  'control-plane': { type: 'string' },
} as const;

export interface Target {
  readonly conn: Connection;
  /** How the server was chosen, for error messages ("--server", "$TRELLIS_SERVER", ...). */
  readonly source: string;
}

/** Throws ConfigError (contexts.ts) for a bad config file or unknown --context. */
export function controlPlaneTarget(
  cmd: string,
  flags: { server?: string | undefined; context?: string | undefined; 'control-plane'?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
  warn: (line: string) => void = (l) => console.error(l),
): Target {
  let server: string | undefined;
  let source: string;
  if (flags.server !== undefined) {
    server = flags.server;
    source = '--server';
  } else if (flags['control-plane'] !== undefined) {
    warn(`trellis ${cmd}: --control-plane is deprecated; use --server (as every command does)`);
    server = flags['control-plane'];
    source = '--control-plane';
  } else if (env.TRELLIS_SERVER) {
    server = env.TRELLIS_SERVER;
    source = '$TRELLIS_SERVER';
  } else if (env.TRELLIS_CONTROL_PLANE) {
    warn(`trellis ${cmd}: $TRELLIS_CONTROL_PLANE is deprecated; use $TRELLIS_SERVER`);
    server = env.TRELLIS_CONTROL_PLANE;
    source = '$TRELLIS_CONTROL_PLANE';
  } else {
    source = '';
  }
  // Only the server chosen here: an empty $TRELLIS_SERVER is not a server.
  const conn = resolveConnection({ server, context: flags.context }, { ...env, TRELLIS_SERVER: undefined });
  if (source === '') source = conn.context !== undefined ? `context "${conn.context}"` : 'the default (no --server, $TRELLIS_SERVER or context)';
  try {
    new URL(conn.server);
  } catch {
    throw new TargetError(`${source} ${JSON.stringify(conn.server)}: not a URL`);
  }
  return { conn, source };
}

export class TargetError extends Error {}

export interface XdsTarget {
  /** HOST:PORT on the API's host. */
  readonly address: string;
  readonly tls: boolean;
}

/** Asks the API where xDS is. `workloadIdentity`: the caller holds a
 * join token, so it can use the mutual-TLS port (preferred beyond loopback,
 * as the plaintext port is then not served or not wanted). */
export async function discoverXds(target: Target, opts: { workloadIdentity: boolean; ca?: string | undefined; timeoutMs?: number }): Promise<XdsTarget | TargetError> {
  const { conn, source } = target;
  const where = `the control plane API at ${conn.server} (from ${source})`;
  let res: Response;
  try {
    res = await apiFetch(opts.ca === undefined ? conn : { ...conn, ca: opts.ca }, '/api/v1/discovery', { signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return new TargetError(`cannot reach ${where}: ${cause?.code ?? cause?.message ?? (err as Error).message}; is \`trellis control-plane\` running there? (choose it with --server URL, $TRELLIS_SERVER or --context)`);
  }
  const body = (await res.json().catch(() => undefined)) as { xds?: XdsDiscovery } | undefined;
  const xds = body?.xds;
  if (!res.ok || xds === undefined) return new TargetError(`${where} did not say where it serves xDS (GET /api/v1/discovery: HTTP ${res.status}); an older control plane: pass --xds HOST:PORT`);
  const url = new URL(conn.server);
  const bare = url.hostname.replace(/^\[|\]$/g, '');
  const tls = opts.workloadIdentity && xds.tlsPort !== undefined && (xds.port === undefined || !isLoopbackAddress(bare));
  const port = tls ? xds.tlsPort : xds.port;
  if (port === undefined) {
    return new TargetError(`${where} serves xDS only over mutual TLS (port ${xds.tlsPort ?? '?'}): a workload identity is needed; set TRELLIS_JOIN_TOKEN (trellis identity token ...)`);
  }
  return { address: `${url.hostname}:${port}`, tls };
}

/** The xDS address: the deprecated --xds / $TRELLIS_XDS when given (with a
 * hint, unless it lists several replicas), else the API's answer. `list`: several HOST:PORT, comma-separated,
 * are allowed (one per replica). */
export async function xdsFor(
  cmd: string,
  flag: string | undefined,
  target: Target,
  opts: { workloadIdentity: boolean; ca?: string | undefined; list?: boolean; env?: NodeJS.ProcessEnv },
): Promise<XdsTarget | TargetError> {
  const env = opts.env ?? process.env;
  const given = flag ?? (env.TRELLIS_XDS || undefined);
  if (given === undefined) return discoverXds(target, opts);
  // One address is what the API answers; several (HA replicas) it cannot yet.
  if (!given.includes(',')) console.error(`trellis ${cmd}: ${flag !== undefined ? '--xds' : '$TRELLIS_XDS'} is deprecated; the xDS address is asked of the control plane's API (--server)`);
  const one = /^[^:,]+:\d{1,5}$/;
  if (!(opts.list ? given.split(',') : [given]).every((a) => one.test(a))) {
    return new TargetError(`--xds ${JSON.stringify(given)}: expected HOST:PORT${opts.list ? ' or a comma-separated list of them' : ''}`);
  }
  return { address: given, tls: false };
}
