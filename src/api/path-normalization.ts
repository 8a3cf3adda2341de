// PathNormalization (trellis.dev/v1alpha1): how proxies rewrite request paths
// before routing and authorization, Istio's MeshConfig.pathNormalization in
// resource form. Without any, the control plane applies the safe default:
//
//   normalize: true              percent-encoded unreserved characters decoded, `\` as `/`,
//                                `;` path parameters dropped, dot segments removed (RFC 3986)
//   mergeSlashes: true           `//a///b` -> `/a/b`
//   escapedSlashes: Reject       %2F / %5C in a path: 400. Keep (forwarded as is),
//                                UnescapeAndForward, UnescapeAndRedirect (307 to the result)
//
// Scope, as MeshTLS and Telemetry: without `selector`, the namespace (in the
// mesh root namespace `trellis-system`: the whole mesh); with it, the
// namespace's workloads whose labels match; the most specific wins, and a
// field it omits takes the safe default. Translated into the
// HttpConnectionManager of every inbound and gateway HTTP listener as
// `normalizePath`, `mergeSlashes` and `pathWithEscapedSlashesAction`
// (translate/path-normalization.ts; outbound listeners pass paths as the app
// wrote them). The rules are in docs/security.md.
import { Type, type Static } from '@sinclair/typebox';
import { Closed, StringEnum, StringMap } from './schema-common.ts';

export const ESCAPED_SLASHES_ACTIONS = ['Keep', 'Reject', 'UnescapeAndForward', 'UnescapeAndRedirect'] as const;

export const PathNormalizationSpec = Closed({
  /** Workload labels; absent or empty: every workload of the namespace. */
  selector: Type.Optional(StringMap()),
  normalize: Type.Optional(Type.Boolean()),
  mergeSlashes: Type.Optional(Type.Boolean()),
  escapedSlashes: Type.Optional(StringEnum(ESCAPED_SLASHES_ACTIONS)),
});
export type PathNormalizationSpec = Static<typeof PathNormalizationSpec>;

export const DEFAULT_PATH_NORMALIZATION_SPEC: Required<Omit<PathNormalizationSpec, 'selector'>> = { normalize: true, mergeSlashes: true, escapedSlashes: 'Reject' };
