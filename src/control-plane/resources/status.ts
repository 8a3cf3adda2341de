// Status is computed, not stored: a route whose backendRef or parentRef names
// a Service or Gateway that does not exist gets Gateway API conditions saying
// so (ResolvedRefs=False/BackendNotFound, Accepted=False/NoMatchingParent)
// plus a readable warning. Because it is computed on read, it clears the
// moment the referenced object is applied.
import { kindDef } from '../../api/kinds.ts';
import type { Condition, Resource, ResourceStatus } from '../../api/types.ts';

/** Which Services and Gateways exist: a set of `Kind/ns/name`. */
export type RefIndex = ReadonlySet<string>;

export function refId(kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

export function computeStatus(res: Resource, existing: RefIndex): ResourceStatus | undefined {
  const def = kindDef(res.kind);
  if (!def?.references) return undefined;
  const refs = def.references(res);
  const gen = res.metadata.generation;
  const cond = (type: string, ok: boolean, reason: string, message: string): Condition => ({
    type, status: ok ? 'True' : 'False', reason, message, ...(gen === undefined ? {} : { observedGeneration: gen }),
  });
  const missingParents = refs.filter((r) => r.role === 'parentRef' && !existing.has(refId(r.kind, r.namespace, r.name)));
  const missingBackends = refs.filter((r) => r.role === 'backendRef' && !existing.has(refId(r.kind, r.namespace, r.name)));
  const warnings = [
    ...missingParents.map((r) => `${r.path}: parent ${r.kind} ${r.namespace}/${r.name} not found`),
    ...missingBackends.map((r) => `${r.path}: backend ${r.kind} ${r.namespace}/${r.name} not found`),
  ];
  const names = (rs: typeof refs) => [...new Set(rs.map((r) => `${r.namespace}/${r.name}`))].join(', ');
  const conditions = [
    missingParents.length === 0
      ? cond('Accepted', true, 'Accepted', 'Route is accepted')
      : cond('Accepted', false, 'NoMatchingParent', `parent ${missingParents[0]?.kind ?? 'Service'} not found: ${names(missingParents)}`),
    missingBackends.length === 0
      ? cond('ResolvedRefs', true, 'ResolvedRefs', 'All references resolved')
      : cond('ResolvedRefs', false, 'BackendNotFound', `backend Service not found: ${names(missingBackends)}`),
  ];
  return warnings.length > 0 ? { conditions, warnings } : { conditions };
}

/** Does `res` reference the object `kind ns/name` (so its status depends on it)? */
export function references(res: Resource, kind: string, namespace: string, name: string): boolean {
  const def = kindDef(res.kind);
  return (def?.references?.(res) ?? []).some((r) => r.kind === kind && r.namespace === namespace && r.name === name);
}
