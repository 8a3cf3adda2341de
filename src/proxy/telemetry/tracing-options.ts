// Tracing settings and their checks, apart from tracing.ts so that reading
// and validating them (the proxy command, telemetry.ts) does not load the
// OpenTelemetry SDK: that is imported only when tracing is on
// (telemetry.ts, loadTracer).
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { isHttpUrl } from '../../lib/http-url.ts';

export interface TracingOptions {
  /** OTLP/HTTP traces endpoint, e.g. `http://collector:4318/v1/traces`. */
  readonly collectorUrl: string;
  /** Resource `service.name` (the proxy's workload). */
  readonly serviceName: string;
  readonly namespace?: string;
  /** Probability of sampling a new trace, 0..1. Default 0.01 (as Istio). */
  readonly samplingRate?: number;
  /** Batch export delay. Default 5000 ms. */
  readonly exportDelayMs?: number;
  /** Spans queued for export before new ones are dropped. Default 2048. */
  readonly maxQueueSize?: number;
  /** Tests: replace the OTLP exporter. */
  readonly exporter?: SpanExporter;
}

/** Field errors; `serviceName` is checked only when given. */
export function checkTracingOptions(o: Omit<TracingOptions, 'serviceName'> & { serviceName?: string }): string[] {
  const errors: string[] = [];
  if (!URL.canParse(o.collectorUrl)) errors.push(`tracing.collectorUrl: "${o.collectorUrl}" is not a URL`);
  else if (!isHttpUrl(o.collectorUrl)) errors.push('tracing.collectorUrl: must be an http(s) URL');
  if (o.samplingRate !== undefined && !(o.samplingRate >= 0 && o.samplingRate <= 1)) errors.push('tracing.samplingRate: must be between 0 and 1');
  if (o.serviceName !== undefined && o.serviceName === '') errors.push('tracing.serviceName: must not be empty');
  return errors;
}
