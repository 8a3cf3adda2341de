// Telemetry resources (src/api/telemetry.ts) -> HttpConnectionManager.tracing
// and .accessLog on every HTTP listener of the proxies they select: Envoy's
// OpenTelemetry tracer exporting over OTLP/HTTP to the collector,
// `randomSampling` the percentage of new traces; the stdout access logger.
// The proxy reads them back in src/proxy/config/envoy-tracing.ts and
// envoy-access-log.ts. Resolution as MeshTLS, per section: the most specific
// Telemetry that has it (selector > namespace > mesh root `trellis-system`;
// by name among equals); `disabled` there means none.
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
type Section = 'tracing' | 'accessLogging';

/** The `section` in force for `node`: the most specific Telemetry that has
 * one (selector > namespace > mesh root; by name among equals), or none
 * when it says `disabled`. */
function resolve<S extends Section>(state: MeshState, node: ProxyNode, section: S): NonNullable<TelemetrySpec[S]> | undefined {
  const all = state.telemetry;
  if (!all || all.length === 0 || node.kind === 'proxyless' || node.kind === 'node-proxy') return undefined;
  const labels = nodeWorkload(state, node)?.labels;
  const having = all.filter((t) => t.spec[section] !== undefined).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const hasSelector = (t: TelemetryResource): boolean => Object.keys(t.spec.selector ?? {}).length > 0;
  const inNs = having.filter((t) => nsOf(t.metadata) === node.namespace);
  const tiers = [
    labels ? inNs.filter((t) => hasSelector(t) && Object.entries(t.spec.selector!).every(([k, v]) => labels[k] === v)) : [],
    inNs.filter((t) => !hasSelector(t)),
    having.filter((t) => nsOf(t.metadata) === MESH_ROOT_NAMESPACE && !hasSelector(t)),
  ];
  for (const tier of tiers) {
    const v = tier[0]?.spec[section];
    if (v) return v.disabled === true ? undefined : (v as NonNullable<TelemetrySpec[S]>);
  }
  return undefined;
}

/** The tracing section in force for `node`, or undefined. */
export function tracingFor(state: MeshState, node: ProxyNode): Tracing | undefined {
  return resolve(state, node, 'tracing');
}

/** Whether `node` logs every request. */
export function accessLoggingFor(state: MeshState, node: ProxyNode): boolean {
  return resolve(state, node, 'accessLogging') !== undefined;
}

/** Envoy's HttpConnectionManager.accessLog: JSON lines on stdout. */
export const STDOUT_ACCESS_LOG: readonly object[] = [
  { name: 'envoy.access_loggers.stdout', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog' } },
];

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

function withFields(chain: ChainShape, fields: object): ChainShape {
  const f = chain.filters[0];
  if (!f || f.name !== HCM_NAME || !f.typedConfig) return chain;
  return { ...chain, filters: [{ ...f, typedConfig: { ...f.typedConfig, ...fields } }, ...chain.filters.slice(1)] };
}

/** translateParts() output with tracing and access logging on this proxy's HTTP listeners. */
export function applyTelemetry(parts: TranslationParts, state: MeshState, node: ProxyNode): TranslationParts {
  const t = tracingFor(state, node);
  const fields = { ...(t ? { tracing: hcmTracing(t) } : {}), ...(accessLoggingFor(state, node) ? { accessLog: STDOUT_ACCESS_LOG } : {}) };
  if (Object.keys(fields).length === 0) return parts;
  const listeners = (parts.own.listeners as ListenerShape[]).map((l) => ({
    ...l,
    ...(l.filterChains ? { filterChains: l.filterChains.map((c) => withFields(c, fields)) } : {}),
    ...(l.defaultFilterChain ? { defaultFilterChain: withFields(l.defaultFilterChain, fields) } : {}),
  }));
  return { ...parts, own: { ...parts.own, listeners } };
}
