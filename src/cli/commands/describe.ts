// trellis describe KIND NAME [-n NS]: metadata, a summary of the spec in the
// kind's own words (describe-kinds.ts), the spec itself, status conditions
// and warnings (dangling references); for a Service, its endpoints (declared
// and registered workloads it selects).
import { COMMON_OPTIONS, parseOrExit } from '../command-args.ts';
import { createClient, formatApiError, connection } from '../client.ts';
import { formatAge, renderTable, toYamlText } from '../output.ts';
import { KINDS, resolveKind } from '../../api/kinds.ts';
import type { Resource } from '../../api/types.ts';
import { describeSpec } from '../describe-kinds.ts';
import { matchesSelectorMap } from '../../api/label-selector.ts';
import { listWorkloads, REGISTERED_AT } from '../workloads.ts';

export const summary = 'Show one resource in detail: spec summary, status conditions and warnings';

const USAGE = 'usage: trellis describe KIND NAME [-n NAMESPACE] [--server URL]';

function mapText(m: Record<string, string> | undefined): string[] {
  const entries = Object.entries(m ?? {});
  return entries.length === 0 ? ['<none>'] : entries.map(([k, v]) => `${k}=${v}`);
}

interface PortLike { port: number; name?: string; targetPort?: number | string; proxyPort?: number }

/** A Service's endpoints: the workloads its selector picks, one row each
 * with the workload port every service port reaches (and the sidecar port
 * callers dial, for `trellis run` workloads). */
export function endpointRows(service: Resource, workloads: readonly Resource[]): string[][] {
  const ports = ((service.spec as { ports?: PortLike[] }).ports ?? []);
  return workloads.map((w) => {
    const spec = w.spec as { address?: string; ports?: PortLike[] };
    const wports = spec.ports ?? [];
    const mapped = ports.map((sp) => {
      const t = sp.targetPort ?? sp.port;
      const wp = typeof t === 'number' ? wports.find((p) => p.port === t) ?? { port: t } : wports.find((p) => p.name === t);
      if (!wp) return `${sp.port}->?(no port "${String(t)}")`;
      return `${sp.port}->${wp.port}${wp.proxyPort ? ` (sidecar ${wp.proxyPort})` : ''}`;
    });
    const registered = w.metadata.annotations?.[REGISTERED_AT] !== undefined;
    return [w.metadata.name, spec.address ?? '?', mapped.join(', ') || '-', w.metadata.labels?.['version'] ?? '-', registered ? 'registered' : 'declared'];
  });
}

export function describeResource(res: Resource, now = Date.now(), endpoints?: readonly Resource[]): string {
  const m = res.metadata;
  const out: string[] = [];
  const field = (label: string, values: string[]) => {
    values.forEach((v, i) => out.push(`${(i === 0 ? `${label}:` : '').padEnd(18)}${v}`));
  };
  field('Name', [m.name]);
  field('Namespace', [m.namespace ?? 'default']);
  field('Kind', [`${res.kind} (${res.apiVersion})`]);
  field('Labels', mapText(m.labels));
  field('Annotations', mapText(m.annotations));
  field('Created', [m.creationTimestamp ? `${m.creationTimestamp} (${formatAge(m.creationTimestamp, now)} ago)` : '<unknown>']);
  field('Generation', [String(m.generation ?? '<unknown>')]);
  field('Resource Version', [m.resourceVersion ?? '<unknown>']);
  for (const [label, lines] of describeSpec(res)) {
    out.push(`${label}:`);
    for (const l of lines) out.push(`  ${l}`);
  }
  out.push('Spec:');
  for (const line of toYamlText(res.spec).trimEnd().split('\n')) out.push(`  ${line}`);
  if (endpoints !== undefined) {
    out.push('Endpoints:');
    if (endpoints.length === 0) out.push(`  <none>: no workload has the labels ${mapText((res.spec as { selector?: Record<string, string> }).selector).join(',')}`);
    else for (const line of renderTable(['Workload', 'Address', 'Ports', 'Version', 'Source'], endpointRows(res, endpoints)).split('\n')) out.push(`  ${line}`);
  }
  const conditions = res.status?.conditions ?? [];
  out.push('Conditions:');
  if (conditions.length === 0) out.push('  <none>');
  else {
    const table = renderTable(['Type', 'Status', 'Reason', 'Message'], conditions.map((c) => [c.type, c.status, c.reason, c.message]));
    for (const line of table.split('\n')) out.push(`  ${line}`);
  }
  const warnings = res.status?.warnings ?? [];
  out.push('Warnings:');
  if (warnings.length === 0) out.push('  <none>');
  for (const w of warnings) out.push(`  ${w}`);
  return out.join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const args = parseOrExit('describe', argv, COMMON_OPTIONS, USAGE);
  if (typeof args === 'number') return args;
  const { values, positionals } = args;
  const [kindArg, name, ...extra] = positionals;
  if (kindArg === undefined || name === undefined || extra.length > 0) {
    console.error(`error: you must specify a kind and one name\n\n${USAGE}`);
    return 2;
  }
  const def = resolveKind(kindArg);
  if (!def) {
    console.error(`error: the server doesn't have a resource type "${kindArg}" (known: ${KINDS.map((k) => k.plural).join(', ')})`);
    return 1;
  }
  const client = createClient(connection({ server: values.server, context: values.context }));
  const r = await client.get(def.kind, values.namespace ?? 'default', name);
  if (!r.ok) {
    console.error(formatApiError(r.error, r.status));
    return 1;
  }
  let endpoints: Resource[] | undefined;
  if (def.kind === 'Service') {
    const ws = await listWorkloads(client, { namespace: values.namespace ?? 'default' });
    const selector = (r.body.spec as { selector?: Record<string, string> }).selector;
    if (ws.ok) endpoints = ws.items.filter((w) => matchesSelectorMap(selector, w.metadata.labels));
  }
  console.log(describeResource(r.body, Date.now(), endpoints));
  return 0;
}
