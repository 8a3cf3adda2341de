// MeshTLS (trellis.dev/v1alpha1): the peer authentication mode of workloads,
// Istio's PeerAuthentication in Trellis form.
//
//   mode STRICT      inbound accepts mTLS only (plaintext connections are closed)
//   mode PERMISSIVE  inbound accepts mTLS and plaintext (the default)
//   mode DISABLE     inbound accepts plaintext only; callers do not originate mTLS
//
// Scope: a policy without `selector` applies to its namespace (in the mesh
// root namespace `trellis-system`: to the whole mesh); with `selector`, to
// the namespace's workloads whose labels match. The most specific policy
// wins (selector > namespace > mesh), and `portLevel` overrides the mode for
// single workload ports. A policy that omits `mode` inherits it.
import { Type, type Static } from '@sinclair/typebox';
import { Closed, StringEnum, StringMap, PortNumber } from './schema-common.ts';

export const MESH_ROOT_NAMESPACE = 'trellis-system';
export const TLS_MODES = ['STRICT', 'PERMISSIVE', 'DISABLE'] as const;
export type TlsMode = (typeof TLS_MODES)[number];

export const MeshTLSSpec = Closed({
  /** Workload labels; absent or empty: every workload of the namespace. */
  selector: Type.Optional(StringMap()),
  mode: Type.Optional(StringEnum(TLS_MODES)),
  /** Per workload port (the app's port, not the sidecar's). */
  portLevel: Type.Optional(Type.Array(Closed({ port: PortNumber, mode: StringEnum(TLS_MODES) }), { maxItems: 64 })),
});
export type MeshTLSSpec = Static<typeof MeshTLSSpec>;
