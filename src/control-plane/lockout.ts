// Who a security policy is about to lock out, said before (or as) it is
// applied: the control plane adds these to POST /api/v1/apply's results
// (`warnings`, dry runs too), which `trellis apply` prints.
//
//   MeshTLS STRICT         workloads it selects that have no mesh identity
//                          (their sidecar cannot accept mTLS: unreachable),
//                          and callers without an identity that were seen
//                          calling the selected workloads (refused from now)
//   AuthorizationPolicy    callers seen calling the selected workloads that
//   (ALLOW)                no rule's `from` admits: by SPIFFE principal,
//                          namespace or service account, which need an mTLS
//                          identity; rules on IPs, JWTs or conditions are
//                          assumed to admit (not evaluated here)
//
// "Seen calling" is the control plane's edges over the last 15 minutes
// (server side, so unmeshed callers show as `unknown`). lockoutWarnings is
// pure; applyWarnings reads the mesh state (declared and registered
// workloads, services) and the edges once per apply.
import type { Resource } from '../api/types.ts';
import type { EdgeRow } from './telemetry/golden.ts';
import type { MeshState, WorkloadInstance } from './translate/model.ts';

export const MESH_ROOT_NAMESPACE = 'trellis-system';
const TLS_MODE_LABEL = 'trellis.dev/tls-mode';
const MESHED_LABEL = 'trellis.dev/meshed';

interface WorkloadSpecLike { serviceAccount?: string; ports?: { proxyPort?: number }[] }
interface SourceLike { principals?: string[]; namespaces?: string[]; serviceAccounts?: string[]; notPrincipals?: string[]; notNamespaces?: string[]; notServiceAccounts?: string[]; ipBlocks?: string[]; requestPrincipals?: string[] }
interface AuthzSpecLike { selector?: Record<string, string>; targetRef?: { kind?: string; name: string }; action?: string; rules?: { from?: { source: SourceLike }[]; when?: unknown[] }[] }

