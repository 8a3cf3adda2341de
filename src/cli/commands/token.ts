// `trellis token`: the API's credentials (control-plane/api/api-tokens.ts).
//
//   trellis token create NAME --role admin|viewer|registrar [--namespace NS --service-account SA] [--ttl D]
//   trellis token list
//   trellis token revoke ID
import { parseOrExit } from '../command-args.ts';
import { resolveConnection } from '../contexts.ts';
import { apiFetch } from '../api-fetch.ts';
import { renderTable } from '../output.ts';

export const summary = 'create, list and revoke API tokens (roles admin, viewer, registrar)';

const usage = `usage: trellis token create NAME --role admin|viewer|registrar [-n NS --service-account SA] [--ttl D]
       trellis token list [-o json]
       trellis token revoke ID

  --role              admin: everything; viewer: read only; registrar: register workloads
                      of one identity (needs --namespace and --service-account)
  --ttl D             lifetime such as 720h (default: no expiry)
  --server, --context the control plane (as every command)

The token is printed once; only its hash is stored.`;

const OPTIONS = {
  role: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  'service-account': { type: 'string' },
  ttl: { type: 'string' },
  output: { type: 'string', short: 'o' },
  server: { type: 'string' },
  context: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

interface TokenRecord { id: string; name: string; role: string; namespace?: string; serviceAccount?: string; createdAt: string; expiresAt?: string }
/** What the three endpoints answer: a created token, the list, or the revoked record. */
interface TokenAnswer extends Partial<TokenRecord> { token?: string; items?: TokenRecord[]; revoked?: TokenRecord }

export async function run(argv: string[]): Promise<number> {
  const args = parseOrExit('token', argv, OPTIONS, usage);
  if (typeof args === 'number') return args;
  const { values, positionals } = args;
  const [sub, arg, ...extra] = positionals;
  const conn = resolveConnection({ server: values.server, context: values.context });
  const call = async (method: string, path: string, body?: unknown): Promise<{ ok: true; body: TokenAnswer } | { ok: false; message: string }> => {
    try {
      const res = await apiFetch(conn, path, {
        method,
        ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(10_000),
      });
      const json = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
      return res.ok ? { ok: true, body: json as TokenAnswer } : { ok: false, message: json.error?.message ?? `HTTP ${res.status}` };
    } catch (err) {
      return { ok: false, message: `cannot reach the control plane at ${conn.server} (${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message})` };
    }
  };
  if (extra.length > 0) {
    console.error(`trellis token: unexpected argument "${extra[0]}"\n\n${usage}`);
    return 2;
  }
  if (sub === 'create') {
    if (!arg || !values.role) {
      console.error(`trellis token create: NAME and --role are required\n\n${usage}`);
      return 2;
    }
    const r = await call('POST', '/api/v1/auth/tokens', {
      name: arg, role: values.role,
      ...(values.namespace ? { namespace: values.namespace } : {}),
      ...(values['service-account'] ? { serviceAccount: values['service-account'] } : {}),
      ...(values.ttl ? { ttl: values.ttl } : {}),
    });
    if (!r.ok) {
      console.error(`trellis token create: ${r.message}`);
      return 1;
    }
    if (values.output === 'json') console.log(JSON.stringify(r.body));
    else {
      console.log(r.body.token);
      console.error(`# token ${r.body.id} "${r.body.name}" (${r.body.role}) — shown once; use it with \`trellis login --server ${conn.server} --token TOKEN\``);
    }
    return 0;
  }
  if (sub === 'list') {
    const r = await call('GET', '/api/v1/auth/tokens');
    if (!r.ok) {
      console.error(`trellis token list: ${r.message}`);
      return 1;
    }
    const items = r.body.items ?? [];
    if (values.output === 'json') console.log(JSON.stringify(items, null, 2));
    else {
      console.log(renderTable(['ID', 'NAME', 'ROLE', 'IDENTITY', 'CREATED', 'EXPIRES'], items.map((t) => [
        t.id, t.name, t.role, t.namespace ? `${t.namespace}/${t.serviceAccount}` : '-', t.createdAt, t.expiresAt ?? 'never',
      ])));
    }
    return 0;
  }
  if (sub === 'revoke') {
    if (!arg) {
      console.error(`trellis token revoke: ID is required (see \`trellis token list\`)\n\n${usage}`);
      return 2;
    }
    const r = await call('DELETE', `/api/v1/auth/tokens/${encodeURIComponent(arg)}`);
    if (!r.ok) {
      console.error(`trellis token revoke: ${r.message}`);
      return 1;
    }
    const gone = r.body.revoked;
    console.log(gone ? `revoked ${gone.id} "${gone.name}" (${gone.role})` : `revoked ${arg}`);
    return 0;
  }
  console.error(`trellis token: say create, list or revoke\n\n${usage}`);
  return 2;
}
