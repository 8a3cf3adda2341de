// Where the CLI finds its control plane and credentials: contexts in one
// kubeconfig-like file, $TRELLIS_CONFIG or ~/.config/trellis/config
// ($XDG_CONFIG_HOME respected), 0600 in a 0700 directory:
//
//   currentContext: prod
//   contexts:
//     - name: prod
//       server: https://10.0.0.5:15080
//       token: tat_...
//       certificateAuthority: |      # PEM the server's certificate must chain to
//         -----BEGIN CERTIFICATE-----
//
// One resolution for every command (resolveConnection):
//   server: --server, else $TRELLIS_SERVER, else the context's (--context,
//           else $TRELLIS_CONTEXT, else currentContext), else http://127.0.0.1:15080
//   token:  $TRELLIS_TOKEN, else the context's, sent only to the context's
//           own server (a --server pointing elsewhere never receives it)
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';

export const DEFAULT_SERVER = 'http://127.0.0.1:15080';

export interface Context {
  name: string;
  server: string;
  token?: string;
  certificateAuthority?: string;
}

export interface CliConfig {
  currentContext?: string;
  contexts: Context[];
}

export interface Connection {
  readonly server: string;
  readonly token?: string;
  /** PEM roots the server's certificate must chain to (https). */
  readonly ca?: string;
  /** The context it came from, if any. */
  readonly context?: string;
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TRELLIS_CONFIG) return env.TRELLIS_CONFIG;
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'trellis', 'config');
}

export class ConfigError extends Error {}

export function loadConfig(file = configPath()): CliConfig {
  if (!existsSync(file)) return { contexts: [] };
  let doc: unknown;
  try {
    doc = YAML.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${file}: not valid YAML (${(err as Error).message})`);
  }
  if (doc === null || doc === undefined) return { contexts: [] };
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`${file}: expected a mapping with currentContext and contexts`);
  const d = doc as Record<string, unknown>;
  const contexts = d.contexts ?? [];
  if (!Array.isArray(contexts)) throw new ConfigError(`${file}: contexts: must be a list`);
  const out: Context[] = contexts.map((c: unknown, i: number) => {
    const r = (c ?? {}) as Record<string, unknown>;
    if (typeof r.name !== 'string' || r.name === '') throw new ConfigError(`${file}: contexts[${i}].name: required`);
    if (typeof r.server !== 'string' || r.server === '') throw new ConfigError(`${file}: contexts[${i}].server: required`);
    for (const f of ['token', 'certificateAuthority'] as const) {
      if (r[f] !== undefined && typeof r[f] !== 'string') throw new ConfigError(`${file}: contexts[${i}].${f}: must be a string`);
    }
    return {
      name: r.name,
      server: r.server,
      ...(typeof r.token === 'string' ? { token: r.token } : {}),
      ...(typeof r.certificateAuthority === 'string' ? { certificateAuthority: r.certificateAuthority } : {}),
    };
  });
  if (d.currentContext !== undefined && typeof d.currentContext !== 'string') throw new ConfigError(`${file}: currentContext: must be a string`);
  return { ...(typeof d.currentContext === 'string' ? { currentContext: d.currentContext } : {}), contexts: out };
}

/** Written whole (temp file + rename), 0600 in a 0700 directory. */
export function saveConfig(cfg: CliConfig, file = configPath()): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, YAML.stringify(cfg), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export function normalizeServer(url: string): string {
  return url.replace(/\/+$/, '');
}

export interface ConnectionFlags {
  readonly server?: string | undefined;
  readonly context?: string | undefined;
}

/** The server and credentials for a command (see the header). Throws
 * ConfigError for an unreadable file or an unknown --context. */
export function resolveConnection(flags: ConnectionFlags = {}, env: NodeJS.ProcessEnv = process.env): Connection {
  const wanted = flags.context ?? env.TRELLIS_CONTEXT;
  const cfg = loadConfig(configPath(env));
  const name = wanted ?? cfg.currentContext;
  const ctx = name === undefined ? undefined : cfg.contexts.find((c) => c.name === name);
  if (wanted !== undefined && ctx === undefined) {
    const known = cfg.contexts.map((c) => c.name);
    throw new ConfigError(`context "${wanted}" is not in ${configPath(env)}${known.length > 0 ? ` (known: ${known.join(', ')})` : ''}; add it with \`trellis login --server URL --token TOKEN --context ${wanted}\``);
  }
  const explicit = flags.server ?? env.TRELLIS_SERVER;
  const server = normalizeServer(explicit ?? ctx?.server ?? DEFAULT_SERVER);
  const sameServer = ctx !== undefined && normalizeServer(ctx.server) === server;
  const token = env.TRELLIS_TOKEN || (sameServer ? ctx.token : undefined);
  return {
    server,
    ...(token ? { token } : {}),
    ...(sameServer && ctx.certificateAuthority ? { ca: ctx.certificateAuthority } : {}),
    ...(sameServer ? { context: ctx.name } : {}),
  };
}

/** The Authorization header for a connection, if it has a token. */
export function authHeaders(conn: Connection): Record<string, string> {
  return conn.token ? { authorization: `Bearer ${conn.token}` } : {};
}

/** Adds or replaces a context and makes it current. */
export function upsertContext(ctx: Context, file = configPath()): CliConfig {
  const cfg = loadConfig(file);
  const contexts = [...cfg.contexts.filter((c) => c.name !== ctx.name), ctx].sort((a, b) => a.name.localeCompare(b.name));
  const next: CliConfig = { currentContext: ctx.name, contexts };
  saveConfig(next, file);
  return next;
}
