// Sidecar (trellis.dev/v1alpha1): the services a workload's proxy calls, in
// the spirit of Istio's Sidecar egress. A proxy in scope receives routes,
// clusters and endpoints for those services only (plus the declared
// ExternalServices), so its config grows with what it calls, not with the
// mesh (docs/xds.md).
//
//   spec.selector           workload labels; absent: every workload of the namespace
//   spec.egress[].hosts[]   "namespace/service": namespace is a name, "." (the
//                           Sidecar's own) or "*" (any); service is a name or "*"
//
// Scope, as Telemetry and MeshTLS: the most specific Sidecar wins (selector >
// namespace > mesh root `trellis-system`); among equals, the first by name.
// A workload no Sidecar covers gets the whole mesh, or discovers hosts on
// demand when its proxy asks for that (docs/xds.md).
import { Type, type Static } from '@sinclair/typebox';
import { Closed, StringMap } from './schema-common.ts';

export const SidecarSpec = Closed({
  /** Workload labels; absent or empty: every workload of the namespace. */
  selector: Type.Optional(StringMap()),
  egress: Type.Array(
    Closed({
      hosts: Type.Array(Type.String({ minLength: 1, maxLength: 320 }), { minItems: 1, maxItems: 10_000 }),
    }),
    { minItems: 1, maxItems: 64 },
  ),
});
export type SidecarSpec = Static<typeof SidecarSpec>;

const NS = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?|\.|\*)$/;
const NAME = /^([a-z]([-a-z0-9]*[a-z0-9])?|\*)$/;

/** "ns/name" -> parts, or undefined when malformed. */
export function parseEgressHost(host: string): { namespace: string; name: string } | undefined {
  const slash = host.indexOf('/');
  if (slash < 0 || host.indexOf('/', slash + 1) >= 0) return undefined;
  const namespace = host.slice(0, slash);
  const name = host.slice(slash + 1);
  return NS.test(namespace) && NAME.test(name) ? { namespace, name } : undefined;
}

/** Field errors the schema cannot state. */
export function checkSidecar(spec: SidecarSpec, report: (path: (string | number)[], message: string) => void): void {
  spec.egress.forEach((e, i) => {
    e.hosts.forEach((h, j) => {
      if (parseEgressHost(h) === undefined) {
        report(['spec', 'egress', i, 'hosts', j], `must be "namespace/service" where namespace is a name, "." or "*" and service a name or "*" (got ${JSON.stringify(h)})`);
      }
    });
  });
}
