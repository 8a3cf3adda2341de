// trellis delete KIND NAME [NAME...] [-n NS] | trellis delete -f FILE|DIR|-
import { COMMON_OPTIONS, parseOrExit } from '../command-args.ts';
import { createClient, formatApiError, connection } from '../client.ts';
import { loadManifests } from '../manifests.ts';
import { KINDS, resolveKind } from '../../api/kinds.ts';

export const summary = 'Delete resources by kind and name, or those described in files (-f), like kubectl delete';

const USAGE = `usage: trellis delete KIND NAME [NAME...] [-n NAMESPACE] [--ignore-not-found] [--server URL]
       trellis delete -f FILE|DIR|- [--ignore-not-found]`;

export async function run(argv: string[]): Promise<number> {
  const args = parseOrExit('delete', argv, {
    ...COMMON_OPTIONS,
    filename: { type: 'string', short: 'f', multiple: true },
    'ignore-not-found': { type: 'boolean' },
    'dry-run': { type: 'boolean' },
  }, USAGE);
  if (typeof args === 'number') return args;
  const { values, positionals } = args;
  const targets: { kind: string; plural: string; namespace: string; name: string }[] = [];
  if (values.filename && values.filename.length > 0) {
    if (positionals.length > 0) {
      console.error(`error: give either -f or KIND NAME, not both\n\n${USAGE}`);
      return 2;
    }
    const loaded = loadManifests(values.filename);
    if (!loaded.ok) {
      for (const e of loaded.errors) console.error(e);
      return 1;
    }
    for (const m of loaded.manifests) {
      const def = resolveKind(m.resource.kind);
      if (def) targets.push({ kind: def.kind, plural: def.plural, namespace: values.namespace ?? m.resource.metadata.namespace ?? 'default', name: m.resource.metadata.name });
    }
  } else {
    const [kindArg, ...names] = positionals;
    if (kindArg === undefined || names.length === 0) {
      console.error(`error: you must specify a kind and at least one name, or -f\n\n${USAGE}`);
      return 2;
    }
    const def = resolveKind(kindArg);
    if (!def) {
      console.error(`error: the server doesn't have a resource type "${kindArg}" (known: ${KINDS.map((k) => k.plural).join(', ')})`);
      return 1;
    }
    for (const name of names) targets.push({ kind: def.kind, plural: def.plural, namespace: values.namespace ?? 'default', name });
  }
  const client = createClient(connection({ server: values.server, context: values.context }));
  const dryRun = values['dry-run'] ?? false;
  let failed = false;
  for (const t of targets) {
    const def = resolveKind(t.kind);
    const r = await client.delete(t.kind, t.namespace, t.name, { dryRun });
    if (r.ok) console.log(`${t.kind.toLowerCase()}.${def?.group ?? ''} "${t.name}" deleted${dryRun ? ' (dry run)' : ''}`);
    else if (r.error.code === 'not_found' && values['ignore-not-found']) continue;
    else {
      console.error(formatApiError(r.error, r.status));
      failed = true;
      if (r.status === 0) break;
    }
  }
  return failed ? 1 : 0;
}
