// `trellis identity` (alias `trellis check`): the mesh CA and what each proxy
// holds: its SPIFFE ID, certificate expiry and renewal time, and whether its
// trust bundle matches the CA's. Proxies are read through their admin
// listener (`GET /identity`); the control plane lists who is connected.
//
//   trellis identity [--api URL] [--admin HOST:PORT ...] [-o json]
//   trellis identity token [create] --namespace NS --service-account SA --workload W [--ttl 1h] [--uses N]
//   trellis identity token list | revoke ID
//   trellis identity rotate stage|activate|intermediate|retire [FINGERPRINT] [--force]
//   trellis identity renew [--admin HOST:PORT ...]
import { resolveConnection, type Connection } from '../contexts.ts';
import { apiFetch } from '../api-fetch.ts';
import { parseArgs } from '../command-args.ts';

export const summary = 'mesh CA, workload identities and trust bundles; mint join tokens; rotate roots (alias: check)';

const usage = `usage:
  trellis identity [--api URL] [--admin HOST:PORT ...] [-o json]
      CA status, connected proxies, and per proxy (--admin, default every connected proxy
      that advertises its admin address): SPIFFE ID, expiry, trust bundle in sync
  trellis identity token [create] --namespace NS [--service-account SA] --workload W [--ttl 1h] [--uses 10]
      mint a join token for an identity (printed once, stored hashed; 1 h and 10
      certificates by default; it pins the mesh CA: tjt_<secret>.<CA key hash>)
  trellis identity token list             every join token: id, identity, uses, expiry
  trellis identity token revoke ID        revoke one (its id from the list)
  trellis identity rotate stage|activate|intermediate|retire [FINGERPRINT] [--force]
      root rotation with overlap: stage (new root joins the bundle), activate
      (issue under it; proxies renew onto it within TRELLIS_IDENTITY_ROLLOVER_WINDOW),
      retire FINGERPRINT (drop the old root: refused while a live workload's
      certificate still chains to it, unless --force), or a new intermediate
  trellis identity renew [--admin HOST:PORT ...]
      every connected proxy (or those named) renews its certificate now, through the
      control plane (it holds their admin tokens)

  --server URL   control plane API (--api is an alias; default TRELLIS_SERVER, TRELLIS_API,
                 the current context, else http://127.0.0.1:15080)
  --context NAME a context from the CLI config (trellis login)`;

interface CaStatusBody {
  trustDomain: string;
  bundle: { roots: { fingerprint: string; state: string; notAfter: string }[] };
  intermediate: { fingerprint: string; notAfter: string; rootFingerprint: string };
  operatorSupplied: boolean;
  /** Each workload's last unexpired certificate (GET /ca only). */
  holders?: { namespace: string; workload: string; rootFingerprint: string; notAfter: string; live: boolean }[];
}

interface ProxyIdentity {
  spiffeId: string | null;
  expiresAt: string | null;
  renewAt: string | null;
  rotations: number;
  lastError: string | null;
  root?: string | null;
  trustBundle: { fingerprint: string }[];
}

/** `conn`: an API call with its credentials; without, a plain fetch (a proxy's admin). */
async function call(url: string, init?: RequestInit, conn?: Connection): Promise<{ ok: true; body: unknown } | { ok: false; message: string }> {
  try {
    const opts = { ...init, signal: AbortSignal.timeout(5000) };
    const res = conn ? await apiFetch(conn, url, opts) : await fetch(url, opts);
    const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
    if (!res.ok) return { ok: false, message: `${url}: HTTP ${res.status}${body.error?.message ? `: ${body.error.message}` : ''}` };
    return { ok: true, body };
  } catch (err) {
    return { ok: false, message: `${url}: ${(err as Error).message}` };
  }
}

