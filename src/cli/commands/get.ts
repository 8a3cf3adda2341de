// trellis get KIND [NAME] [-n NS|-A] [-l SELECTOR] [-o yaml|json|wide|name]
// (workloads: the declared ones and those `trellis run` registered, workloads.ts)
import { COMMON_OPTIONS, parseOrExit } from '../command-args.ts';
import { createClient, formatApiError, connection } from '../client.ts';
import { qualifiedName, resourceTable, toYamlText } from '../output.ts';
import { KINDS, resolveKind } from '../../api/kinds.ts';
import type { Resource } from '../../api/types.ts';
import { parseLabelSelector } from '../../api/label-selector.ts';
import { listWorkloads } from '../workloads.ts';

export const summary = 'List resources as a table, or print them as YAML/JSON, like kubectl get';

const USAGE = `usage: trellis get KIND [NAME] [-n NAMESPACE | -A] [-l SELECTOR] [-o yaml|json|wide|name] [--server URL]

  kinds: ${KINDS.map((k) => `${k.plural} (${k.shortNames.filter((s) => s !== k.kind.toLowerCase()).join(', ')})`).join(', ')}
  -A, --all-namespaces   list across all namespaces
  -l, --selector         label selector, e.g. app=reviews,version!=v1,tier in (web,api)
  -o, --output           yaml | json | wide | name`;

const OUTPUTS = new Set(['yaml', 'json', 'wide', 'name']);

export async function run(argv: string[]): Promise<number> {
  const args = parseOrExit('get', argv, {
    ...COMMON_OPTIONS,
    'all-namespaces': { type: 'boolean', short: 'A' },
    selector: { type: 'string', short: 'l' },
    output: { type: 'string', short: 'o' },
  }, USAGE);
  if (typeof args === 'number') return args;
  const { values, positionals } = args;
  const [kindArg, name, ...extra] = positionals;
  if (kindArg === undefined || extra.length > 0) {
    console.error(`error: ${kindArg === undefined ? 'you must specify the type of resource to get' : `unexpected argument "${extra[0]}"`}\n\n${USAGE}`);
    return 2;
  }
  const def = resolveKind(kindArg);
  if (!def) {
    console.error(`error: the server doesn't have a resource type "${kindArg}" (known: ${KINDS.map((k) => k.plural).join(', ')})`);
    return 1;
  }
  const output = values.output;
  if (output !== undefined && !OUTPUTS.has(output)) {
    console.error(`error: unable to match a printer for output format "${output}": allowed formats are yaml, json, wide, name`);
    return 2;
  }
  const all = values['all-namespaces'] ?? false;
  if (all && name !== undefined) {
    console.error('error: a resource cannot be retrieved by name across all namespaces');
    return 2;
  }
  const namespace = values.namespace ?? 'default';
  const client = createClient(connection({ server: values.server, context: values.context }));

  let items: Resource[];
  if (def.kind === 'Workload') {
    // Declared and registered (`trellis run`) workloads alike (workloads.ts).
    const sel = parseLabelSelector(values.selector ?? '');
    if (!sel.ok) {
      console.error(`error: ${sel.error}`);
      return 2;
    }
    const r = await listWorkloads(client, { namespace: all ? undefined : namespace, selector: sel.selector, ...(values.selector ? { labelSelector: values.selector } : {}) });
    if (!r.ok) {
      console.error(r.message);
      return 1;
    }
    items = name === undefined ? r.items : r.items.filter((w) => w.metadata.name === name);
    if (name !== undefined && items.length === 0) {
      console.error(`Error from server (NotFound): Workload ${namespace}/${name} not found`);
      return 1;
    }
  } else if (name !== undefined) {
    const r = await client.get(def.kind, namespace, name);
    if (!r.ok) {
      console.error(formatApiError(r.error, r.status));
      return 1;
    }
    items = [r.body];
  } else {
    const r = await client.list(def.kind, { ...(all ? {} : { namespace }), ...(values.selector ? { labelSelector: values.selector } : {}) });
    if (!r.ok) {
      console.error(formatApiError(r.error, r.status));
      return 1;
    }
    items = r.body.items;
  }

  if (output === 'yaml' || output === 'json') {
    const doc = name !== undefined ? items[0] : { apiVersion: 'v1', kind: 'List', items };
    process.stdout.write(output === 'json' ? `${JSON.stringify(doc, null, 2)}\n` : toYamlText(doc));
    return 0;
  }
  if (output === 'name') {
    for (const r of items) console.log(qualifiedName(def, r.metadata.name));
    return 0;
  }
  if (items.length === 0) {
    console.error(all ? 'No resources found' : `No resources found in ${namespace} namespace.`);
    return 0;
  }
  console.log(resourceTable(def, items, { wide: output === 'wide', allNamespaces: all }));
  return 0;
}
