// Status written back on the Gateway API routes that come from Kubernetes,
// as Gateway API implementations do it: one entry per parentRef under
// Trellis's controllerName, with Accepted and ResolvedRefs conditions
// (observedGeneration = the route's generation). Accepted=False with reason
// UnsupportedValue when Trellis refuses the route, the message naming the
// field at fault; otherwise the conditions the resource API computes for it
// (resources/status.ts: NoMatchingParent, BackendNotFound), the message
// naming the field of each missing reference. Entries of other controllers
// are kept; a condition whose status did not change keeps its
// lastTransitionTime; an unchanged status is not written (each write comes
// back as a watch event). Pure except `writeRouteStatus`.
import type { Resource } from '../../api/types.ts';
import { computeStatus, type RefIndex } from '../resources/status.ts';
import { canonicalJson } from '../resources/service.ts';
import type { KubeClient, KubeObject } from './client.ts';
import { KubeApiError } from './client.ts';
import type { Mapped } from './mapping.ts';

export const CONTROLLER_NAME = 'trellis.dev/mesh';

export interface RouteCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export interface RouteParentStatus {
  parentRef: Record<string, unknown>;
  controllerName: string;
  conditions: RouteCondition[];
}

export interface KubeRoute extends KubeObject {
  spec?: { parentRefs?: Record<string, unknown>[] };
  status?: { parents?: RouteParentStatus[] };
}

/** Our entries for `route` (of `kind`), given how it mapped and which Services/Gateways exist. */
export function routeParentStatuses(route: KubeRoute, kind: string, mapped: Mapped<Resource>, refs: RefIndex, now: string): RouteParentStatus[] {
  const gen = route.metadata.generation;
  const cond = (type: string, ok: boolean, reason: string, message: string): RouteCondition => ({
    type, status: ok ? 'True' : 'False', reason, message, ...(gen === undefined ? {} : { observedGeneration: gen }), lastTransitionTime: now,
  });
  // References are read from the spec as it is, so a refused route still says which ones resolve.
  const asResource: Resource = mapped.ok ? mapped.value : {
    apiVersion: route.apiVersion ?? '', kind, metadata: { name: route.metadata.name, namespace: route.metadata.namespace ?? 'default' }, spec: route.spec ?? {},
  };
  const status = computeStatus(asResource, refs);
  const warnings = status?.warnings ?? [];
  const about = (word: string) => warnings.filter((w) => w.includes(`: ${word} `)).join('; ');
  const conditions = (status?.conditions ?? []).map((c) => {
    if (c.type === 'Accepted' && !mapped.ok) return cond('Accepted', false, 'UnsupportedValue', `not accepted by Trellis: ${mapped.reason}`);
    const detail = c.status === 'False' ? about(c.type === 'Accepted' ? 'parent' : 'backend') : '';
    return cond(c.type, c.status === 'True', c.reason, detail || c.message);
  });
  const parents = route.spec?.parentRefs ?? [];
  return parents.map((parentRef) => ({ parentRef, controllerName: CONTROLLER_NAME, conditions }));
}

// Key order differs once the API server has stored an object (it sorts): compare canonically.
const same = (a: unknown, b: unknown): boolean => canonicalJson(a) === canonicalJson(b);

/** The route's status.parents with ours replaced, or undefined when nothing changes. */
export function mergeParentStatuses(current: readonly RouteParentStatus[] | undefined, ours: RouteParentStatus[]): RouteParentStatus[] | undefined {
  const prev = (current ?? []).filter((p) => p.controllerName === CONTROLLER_NAME);
  const next = ours.map((p) => {
    const old = prev.find((q) => same(q.parentRef, p.parentRef));
    return {
      ...p,
      conditions: p.conditions.map((c) => {
        const o = old?.conditions.find((x) => x.type === c.type);
        return o && o.status === c.status ? { ...c, lastTransitionTime: o.lastTransitionTime } : c;
      }),
    };
  });
  if (same(prev, next)) return undefined;
  return [...(current ?? []).filter((p) => p.controllerName !== CONTROLLER_NAME), ...next];
}

/** PUT the status subresource; a conflict (the route changed meanwhile) is left to the next event. */
export async function writeRouteStatus(client: KubeClient, collectionPath: string, type: { apiVersion: string; kind: string }, route: KubeRoute, parents: RouteParentStatus[]): Promise<'written' | 'conflict' | 'gone'> {
  const ns = route.metadata.namespace ?? 'default';
  const [base, plural] = [collectionPath.slice(0, collectionPath.lastIndexOf('/')), collectionPath.slice(collectionPath.lastIndexOf('/') + 1)];
  try {
    await client.request('PUT', `${base}/namespaces/${encodeURIComponent(ns)}/${plural}/${encodeURIComponent(route.metadata.name)}/status`, { ...route, ...type, status: { ...(route.status ?? {}), parents } });
    return 'written';
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 409) return 'conflict';
    if (err instanceof KubeApiError && err.status === 404) return 'gone';
    throw err;
  }
}
