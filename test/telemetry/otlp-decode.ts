// Decodes OTLP/HTTP protobuf trace exports (ExportTraceServiceRequest) with
// protobufjs and the subset of opentelemetry-proto's trace.proto / common.proto
// the tests read (field numbers as in opentelemetry-proto v1).
import protobuf from 'protobufjs';

const PROTO = `
syntax = "proto3";
package otlp;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message InstrumentationScope { string name = 1; string version = 2; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4;
  string name = 5; int32 kind = 6; fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9; Status status = 15; fixed32 flags = 16;
}
message Status { string message = 2; int32 code = 3; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue { oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; bytes bytes_value = 7; } }
`;

const root = protobuf.parse(PROTO, { keepCase: true }).root;
const Request = root.lookupType('otlp.ExportTraceServiceRequest');

export const SPAN_KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3 } as const;

export interface DecodedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  readonly statusCode: number;
  readonly attributes: Record<string, string | number | boolean>;
}

interface RawKV {
  key: string;
  value?: { string_value?: string; bool_value?: boolean; int_value?: number | { toNumber(): number }; double_value?: number };
}

function attrs(kvs: RawKV[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of kvs ?? []) {
    const v = kv.value ?? {};
    if (v.string_value !== undefined) out[kv.key] = v.string_value;
    else if (v.bool_value !== undefined) out[kv.key] = v.bool_value;
    else if (v.int_value !== undefined) out[kv.key] = typeof v.int_value === 'number' ? v.int_value : v.int_value.toNumber();
    else if (v.double_value !== undefined) out[kv.key] = v.double_value;
  }
  return out;
}

const hex = (b: Uint8Array | undefined): string => Buffer.from(b ?? []).toString('hex');

export function decodeTraceExport(body: Uint8Array): DecodedSpan[] {
  const msg = Request.toObject(Request.decode(body), { defaults: false, longs: Number }) as {
    resource_spans?: { resource?: { attributes?: RawKV[] }; scope_spans?: { spans?: { trace_id: Uint8Array; span_id: Uint8Array; parent_span_id?: Uint8Array; name: string; kind?: number; attributes?: RawKV[]; status?: { code?: number } }[] }[] }[];
  };
  const out: DecodedSpan[] = [];
  for (const rs of msg.resource_spans ?? []) {
    const service = String(attrs(rs.resource?.attributes)['service.name'] ?? '');
    for (const ss of rs.scope_spans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({ service, traceId: hex(s.trace_id), spanId: hex(s.span_id), parentSpanId: hex(s.parent_span_id), name: s.name, kind: s.kind ?? 0, statusCode: s.status?.code ?? 0, attributes: attrs(s.attributes) });
      }
    }
  }
  return out;
}
