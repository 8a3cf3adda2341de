// Distributed tracing: one span per proxy hop (SERVER on inbound, CLIENT on
// outbound and gateway listeners), parented on the incoming trace context
// (W3C or B3, trace-context.ts) and exported over OTLP/HTTP protobuf by the
// OpenTelemetry JS SDK. The proxy rewrites the context it forwards so the
// next hop's parent is this hop's span; applications only need to copy the
// trace headers from the request they received onto the calls they make.
//
// Sampling: a caller's decision (the sampled flag) is always respected; a new
// trace is sampled with probability `samplingRate` (ParentBased +
// TraceIdRatioBased). Unsampled requests still get a context propagated
// (flag 00), so the whole trace agrees on the decision.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Span, type Tracer } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVICE_NAME,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type { ProxyRequest } from '../http/exchange.ts';
import { checkTracingOptions, type TracingOptions } from './tracing-options.ts';
import { getHeader } from '../http/exchange.ts';
import { b3DenyOnly, extractTraceContext, injectTraceContext } from './trace-context.ts';

export interface HopSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly sampled: boolean;
  /** Close the span with the outcome. */
  end(o: { status: number; route: string | undefined; cluster: string | undefined; upstream: string | undefined; flags: string; endTime: number; error?: string | undefined }): void;
}

export interface ProxyTracer {
  /** Start this hop's span and rewrite the request's trace headers. */
  start(req: ProxyRequest): HopSpan;
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

export function createTracer(o: TracingOptions): ProxyTracer {
  const errors = checkTracingOptions(o);
  if (errors.length > 0) throw new Error(errors.join('; '));
  const rate = o.samplingRate ?? 0.01;
  const exporter = o.exporter ?? new OTLPTraceExporter({ url: o.collectorUrl });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: o.serviceName, 'service.namespace': o.namespace ?? 'default' }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(rate) }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: o.exportDelayMs ?? 5000, maxQueueSize: o.maxQueueSize ?? 2048 })],
  });
  const tracer: Tracer = provider.getTracer('trellis-proxy');
  return {
    start: (req) => startHop(tracer, req, rate),
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}

function startHop(tracer: Tracer, req: ProxyRequest, rate: number): HopSpan {
  const { head, ctx } = req;
  const incoming = extractTraceContext(head.headers);
  let parent = ROOT_CONTEXT;
  if (incoming) {
    // B3 may defer the decision to us: decide here, as for a new trace.
    const sampled = incoming.sampled ?? Math.random() < rate;
    parent = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: incoming.traceId,
      spanId: incoming.spanId,
      traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
      isRemote: true,
    });
  } else if (b3DenyOnly(head.headers)) {
    // A caller that said "do not sample" without ids: an unsampled root.
    parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: randomHex(16), spanId: randomHex(8), traceFlags: TraceFlags.NONE, isRemote: true });
  }
  const kind = ctx.direction === 'inbound' ? SpanKind.SERVER : SpanKind.CLIENT;
  const span: Span = tracer.startSpan(
    `${head.method} ${ctx.direction}`,
    {
      kind,
      startTime: ctx.startTime,
      attributes: {
        [ATTR_HTTP_REQUEST_METHOD]: head.method,
        [ATTR_URL_PATH]: pathOnly(head.path),
        [ATTR_URL_SCHEME]: head.scheme,
        [ATTR_SERVER_ADDRESS]: head.authority,
        [ATTR_NETWORK_PROTOCOL_VERSION]: head.httpVersion,
        [ATTR_CLIENT_ADDRESS]: ctx.downstream.remoteAddress,
        'trellis.direction': ctx.direction,
        'trellis.listener': ctx.listener,
        ...(getHeader(head.headers, 'user-agent') !== undefined ? { [ATTR_USER_AGENT_ORIGINAL]: getHeader(head.headers, 'user-agent')! } : {}),
        ...(ctx.downstream.peerIdentity ? { 'trellis.peer.identity': ctx.downstream.peerIdentity } : {}),
      },
    },
    parent,
  );
  const sc = span.spanContext();
  const sampled = (sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED;
  injectTraceContext(head.headers, { traceId: sc.traceId, spanId: sc.spanId, sampled, parentSpanId: incoming?.spanId }, incoming?.format);
  return {
    traceId: sc.traceId,
    spanId: sc.spanId,
    sampled,
    end(r) {
      if (!span.isRecording()) return;
      if (r.route !== undefined) {
        span.updateName(`${head.method} ${r.route}`);
        span.setAttribute('trellis.route', r.route);
      }
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, r.status);
      if (r.cluster !== undefined) span.setAttribute('trellis.cluster', r.cluster);
      if (r.upstream !== undefined) span.setAttribute('trellis.upstream.address', r.upstream);
      if (r.flags !== '-') span.setAttribute('trellis.response_flags', r.flags);
      // Semantic conventions: 5xx is an error for servers, 4xx too for clients.
      if (r.error !== undefined || r.status >= 500 || (kind === SpanKind.CLIENT && r.status >= 400) || r.status === 0) {
        span.setStatus({ code: SpanStatusCode.ERROR, ...(r.error ? { message: r.error } : {}) });
      }
      span.end(r.endTime);
    },
  };
}

function pathOnly(p: string): string {
  const q = p.indexOf('?');
  return q < 0 ? p : p.slice(0, q);
}

function randomHex(bytes: number): string {
  let s = '';
  for (let i = 0; i < bytes; i++) s += ((Math.random() * 256) | 0).toString(16).padStart(2, '0');
  return s === '0'.repeat(bytes * 2) ? '1'.padStart(bytes * 2, '0') : s;
}
