// Output for get/describe: kubectl-style tables, ages, names, YAML and JSON.
import { stringify as toYaml } from 'yaml';
import type { KindDef } from '../api/kinds.ts';
import type { Resource } from '../api/types.ts';

/** `httproute.gateway.networking.k8s.io/reviews`, as kubectl names objects. */
export function qualifiedName(def: KindDef, name: string): string {
  return `${def.kind.toLowerCase()}.${def.group}/${name}`;
}

/** kubectl's ages: 45s, 12m, 5h, 3d, 2y (rounded down). */
export function formatAge(created: string | undefined, now = Date.now()): string {
  if (!created) return '<unknown>';
  const t = Date.parse(created);
  if (Number.isNaN(t)) return '<unknown>';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 730) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

/** Columns left-aligned, separated by three spaces, like kubectl. */
export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('   ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function resourceTable(def: KindDef, items: Resource[], opts: { wide?: boolean; allNamespaces?: boolean; now?: number } = {}): string {
  const cols = def.columns.filter((c) => opts.wide || !c.wide);
  const header = [...(opts.allNamespaces ? ['NAMESPACE'] : []), 'NAME', ...cols.map((c) => c.header), 'AGE'];
  const rows = items.map((r) => [
    ...(opts.allNamespaces ? [r.metadata.namespace ?? 'default'] : []),
    r.metadata.name,
    ...cols.map((c) => c.value(r)),
    formatAge(r.metadata.creationTimestamp, opts.now),
  ]);
  return renderTable(header, rows);
}

export function toYamlText(value: unknown): string {
  return toYaml(value, { sortMapEntries: false, lineWidth: 0 });
}
