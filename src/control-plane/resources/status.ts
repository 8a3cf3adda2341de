// Status is computed, not stored: a route whose backendRef or parentRef names
// a Service or Gateway that does not exist gets Gateway API conditions saying
// so (ResolvedRefs=False/BackendNotFound, Accepted=False/NoMatchingParent),
// a policy (KindDef role 'policy') whose targetRef names nothing gets
// Accepted=False/TargetNotFound, and never a route's words,
// each with a readable warning. Because it is computed on read, it clears the
// moment the referenced object is applied.
import { kindDef, type ObjectRef } from '../../api/kinds.ts';
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
  const missing = (role: ObjectRef['role']) => refs.filter((r) => r.role === role && !existing.has(refId(r.kind, r.namespace, r.name)));
  const missingParents = missing('parentRef');
  const missingBackends = missing('backendRef');
  const missingTargets = missing('targetRef');
  const warnings = [
    ...missingTargets.map((r) => `${r.path}: target ${r.kind} ${r.namespace}/${r.name} not found`),
    ...missingParents.map((r) => `${r.path}: parent ${r.kind} ${r.namespace}/${r.name} not found`),
    ...missingBackends.map((r) => `${r.path}: backend ${r.kind} ${r.namespace}/${r.name} not found`),
  ];
  const names = (rs: ObjectRef[]) => [...new Set(rs.map((r) => `${r.kind} ${r.namespace}/${r.name}`))].join(', ');
  const conditions: Condition[] = [];
  if (def.role === 'policy') {
    // A policy (Gateway API policy attachment): Accepted, or TargetNotFound.
    // One scoped by selector or namespace has no target to miss.
    conditions.push(missingTargets.length === 0
      ? cond('Accepted', true, 'Accepted', refs.some((r) => r.role === 'targetRef') ? 'Policy is accepted' : 'Policy is accepted (scoped by selector or namespace, no targetRef)')
      : cond('Accepted', false, 'TargetNotFound', `target not found: ${names(missingTargets)}`));
  } else {
    conditions.push(missingParents.length === 0
      ? cond('Accepted', true, 'Accepted', 'Route is accepted')
      : cond('Accepted', false, 'NoMatchingParent', `parent not found: ${names(missingParents)}`));
    conditions.push(missingBackends.length === 0
      ? cond('ResolvedRefs', true, 'ResolvedRefs', 'All references resolved')
      : cond('ResolvedRefs', false, 'BackendNotFound', `backend not found: ${names(missingBackends)}`));
  }
  return warnings.length > 0 ? { conditions, warnings } : { conditions };
}

/** Does `res` reference the object `kind ns/name` (so its status depends on it)? */
export function references(res: Resource, kind: string, namespace: string, name: string): boolean {
  const def = kindDef(res.kind);
  return (def?.references?.(res) ?? []).some((r) => r.kind === kind && r.namespace === namespace && r.name === name);
}
