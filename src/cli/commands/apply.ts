// trellis apply -f FILE|DIR|- [--dry-run]: create or update resources, like kubectl apply.
// The control plane's warnings are printed, e.g. the workloads a MeshTLS or
// AuthorizationPolicy locks out (control-plane/lockout.ts).
import { COMMON_OPTIONS, parseOrExit } from '../command-args.ts';
import { createClient, formatApiError, connection, type ApplyResponse } from '../client.ts';
import { loadManifests } from '../manifests.ts';
import { qualifiedName } from '../output.ts';
import { kindDef } from '../../api/kinds.ts';
import { isPlainObject } from '../../api/schema-check.ts';

export const summary = 'Create or update resources from YAML/JSON files (-f FILE|DIR|-), like kubectl apply';

const USAGE = `usage: trellis apply -f FILE|DIR|- [-f ...] [--dry-run] [-n NAMESPACE] [--server URL]

  -f, --filename   a manifest file, a directory of *.yaml|*.yml|*.json, or - for stdin
      --dry-run    validate on the server and print a unified diff of what would change
  -n, --namespace  namespace for resources that do not name one
      --server     control plane URL (default $TRELLIS_SERVER or http://127.0.0.1:15080)`;

export async function run(argv: string[]): Promise<number> {
  const args = parseOrExit('apply', argv, {
    ...COMMON_OPTIONS,
    filename: { type: 'string', short: 'f', multiple: true },
    'dry-run': { type: 'boolean' },
  }, USAGE);
  if (typeof args === 'number') return args;
  const { values, positionals } = args;
  const files = values.filename ?? [];
  if (files.length === 0 || positionals.length > 0) {
    console.error(`error: must specify one or more -f (unexpected ${positionals.length > 0 ? `argument "${positionals[0]}"` : 'usage'})\n\n${USAGE}`);
    return 2;
  }
  const loaded = loadManifests(files);
  if (!loaded.ok) {
    for (const e of loaded.errors) console.error(e);
    return 1;
  }
  const ns = values.namespace;
  const objects: unknown[] = [];
  for (const m of loaded.manifests) {
    const obj = structuredClone(m.value) as Record<string, unknown>;
    if (ns !== undefined && isPlainObject(obj.metadata)) {
      const own = obj.metadata.namespace;
      if (typeof own === 'string' && own !== ns) {
        console.error(`${m.source}: ${m.resource.kind} ${own}/${m.resource.metadata.name}: the namespace from the object ("${own}") does not match -n "${ns}"`);
        return 1;
      }
      obj.metadata.namespace = ns;
    }
    objects.push(obj);
  }
  const dryRun = values['dry-run'] ?? false;
  const conn = connection({ server: values.server, context: values.context });
  const client = createClient(conn);
  const r = await client.apply(objects, { dryRun });
  const body = r.ok ? r.body : (r.body as { results?: unknown } | undefined);
  const results = Array.isArray(body?.results) ? (body.results as ApplyResponse['results']) : [];
  let failed = !r.ok;
  for (const item of results) {
    const def = kindDef(item.kind);
    const label = def ? qualifiedName(def, item.name) : `${item.kind}/${item.name}`;
    if (item.ok) {
      if (dryRun && item.diff) process.stdout.write(item.diff);
      console.log(`${label} ${item.action}${dryRun ? ' (dry run)' : ''}`);
      for (const w of [...(item.resource.status?.warnings ?? []), ...(item.warnings ?? [])]) console.error(`Warning: ${label}: ${w}`);
    } else {
      failed = true;
      if (item.error.code === 'invalid' && item.error.fields) for (const f of item.error.fields) console.error(`Error from server (Invalid): ${f.text ?? `${f.path}: ${f.message}`}`);
      else console.error(formatApiError(item.error, r.status || 500));
    }
  }
  if (!r.ok && results.length === 0) console.error(formatApiError(r.error, r.status));
  return failed ? 1 : 0;
}