const short = (fp: string) => fp.replace(/:/g, '').slice(0, 16);
const until = (iso: string | null, now: number) => {
  if (!iso) return '-';
  const s = Math.round((Date.parse(iso) - now) / 1000);
  if (s < 0) return `EXPIRED ${-s}s ago`;
  return s >= 7200 ? `${Math.round(s / 3600)}h` : s >= 120 ? `${Math.round(s / 60)}m` : `${s}s`;
};

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      api: { type: 'string' },
      server: { type: 'string' },
      context: { type: 'string' },
      admin: { type: 'string', multiple: true },
      output: { type: 'string', short: 'o' },
      namespace: { type: 'string', short: 'n' },
      'service-account': { type: 'string' },
      workload: { type: 'string' },
      ttl: { type: 'string' },
      force: { type: 'boolean' },
      uses: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const conn = resolveConnection({ server: values.server ?? values.api ?? (process.env['TRELLIS_SERVER'] ? undefined : process.env['TRELLIS_API']), context: values.context });
  const api = conn.server;
  const post = (path: string, body: unknown) => call(`${api}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }, conn);
  const [sub, arg] = positionals;

  if (sub === 'token' && arg === 'list') {
    const r = await call(`${api}/api/v1/identity/join-tokens`, undefined, conn);
    if (!r.ok) {
      console.error(`trellis identity token list: ${r.message}`);
      return 1;
    }
    const items = (r.body as { items: { id: string; namespace: string; serviceAccount: string; workload: string; uses?: number; maxUses?: number; expiresAt: string }[] }).items;
    if (values.output === 'json') console.log(JSON.stringify(items, null, 2));
    else {
      const now = Date.now();
      console.log(`${'ID'.padEnd(14)}${'IDENTITY'.padEnd(32)}${'WORKLOAD'.padEnd(20)}${'USES'.padEnd(8)}EXPIRES`);
      for (const t of items) {
        console.log(`${t.id.padEnd(14)}${`${t.namespace}/${t.serviceAccount}`.padEnd(32)}${t.workload.padEnd(20)}${`${t.uses ?? 0}/${t.maxUses ?? '∞'}`.padEnd(8)}${until(t.expiresAt, now)}`);
      }
    }
    return 0;
  }
  if (sub === 'token' && arg === 'revoke') {
    const id = positionals[2];
    if (!id) {
      console.error(`trellis identity token revoke: ID is required (see \`trellis identity token list\`)\n\n${usage}`);
      return 2;
    }
    const r = await call(`${api}/api/v1/identity/join-tokens/${encodeURIComponent(id)}`, { method: 'DELETE' }, conn);
    if (!r.ok) {
      console.error(`trellis identity token revoke: ${r.message}`);
      return 1;
    }
    console.log(`revoked join token ${id}`);
    return 0;
  }
  if (sub === 'token' && arg !== undefined && arg !== 'create') {
    console.error(`trellis identity token: say create, list or revoke (got "${arg}")\n\n${usage}`);
    return 2;
  }
  if (sub === 'token') {
    if (!values.namespace || !values.workload) {
      console.error(`trellis identity token: --namespace and --workload are required\n\n${usage}`);
      return 2;
    }
    const r = await post('/api/v1/identity/join-tokens', {
      namespace: values.namespace, serviceAccount: values['service-account'] ?? 'default', workload: values.workload, ...(values.ttl ? { ttl: values.ttl } : {}),
      ...(values.uses === undefined ? {} : { uses: Number(values.uses) }),
    });
    if (!r.ok) {
      console.error(`trellis identity token: ${r.message}`);
      return 1;
    }
    const b = r.body as { token: string; expiresAt: string };
    if (values.output === 'json') console.log(JSON.stringify(b));
    else {
      // The token alone on stdout, so `export TRELLIS_JOIN_TOKEN=$(trellis identity token ...)` works.
      console.log(b.token);
      console.error(`# expires ${b.expiresAt}; pass it to \`trellis proxy --join-token\`, or as TRELLIS_JOIN_TOKEN to \`trellis run\``);
    }
    return 0;
  }

  if (sub === 'rotate') {
    if (!arg || !['stage', 'activate', 'intermediate', 'retire'].includes(arg)) {
      console.error(`trellis identity rotate: say stage, activate, intermediate or retire\n\n${usage}`);
      return 2;
    }
    const r = await post('/api/v1/identity/ca/rotate', { step: arg, ...(positionals[2] ? { fingerprint: positionals[2] } : {}), ...(values.force ? { force: true } : {}) });
    if (!r.ok) {
      console.error(`trellis identity rotate ${arg}: ${r.message}`);
      return 1;
    }
    printCa(r.body as CaStatusBody);
    return 0;
  }
  if (sub !== undefined && sub !== 'renew') {
    console.error(`trellis identity: unknown subcommand "${sub}"\n\n${usage}`);
    return 2;
  }

  const proxies = await call(`${api}/api/v1/proxies`, undefined, conn);
  // Every connected proxy that advertises its admin address, unless named.
  const listed = proxies.ok ? (proxies.body as { proxies: { nodeId: string; admin?: string }[] }).proxies : [];
  const admins = values.admin ?? listed.flatMap((p) => (p.admin ? [p.admin] : [])).sort();
  const nodeOf = new Map(listed.flatMap((p) => (p.admin ? [[p.admin, p.nodeId] as const] : [])));

  if (sub === 'renew') {
    // Renewing changes a proxy's state, so its admin listener wants its admin
    // token: the control plane holds every connected proxy's and relays.
    const q = (values.admin ?? []).map((a) => `admin=${encodeURIComponent(a)}`).join('&');
    const relayed = await call(`${api}/api/v1/proxies/identity/renew${q ? `?${q}` : ''}`, { method: 'POST' });
    if (!relayed.ok) {
      console.error(`trellis identity renew: ${relayed.message}`);
      return 1;
    }
    const results = (relayed.body as { results: { nodeId: string; admin: string; ok: boolean; status?: number; error?: string; identity?: ProxyIdentity }[] }).results;
    let failed = 0;
    for (const r of results) {
      const who = `${r.nodeId.padEnd(28)}${r.admin.padEnd(22)}`;
      if (r.ok && r.identity) {
        const id = r.identity;
        console.log(`${who}renewed: ${id.spiffeId ?? '<none>'} until ${id.expiresAt ?? '-'} under root ${id.root ? short(id.root) : '?'}`);
      } else if (r.status === 404) console.log(`${who}no identity (started without a join token)`);
      else {
        failed++;
        console.log(`${who}FAILED: ${r.error ?? 'unknown error'}`);
      }
    }
    if (results.length === 0) console.log(values.admin ? 'none of the named admin addresses is a connected proxy' : 'no connected proxy advertises an admin address');
    return failed === 0 ? 0 : 1;
  }

  const ca = await call(`${api}/api/v1/identity/ca`, undefined, conn);
  const identities = await Promise.all(admins.map(async (a) => ({ admin: a, r: await call(`http://${a}/identity`) })));
  if (values.output === 'json') {
    console.log(JSON.stringify({
      ca: ca.ok ? ca.body : { error: ca.message },
      proxies: proxies.ok ? proxies.body : { error: proxies.message },
      identities: identities.map((i) => ({ admin: i.admin, ...(i.r.ok ? { identity: i.r.body } : { error: i.r.message }) })),
    }, null, 2));
    return ca.ok ? 0 : 1;
  }
  let problems = 0;
  let caRoots: Set<string> | undefined;
  const rootState = new Map<string, string>();
  if (ca.ok) {
    const c = ca.body as CaStatusBody;
    printCa(c);
    caRoots = new Set(c.bundle.roots.map((r) => r.fingerprint));
    for (const r of c.bundle.roots) rootState.set(r.fingerprint, r.state);
    // Who still depends on each root (what blocks `rotate retire`).
    console.log('certificates by root:');
    for (const r of c.bundle.roots) {
      const held = (c.holders ?? []).filter((h) => h.rootFingerprint === r.fingerprint);
      const names = held.map((h) => `${h.namespace}/${h.workload}${h.live ? '' : ' (gone: not connected, not registered)'}`);
      console.log(`  ${short(r.fingerprint)} ${r.state.padEnd(8)} ${held.length} workload(s)${names.length > 0 ? `: ${names.join(', ')}` : ''}`);
    }
  } else {
    console.log(`CA: unavailable (${ca.message})`);
    problems++;
  }
  if (proxies.ok) {
    const list = (proxies.body as { proxies: { nodeId: string; status: string }[] }).proxies;
    console.log(`\nconnected proxies: ${list.length}${list.length > 0 ? ` (${list.map((p) => `${p.nodeId}:${p.status}`).join(', ')})` : ''}`);
  }
  console.log(`\n${'PROXY'.padEnd(28)}${'ADMIN'.padEnd(22)}${'SPIFFE ID'.padEnd(48)}${'EXPIRES'.padEnd(10)}${'RENEW'.padEnd(8)}${'ROOT'.padEnd(28)}BUNDLE`);
  const now = Date.now();
  for (const { admin, r } of identities) {
    if (!r.ok) {
      // A proxy started without a join token has no identity (plaintext); not a fault.
      const none = /404/.test(r.message);
      console.log(`${(nodeOf.get(admin) ?? '-').padEnd(28)}${admin.padEnd(22)}${none ? 'no identity (started without a join token: plaintext)' : `unreachable: ${r.message}`}`);
      if (!none) problems++;
      continue;
    }
    const id = r.body as ProxyIdentity;
    const fps = id.trustBundle.map((b) => b.fingerprint);
    const inSync = caRoots === undefined ? '?' : fps.length === caRoots.size && fps.every((f) => caRoots!.has(f)) ? 'in sync' : 'STALE';
    if (inSync === 'STALE' || !id.spiffeId || (id.expiresAt && Date.parse(id.expiresAt) < now)) problems++;
    // The root its certificate chains to, in the CA's words (active, or previous: it still depends on a retiring root).
    const root = id.root ? `${short(id.root)} ${rootState.get(id.root) ?? 'unknown'}` : '?';
    // A certificate under a root the CA no longer has (retired with --force) fails every new peer.
    if (caRoots !== undefined && id.spiffeId && (!id.root || !caRoots.has(id.root))) problems++;
    console.log(`${(nodeOf.get(admin) ?? '-').padEnd(28)}${admin.padEnd(22)}${(id.spiffeId ?? '<none>').padEnd(48)}${until(id.expiresAt, now).padEnd(10)}${until(id.renewAt, now).padEnd(8)}${root.padEnd(28)}${inSync} [${fps.map(short).join(' ')}]${id.lastError ? `  last error: ${id.lastError}` : ''}`);
  }
  return problems === 0 ? 0 : 1;
}

function printCa(c: CaStatusBody): void {
  console.log(`trust domain: ${c.trustDomain}${c.operatorSupplied ? ' (operator-supplied CA)' : ''}`);
  console.log('trust bundle:');
  for (const r of c.bundle.roots) console.log(`  ${r.fingerprint}  ${r.state.padEnd(8)}  expires ${r.notAfter}`);
  console.log(`intermediate: ${short(c.intermediate.fingerprint)} under ${short(c.intermediate.rootFingerprint)}, expires ${c.intermediate.notAfter}`);
}
