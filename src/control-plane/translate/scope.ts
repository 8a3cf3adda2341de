// Config scoping by declared dependencies: the Sidecar resource in force for
// a sidecar proxy (the most specific: selector > namespace > mesh root; by
// name among equals, as Telemetry and MeshTLS) and whether a service is in
// its egress. translate.ts builds a scoped shared part per Sidecar, so every
// proxy under one Sidecar shares one encoded snapshot part.
import type { MeshState, ProxyNode, SidecarResource } from './model.ts';
import { nsOf } from './model.ts';
import { nodeWorkload } from './services.ts';
import { scopeTiers } from './mtls.ts';
import { parseEgressHost } from '../../api/sidecar.ts';

/** The Sidecar in force for `node`, or undefined (the whole mesh / on demand). */
export function sidecarFor(state: MeshState, node: ProxyNode): SidecarResource | undefined {
  const all = state.sidecars;
  if (!all || all.length === 0 || node.kind !== 'sidecar') return undefined;
  for (const tier of scopeTiers(all, node.namespace, nodeWorkload(state, node)?.labels)) if (tier[0]) return tier[0];
  return undefined;
}

/** A predicate: is service `namespace/name` in the Sidecar's egress? */
export function egressFilter(sidecar: SidecarResource): (namespace: string, name: string) => boolean {
  const own = nsOf(sidecar.metadata);
  const hosts = sidecar.spec.egress.flatMap((e) => e.hosts.map(parseEgressHost)).filter((h) => h !== undefined);
  return (namespace, name) => hosts.some((h) => (h.namespace === '*' || (h.namespace === '.' ? own : h.namespace) === namespace) && (h.name === '*' || h.name === name));
}
