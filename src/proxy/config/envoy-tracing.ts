// HttpConnectionManager.tracing -> TracingSpec, read strictly: the
// OpenTelemetry tracer (`envoy.tracers.opentelemetry`,
// envoy.config.trace.v3.OpenTelemetryConfig) exporting over OTLP/HTTP to
// `httpService.httpUri.uri` (`cluster` is accepted and not used: the proxy's
// exporter dials the URI itself), `serviceName`, and `randomSampling` (a
// percentage, Envoy's default 100). The control plane writes it from
// Telemetry resources (translate/telemetry.ts); docs/telemetry.md.
import type { TracingSpec } from './types.ts';
import type { FieldReader } from './field-reader.ts';
import { anyType } from './envoy-common.ts';
import { isHttpUrl } from '../../lib/http-url.ts';

export const OTEL_TRACER_NAME = 'envoy.tracers.opentelemetry';
export const OTEL_CONFIG_TYPE = 'envoy.config.trace.v3.OpenTelemetryConfig';

export function readHcmTracing(r: FieldReader): TracingSpec | undefined {
  let samplingRate = 1;
  const sampling = r.obj('randomSampling');
  if (sampling) {
    const v = sampling.raw('value');
    if (v !== undefined && (typeof v !== 'number' || !(v >= 0 && v <= 100))) sampling.error('value', `must be a percentage from 0 to 100 (got ${JSON.stringify(v)})`);
    else if (typeof v === 'number') samplingRate = v / 100;
    sampling.done();
  }
  r.ignore('clientSampling', 'overallSampling', 'verbose', 'maxPathTagLength', 'customTags', 'spawnUpstreamSpan');
  const provider = r.obj('provider', { required: true });
  r.done();
  if (!provider) return undefined;
  const name = provider.str('name', { required: true });
  const tc = provider.obj('typedConfig', { required: true });
  provider.done();
  if (name !== undefined && name !== OTEL_TRACER_NAME) {
    provider.error('name', `tracer "${name}" is not supported (Trellis exports OpenTelemetry: ${OTEL_TRACER_NAME})`);
    return undefined;
  }
  if (!tc) return undefined;
  const type = anyType(tc);
  if (type !== undefined && type !== OTEL_CONFIG_TYPE) {
    tc.error('@type', `must be ${OTEL_CONFIG_TYPE}`);
    return undefined;
  }
  if (tc.has('grpcService')) tc.error('grpcService', 'OTLP over gRPC is not supported: use httpService (OTLP/HTTP, port 4318)');
  const serviceName = tc.str('serviceName', { nonEmpty: true });
  const http = tc.obj('httpService', { required: !tc.has('grpcService') });
  tc.ignore('resourceDetectors', 'sampler', 'maxCacheSize');
  tc.done();
  if (!http) return undefined;
  const uri = http.obj('httpUri', { required: true });
  http.ignore('requestHeadersToAdd');
  http.done();
  if (!uri) return undefined;
  const url = uri.str('uri', { required: true });
  uri.ignore('cluster', 'timeout');
  uri.done();
  if (url === undefined) return undefined;
  if (!isHttpUrl(url)) {
    uri.error('uri', `must be an http(s) URL (got ${JSON.stringify(url)})`);
    return undefined;
  }
  return serviceName === undefined ? { collectorUrl: url, samplingRate } : { collectorUrl: url, samplingRate, serviceName };
}
