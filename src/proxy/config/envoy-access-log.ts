// HttpConnectionManager.accessLog -> whether the listener logs every
// request, read strictly. Trellis writes its own JSON lines (access-log.ts)
// to the proxy's access log sink, stdout by default: the logger accepted is
// `envoy.access_loggers.stdout` (envoy.extensions.access_loggers.stream.v3.StdoutAccessLog);
// its `logFormat` and an entry's `filter` are accepted with a warning and
// not applied. Other loggers (file, gRPC, ...) are ignored with a warning,
// as unknown HTTP filters are: a config written for Envoy still loads. The control plane writes it from Telemetry resources
// (translate/telemetry.ts); docs/telemetry.md.
import type { FieldReader } from './field-reader.ts';
import { anyType } from './envoy-common.ts';

export const STDOUT_LOGGER_NAME = 'envoy.access_loggers.stdout';
export const STDOUT_LOGGER_TYPE = 'envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';

/** True when the list names the stdout logger; undefined for an empty list. */
export function readHcmAccessLog(items: readonly FieldReader[]): true | undefined {
  let on: true | undefined;
  for (const r of items) {
    const name = r.str('name', { required: true });
    const tc = r.obj('typedConfig');
    if (r.has('filter')) r.warn('filter', 'access log filters are not applied (every request is logged)');
    r.ignore('filter');
    r.done();
    const type = tc ? anyType(tc) : undefined;
    if (type !== undefined && type !== STDOUT_LOGGER_TYPE) {
      // Another logger: its fields are not read (nor reported unknown: no done()).
      tc!.warn('@type', `access logger ${type} is ignored (Trellis logs JSON lines to stdout: ${STDOUT_LOGGER_TYPE})`);
      continue;
    }
    if (tc) {
      if (tc.has('logFormat')) tc.warn('logFormat', 'Trellis writes its own JSON format');
      tc.ignore('logFormat');
      tc.done();
    }
    if (type === undefined && name !== undefined && name !== STDOUT_LOGGER_NAME) r.warn('name', `access logger "${name}" is ignored (Trellis logs JSON lines to stdout: ${STDOUT_LOGGER_NAME})`);
    else on = true;
  }
  return on;
}
