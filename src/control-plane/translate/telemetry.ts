// Telemetry resources (src/api/telemetry.ts) -> HttpConnectionManager.tracing
// on every HTTP listener of the proxies they select: Envoy's OpenTelemetry
// tracer exporting over OTLP/HTTP to the collector, `randomSampling` the
// percentage of new traces. The proxy reads it back in
// src/proxy/config/envoy-tracing.ts. Resolution as MeshTLS: the most specific
// Telemetry with a `tracing` section (selector > namespace > mesh root
// `trellis-system`; by name among equals); `disabled` there means none.
// Sidecars resolve against their workload's labels; gateways against theirs
// when registered, else the namespace's and the mesh's; proxyless clients and
// node proxies get nothing (the node proxy serves many workloads).
import { DEFAULT_SAMPLING_PERCENTAGE, type TelemetrySpec } from '../../api/telemetry.ts';
import { MESH_ROOT_NAMESPACE } from '../../api/mesh-tls.ts';
import type { MeshState, ProxyNode, TelemetryResource } from './model.ts';
import { nsOf } from './model.ts';
import { nodeWorkload } from './services.ts';
import type { TranslationParts } from './translate.ts';

export const OTEL_TRACER = 'envoy.tracers.opentelemetry';
export const OTEL_CONFIG_TYPE = 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig';
const HCM_NAME = 'envoy.filters.network.http_connection_manager';

type Tracing = NonNullable<TelemetrySpec['tracing']>;

/** The tracing section in force for `node`, or undefined. */
export function tracingFor(state: MeshState, node: ProxyNode): Tracing | undefined {
  const all = state.telemetry;
  if (!all || all.length === 0 || node.kind === 'proxyless' || node.kind === 'node-proxy') return undefined;
  const labels = nodeWorkload(state, node)?.labels;
  const withTracing = all.filter((t) => t.spec.tracing !== undefined).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const hasSelector = (t: TelemetryResource): boolean => Object.keys(t.spec.selector ?? {}).length > 0;
  const inNs = withTracing.filter((t) => nsOf(t.metadata) === node.namespace);
  const tiers = [
    labels ? inNs.filter((t) => hasSelector(t) && Object.entries(t.spec.selector!).every(([k, v]) => labels[k] === v)) : [],
    inNs.filter((t) => !hasSelector(t)),
    withTracing.filter((t) => nsOf(t.metadata) === MESH_ROOT_NAMESPACE && !hasSelector(t)),
  ];
  for (const tier of tiers) {
    const t = tier[0]?.spec.tracing;
    if (t) return t.disabled === true ? undefined : t;
  }
  return undefined;
}

/** Envoy's HttpConnectionManager.tracing for a Telemetry's tracing section. */
export function hcmTracing(t: Tracing): object {
  return {
    randomSampling: { value: t.samplingPercentage ?? DEFAULT_SAMPLING_PERCENTAGE },
    provider: {
      name: OTEL_TRACER,
      typedConfig: { '@type': OTEL_CONFIG_TYPE, httpService: { httpUri: { uri: t.collector, cluster: 'otel-collector', timeout: '1s' } } },
    },
  };
}

interface ListenerShape {
  filterChains?: ChainShape[];
  defaultFilterChain?: ChainShape;
}
interface ChainShape {
  filters: { name: string; typedConfig?: object }[];
}

function withTracing(chain: ChainShape, tracing: object): ChainShape {
  const f = chain.filters[0];
  if (!f || f.name !== HCM_NAME || !f.typedConfig) return chain;
  return { ...chain, filters: [{ ...f, typedConfig: { ...f.typedConfig, tracing } }, ...chain.filters.slice(1)] };
}

/** translateParts() output with tracing on this proxy's HTTP listeners. */
export function applyTelemetry(parts: TranslationParts, state: MeshState, node: ProxyNode): TranslationParts {
  const t = tracingFor(state, node);
  if (!t) return parts;
  const tracing = hcmTracing(t);
  const listeners = (parts.own.listeners as ListenerShape[]).map((l) => ({
    ...l,
    ...(l.filterChains ? { filterChains: l.filterChains.map((c) => withTracing(c, tracing)) } : {}),
    ...(l.defaultFilterChain ? { defaultFilterChain: withTracing(l.defaultFilterChain, tracing) } : {}),
  }));
  return { ...parts, own: { ...parts.own, listeners } };
}
