// Telemetry (trellis.dev/v1alpha1): tracing and access logging for
// workloads' proxies, in the spirit of Istio's Telemetry API.
//
//   spec.tracing.collector           OTLP/HTTP traces endpoint, e.g. http://otel-collector.observability:4318/v1/traces
//   spec.tracing.samplingPercentage  new traces sampled, 0..100 (default 1); a caller's decision is kept
//   spec.tracing.disabled            no spans from these proxies (overrides a wider Telemetry)
//   spec.accessLogging: {}           every request logged by these proxies, JSON lines on their stdout
//   spec.accessLogging.disabled      none (overrides a wider Telemetry; the admin switch still works)
//
// Scope, as MeshTLS: without `selector`, the namespace (in the mesh root
// namespace `trellis-system`: the whole mesh); with it, the namespace's
// workloads whose labels match. The most specific one with the section in
// question wins (selector > namespace > mesh; tracing and access logging
// are resolved apart); among equals, the first by name. The control plane
// writes it into every HTTP listener of the proxies concerned as Envoy's
// HttpConnectionManager.tracing and .accessLog (translate/telemetry.ts).
import { Type, type Static } from '@sinclair/typebox';
import { Closed, StringMap } from './schema-common.ts';
import { isHttpUrl } from '../lib/http-url.ts';

export const TelemetrySpec = Closed({
  /** Workload labels; absent or empty: every workload of the namespace. */
  selector: Type.Optional(StringMap()),
  tracing: Type.Optional(Closed({
    collector: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
    samplingPercentage: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    disabled: Type.Optional(Type.Boolean()),
  })),
  accessLogging: Type.Optional(Closed({
    disabled: Type.Optional(Type.Boolean()),
  })),
});
export type TelemetrySpec = Static<typeof TelemetrySpec>;

export const DEFAULT_SAMPLING_PERCENTAGE = 1;

/** Field errors `check` reports (the schema cannot say them). */
export function checkTelemetry(spec: TelemetrySpec, report: (path: (string | number)[], message: string) => void): void {
  const t = spec.tracing;
  if (!t) return;
  if (t.disabled === true) {
    if (t.collector !== undefined) report(['spec', 'tracing', 'collector'], 'must be absent when tracing is disabled');
    return;
  }
  if (t.collector === undefined) {
    report(['spec', 'tracing', 'collector'], 'is required (an OTLP/HTTP endpoint such as http://otel-collector:4318/v1/traces), unless disabled');
    return;
  }
  if (!isHttpUrl(t.collector)) report(['spec', 'tracing', 'collector'], `must be an http(s) URL (got "${t.collector}")`);
}
