// `trellis login`: save a control plane and a token as a context in the CLI
// config (contexts.ts) and make it current; the token is checked first
// (GET /api/v1/auth/whoami), so a typo never lands in the file.
//
//   trellis login --server URL --token TOKEN [--context NAME] [--ca-pin sha256:HEX | --ca-file F]
//   trellis login --context NAME          switch the current context
//
// Over HTTPS the CLI trusts only the mesh CA, learnt from a file or from a
// pin (the hash the control plane logs at start, as kubeadm's
// discovery-token-ca-cert-hash): the trust bundle is read once without
// verification, kept only if a root matches, and saved in the context.
import { readFileSync } from 'node:fs';
import { parseOrExit } from '../command-args.ts';
import { tlsFetch } from '../../lib/tls-fetch.ts';
import { rootsMatchingPin } from '../../lib/ca-pin.ts';
import { configPath, loadConfig, normalizeServer, saveConfig, upsertContext, type Connection } from '../contexts.ts';
import { apiFetch } from '../api-fetch.ts';

export const summary = 'save a control plane URL and API token as a context (kubeconfig-like) and use it';

const usage = `usage: trellis login --server URL --token TOKEN [--context NAME]
       trellis login --context NAME            make an existing context current

  --server URL      the control plane API, e.g. http://10.0.0.5:15080
  --token TOKEN     an API token (tat_...): the admin-token file in the control plane's
                    data directory, or one from \`trellis token create\`; - reads stdin
  --context NAME    the context's name (default: the server's host)
  --ca-pin PIN      https: trust the mesh CA whose key hashes to PIN (sha256:<hex>, in the
                    control plane's start-up log and in \`trellis identity\`)
  --ca-file F       https: trust the CA certificates in F (PEM)

Contexts live in $TRELLIS_CONFIG, else ~/.config/trellis/config (0600). Every command
takes --context NAME; without it the current context is used.`;

const OPTIONS = {
  server: { type: 'string' },
  token: { type: 'string' },
  context: { type: 'string' },
  'ca-pin': { type: 'string' },
  'ca-file': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The mesh CA for an https server, from --ca-file or --ca-pin; a message when neither works. */
async function learnCa(server: string, pin: string | undefined, file: string | undefined): Promise<{ ok: true; ca: string } | { ok: false; message: string }> {
  if (file !== undefined) {
    try {
      return { ok: true, ca: readFileSync(file, 'utf8') };
    } catch (err) {
      return { ok: false, message: `--ca-file: ${(err as Error).message}` };
    }
  }
  if (pin === undefined) return { ok: false, message: `${server} is HTTPS with a certificate from the mesh CA: say which CA to trust with --ca-pin sha256:<hex> (the control plane logs it at start) or --ca-file FILE` };
  if (!/^sha256:[0-9a-f]{64}$/.test(pin)) return { ok: false, message: `--ca-pin: must be sha256:<64 hex digits> (got "${pin}")` };
  let bundle: unknown;
  try {
    const res = await tlsFetch(`${server}/api/v1/identity/trust-bundle`, { insecureSkipVerify: true, timeoutMs: 10_000 });
    bundle = ((await res.json()) as { trustBundle?: unknown }).trustBundle;
  } catch (err) {
    return { ok: false, message: `cannot read the trust bundle of ${server} (${(err as Error).message})` };
  }
  if (typeof bundle !== 'string' || rootsMatchingPin(bundle, pin).length === 0) {
    return { ok: false, message: `${server} serves no CA with key ${pin}: not the control plane you meant, or someone in between; nothing saved` };
  }
  return { ok: true, ca: bundle };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8').trim();
}

export async function run(argv: string[]): Promise<number> {
  const args = parseOrExit('login', argv, OPTIONS, usage);
  if (typeof args === 'number') return args;
  const { values } = args;
  if (values.server === undefined && values.token === undefined) {
    if (values.context === undefined) {
      console.error(`trellis login: --server and --token are required\n\n${usage}`);
      return 2;
    }
    const cfg = loadConfig();
    if (!cfg.contexts.some((c) => c.name === values.context)) {
      console.error(`trellis login: no context "${values.context}" in ${configPath()}; create it with --server and --token`);
      return 1;
    }
    saveConfig({ ...cfg, currentContext: values.context });
    console.log(`current context: ${values.context}`);
    return 0;
  }
  if (values.server === undefined || values.token === undefined) {
    console.error(`trellis login: --server and --token go together\n\n${usage}`);
    return 2;
  }
  let server: URL;
  try {
    server = new URL(values.server);
    if (server.protocol !== 'http:' && server.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    console.error(`trellis login: --server: must be an http(s) URL such as http://10.0.0.5:15080 (got "${values.server}")`);
    return 2;
  }
  const token = values.token === '-' ? await readStdin() : values.token.trim();
  if (!/^tat_[A-Za-z0-9_-]{43}$/.test(token)) {
    console.error('trellis login: --token: not a Trellis API token (tat_ followed by 43 characters); use the admin-token file or `trellis token create`');
    return 2;
  }
  let ca: string | undefined;
  if (server.protocol === 'https:') {
    const learnt = await learnCa(normalizeServer(server.toString()), values['ca-pin'], values['ca-file']);
    if (!learnt.ok) {
      console.error(`trellis login: ${learnt.message}`);
      return 1;
    }
    ca = learnt.ca;
  }
  const conn: Connection = { server: normalizeServer(server.toString()), token, ...(ca ? { ca } : {}) };
  let who: { authenticated?: boolean; name?: string; role?: string; namespace?: string; serviceAccount?: string; error?: { message?: string } };
  try {
    const res = await apiFetch(conn, '/api/v1/auth/whoami', { signal: AbortSignal.timeout(10_000) });
    who = (await res.json()) as typeof who;
    if (!res.ok) {
      console.error(`trellis login: ${conn.server} refused the token: ${who.error?.message ?? `HTTP ${res.status}`}`);
      return 1;
    }
  } catch (err) {
    const why = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    console.error(`trellis login: cannot reach the control plane at ${conn.server} (${why})`);
    return 1;
  }
  const name = values.context ?? server.hostname;
  upsertContext({ name, server: conn.server, token, ...(ca ? { certificateAuthority: ca } : {}) });
  const role = who.role === 'registrar' ? `registrar for ${who.namespace}/${who.serviceAccount}` : who.role;
  console.log(`logged in to ${conn.server} as ${who.name} (${role}); context "${name}" saved in ${configPath()} and made current`);
  return 0;
}
