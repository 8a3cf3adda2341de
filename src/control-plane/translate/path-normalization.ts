// PathNormalization resources (src/api/path-normalization.ts) -> the
// HttpConnectionManager's `normalizePath`, `mergeSlashes` and
// `pathWithEscapedSlashesAction` on every inbound HTTP listener of a sidecar
// or node proxy and every listener of a gateway (where routing and policy
// decide on the path), always written (the safe default when no resource
// applies), so what a proxy does never depends on its own defaults.
// Outbound listeners get everything off: an app's own calls leave as it
// wrote them (an external API may need `%2F` in a path), and the
// destination's sidecar normalizes what it authorizes. The proxy
// reads them in src/proxy/config/envoy-listener.ts. Resolution as MeshTLS:
// the most specific resource (selector > namespace > mesh root; by name among
// equals), each omitted field taking the safe default. Proxyless gRPC clients
// get nothing: they do not route on paths the way a proxy does.
import { DEFAULT_PATH_NORMALIZATION_SPEC, type PathNormalizationSpec } from '../../api/path-normalization.ts';
import type { MeshState, ProxyNode } from './model.ts';
import { scopeTiers } from './mtls.ts';
import { nodeWorkload } from './services.ts';
import type { TranslationParts } from './translate.ts';
import { withHcmConfig } from './filters.ts';

const ENVOY_ACTION: Record<NonNullable<PathNormalizationSpec['escapedSlashes']>, string> = {
  Keep: 'KEEP_UNCHANGED',
  Reject: 'REJECT_REQUEST',
  UnescapeAndForward: 'UNESCAPE_AND_FORWARD',
  UnescapeAndRedirect: 'UNESCAPE_AND_REDIRECT',
};

/** The settings in force for `node`. */
export function pathNormalizationFor(state: MeshState, node: ProxyNode): Required<Omit<PathNormalizationSpec, 'selector'>> {
  const all = state.pathNormalization ?? [];
  const labels = node.kind === 'node-proxy' ? undefined : nodeWorkload(state, node)?.labels;
  const chosen = scopeTiers(all, node.namespace, labels).find((tier) => tier.length > 0)?.[0];
  return { ...DEFAULT_PATH_NORMALIZATION_SPEC, ...(chosen ? withoutSelector(chosen.spec) : {}) };
}

function withoutSelector(spec: PathNormalizationSpec): Omit<PathNormalizationSpec, 'selector'> {
  const { selector: _, ...rest } = spec;
  return rest;
}

/** The HttpConnectionManager fields for these settings. */
export function hcmPathFields(p: Required<Omit<PathNormalizationSpec, 'selector'>>): Record<string, unknown> {
  return { normalizePath: p.normalize, mergeSlashes: p.mergeSlashes, pathWithEscapedSlashesAction: ENVOY_ACTION[p.escapedSlashes] };
}

interface ChainShape {
  filters: { name: string; typedConfig?: object }[];
}
interface ListenerShape {
  trafficDirection?: string;
  filterChains?: ChainShape[];
  defaultFilterChain?: ChainShape;
}

/** What outbound listeners carry: the request as the app wrote it. */
export const OUTBOUND_PATH_FIELDS: Readonly<Record<string, unknown>> = hcmPathFields({ normalize: false, mergeSlashes: false, escapedSlashes: 'Keep' });

/** translateParts() output with path normalization on this proxy's HTTP listeners. */
export function applyPathNormalization(parts: TranslationParts, state: MeshState, node: ProxyNode): TranslationParts {
  if (node.kind === 'proxyless') return parts;
  const fields = hcmPathFields(pathNormalizationFor(state, node));
  const gateway = node.kind === 'gateway';
  const listeners = (parts.own.listeners as ListenerShape[]).map((l) => {
    const f = gateway || l.trafficDirection === 'INBOUND' ? fields : OUTBOUND_PATH_FIELDS;
    const add = (c: ChainShape): ChainShape => withHcmConfig(c, (tc) => ({ ...tc, ...f }));
    return {
      ...l,
      ...(l.filterChains ? { filterChains: l.filterChains.map(add) } : {}),
      ...(l.defaultFilterChain ? { defaultFilterChain: add(l.defaultFilterChain) } : {}),
    };
  });
  return { ...parts, own: { ...parts.own, listeners } };
}