const id = (r: Resource): string => `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;

/** A sidecar fronts it (MeshTLS applies to sidecars only). */
function isMeshed(w: Resource): boolean {
  return w.metadata.labels?.[MESHED_LABEL] === 'true' || ((w.spec as WorkloadSpecLike).ports ?? []).some((p) => p.proxyPort !== undefined);
}

/** A sidecar fronts it and it proved an identity (`trellis run` with a join token). */
export function hasMeshIdentity(w: Resource): boolean {
  return isMeshed(w) && w.metadata.labels?.[TLS_MODE_LABEL] !== 'none';
}

function selected(policy: Resource, workloads: readonly Resource[], services: readonly Resource[]): Resource[] {
  const ns = policy.metadata.namespace ?? 'default';
  const spec = policy.spec as AuthzSpecLike;
  let selector = spec.selector;
  if (spec.targetRef && (spec.targetRef.kind ?? 'Service') === 'Service') {
    const svc = services.find((s) => (s.metadata.namespace ?? 'default') === ns && s.metadata.name === spec.targetRef!.name);
    selector = (svc?.spec as { selector?: Record<string, string> } | undefined)?.selector ?? { '\u0000none': '' };
  }
  const entries = Object.entries(selector ?? {});
  return workloads.filter((w) => (ns === MESH_ROOT_NAMESPACE || (w.metadata.namespace ?? 'default') === ns) && entries.every(([k, v]) => w.metadata.labels?.[k] === v));
}

function list(names: string[], max = 8): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

/** Callers seen calling any of `targets`: `namespace/workload` (or `unknown`) with their rate. */
function callersOf(targets: readonly Resource[], edges: readonly EdgeRow[]): Map<string, number> {
  const ids = new Set(targets.map(id));
  const out = new Map<string, number>();
  for (const e of edges) {
    if (!ids.has(`${e.destination.namespace}/${e.destination.workload}`)) continue;
    const k = e.source.workload === 'unknown' ? 'unknown' : `${e.source.namespace}/${e.source.workload}`;
    out.set(k, (out.get(k) ?? 0) + e.rps);
  }
  return out;
}

function admits(src: SourceLike, caller: Resource | undefined, callerNs: string, policyNs: string): boolean {
  if (src.ipBlocks?.length || src.requestPrincipals?.length) return true; // not evaluated: assume it may admit
  const identity = caller !== undefined && hasMeshIdentity(caller);
  const needsIdentity = Boolean(src.principals?.length || src.namespaces?.length || src.serviceAccounts?.length || src.notPrincipals?.length || src.notNamespaces?.length || src.notServiceAccounts?.length);
  if (!needsIdentity) return true;
  if (!identity) return false;
  const sa = (caller!.spec as WorkloadSpecLike).serviceAccount ?? 'default';
  const principalOk = (ps: string[]): boolean => ps.some((p) => p === '*' || p.endsWith(`/ns/${callerNs}/sa/${sa}`) || p === `${callerNs}/sa/${sa}`);
  const saOk = (xs: string[]): boolean => xs.some((x) => x === `${callerNs}/${sa}` || (!x.includes('/') && callerNs === policyNs && x === sa));
  if (src.principals?.length && !principalOk(src.principals)) return false;
  if (src.namespaces?.length && !src.namespaces.includes(callerNs) && !src.namespaces.includes('*')) return false;
  if (src.serviceAccounts?.length && !saOk(src.serviceAccounts)) return false;
  if (src.notPrincipals?.length && principalOk(src.notPrincipals)) return false;
  if (src.notNamespaces?.includes(callerNs)) return false;
  if (src.notServiceAccounts?.length && saOk(src.notServiceAccounts)) return false;
  return true;
}

export function lockoutWarnings(policy: Resource, ctx: { workloads: readonly Resource[]; services: readonly Resource[]; edges: readonly EdgeRow[] }): string[] {
  const byId = new Map(ctx.workloads.map((w) => [id(w), w]));
  const out: string[] = [];
  const rate = (n: number): string => `${n >= 10 ? n.toFixed(0) : n.toFixed(2)} rps`;
  if (policy.kind === 'MeshTLS') {
    const spec = policy.spec as { mode?: string; portLevel?: { mode: string }[] };
    if (spec.mode !== 'STRICT' && !(spec.portLevel ?? []).some((p) => p.mode === 'STRICT')) return [];
    const targets = selected(policy, ctx.workloads, ctx.services);
    const dark = targets.filter((w) => isMeshed(w) && !hasMeshIdentity(w)).map(id);
    if (dark.length > 0) out.push(`STRICT locks out ${dark.length} workload(s) that have no mesh identity, so their sidecars cannot accept mutual TLS and every call to them will fail: ${list(dark)}; restart them with a join token (TRELLIS_JOIN_TOKEN) first`);
    const refused = [...callersOf(targets, ctx.edges)].filter(([c]) => c === 'unknown' || !byId.has(c) || !hasMeshIdentity(byId.get(c)!));
    if (refused.length > 0) out.push(`STRICT refuses callers without a mesh identity that called these workloads in the last 15m: ${list(refused.map(([c, r]) => `${c === 'unknown' ? 'callers outside the mesh' : c} (${rate(r)})`))}`);
    return out;
  }
  if (policy.kind === 'AuthorizationPolicy') {
    const spec = policy.spec as AuthzSpecLike;
    if ((spec.action ?? 'ALLOW') !== 'ALLOW') return [];
    const targets = selected(policy, ctx.workloads, ctx.services);
    const policyNs = policy.metadata.namespace ?? 'default';
    const rules = spec.rules ?? [];
    const denied: string[] = [];
    for (const [caller, r] of callersOf(targets, ctx.edges)) {
      const w = caller === 'unknown' ? undefined : byId.get(caller);
      const callerNs = caller === 'unknown' ? '' : caller.split('/')[0]!;
      const ok = rules.some((rule) => !rule.from?.length || rule.from.some((f) => admits(f.source, w, callerNs, policyNs)));
      if (!ok) denied.push(`${caller === 'unknown' ? 'callers outside the mesh' : caller}${w && !hasMeshIdentity(w) ? ' (no mesh identity)' : ''} (${rate(r)})`);
    }
    if (denied.length > 0) out.push(`no rule admits these callers seen in the last 15m, which will be refused (403): ${list(denied)}`);
    return out;
  }
  return [];
}

/** A mesh-state workload in the shape lockoutWarnings reads. */
function workloadResource(w: WorkloadInstance): Resource {
  return {
    apiVersion: 'trellis.dev/v1alpha1', kind: 'Workload',
    metadata: { name: w.name, namespace: w.namespace, labels: { ...(w.labels ?? {}) } },
    spec: { address: w.address, ...(w.serviceAccount ? { serviceAccount: w.serviceAccount } : {}), ports: w.ports },
  } as Resource;
}

/** The warnings of each applied resource (same order); the mesh state and
 * the edges are read only when a MeshTLS or AuthorizationPolicy is among
 * them. Without edges (no telemetry yet) only the identity-less workloads
 * are named. */
export async function applyWarnings(applied: readonly Resource[], src: { state(): MeshState; edges(): Promise<EdgeRow[]> }): Promise<string[][]> {
  if (!applied.some((r) => r.kind === 'MeshTLS' || r.kind === 'AuthorizationPolicy')) return applied.map(() => []);
  const state = src.state();
  const edges = await src.edges().catch(() => []);
  const ctx = { workloads: state.workloads.map(workloadResource), services: state.services as unknown as Resource[], edges };
  return applied.map((r) => lockoutWarnings(r, ctx));
}
