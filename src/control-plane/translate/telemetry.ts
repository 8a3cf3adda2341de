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
import type { MeshState, ProxyNode } from './model.ts';
import { scopeTiers } from './mtls.ts';
import { nodeWorkload } from './services.ts';
import type { TranslationParts } from './translate.ts';
import { withHcmConfig } from './filters.ts';

export const OTEL_TRACER = 'envoy.tracers.opentelemetry';
export const OTEL_CONFIG_TYPE = 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig';

type Tracing = NonNullable<TelemetrySpec['tracing']>;
type Section = 'tracing' | 'accessLogging';

/** The `section` in force for `node`: the most specific Telemetry that has
 * one (selector > namespace > mesh root; by name among equals), or none
 * when it says `disabled`. */
function resolve<S extends Section>(state: MeshState, node: ProxyNode, section: S): NonNullable<TelemetrySpec[S]> | undefined {
  const all = state.telemetry;
  if (!all || all.length === 0 || node.kind === 'proxyless' || node.kind === 'node-proxy') return undefined;
  const having = all.filter((t) => t.spec[section] !== undefined);
  const tiers = scopeTiers(having, node.namespace, nodeWorkload(state, node)?.labels);
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

interface ChainShape {
  filters: { name: string; typedConfig?: object }[];
}
interface ListenerShape {
  filterChains?: ChainShape[];
  defaultFilterChain?: ChainShape;
}

/** translateParts() output with tracing and access logging on this proxy's HTTP listeners. */
export function applyTelemetry(parts: TranslationParts, state: MeshState, node: ProxyNode): TranslationParts {
  const t = tracingFor(state, node);
  const fields = { ...(t ? { tracing: hcmTracing(t) } : {}), ...(accessLoggingFor(state, node) ? { accessLog: STDOUT_ACCESS_LOG } : {}) };
  if (Object.keys(fields).length === 0) return parts;
  const add = (c: ChainShape): ChainShape => withHcmConfig(c, (tc) => ({ ...tc, ...fields }));
  const listeners = (parts.own.listeners as ListenerShape[]).map((l) => ({
    ...l,
    ...(l.filterChains ? { filterChains: l.filterChains.map(add) } : {}),
    ...(l.defaultFilterChain ? { defaultFilterChain: add(l.defaultFilterChain) } : {}),
  }));
  return { ...parts, own: { ...parts.own, listeners } };
}
