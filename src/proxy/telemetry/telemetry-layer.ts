// The telemetry layer: one wrapper per request that feeds the standard
// request metrics, the hop's trace span, the access log and the live tap.
// It sits right after the forwarded-headers layer so it sees every request,
// including the ones the rescue edge answers (counted with the status the
// rescue renders), and reads the route, cluster and endpoint the router and
// cluster left on the context when the exchange completes.
//
// Identity exchange: on outbound (and gateway) listeners the proxy stamps
// `x-trellis-peer: <namespace>/<workload>` on the request; the inbound proxy
// reads it for source_workload and removes it before the app sees it. With
// mTLS the peer certificate's namespace wins: a header that disagrees with it
// is ignored (source_workload "unknown").
import type { BodySink, BodySource, Dispatch, ExchangeController, HeaderList, Layer, ProxyRequest, ResponseHandler, ResponseHead } from '../http/exchange.ts';
import { getHeader, removeHeader, setHeader } from '../http/exchange.ts';
import type { ProxyError } from '../errors.ts';
import type { Duplex } from 'node:stream';
import { PEER_HEADER, UNKNOWN, parsePeerHeader, parseSpiffe, serviceFromAuthority, serviceFromCluster, type WorkloadIdentity } from './identity.ts';
import type { RequestLabelValues, TelemetryStats } from './telemetry-stats.ts';
import type { HopSpan, ProxyTracer } from './tracing.ts';
import type { AccessLog, AccessLogEntry } from './access-log.ts';
import { redactHeaders, type TapEvent, type TapHub } from './tap.ts';

/** Request attribute the mTLS origination sets to `true` when the upstream
 * connection of this request is mutual TLS (outbound `mtls` label). */
export const UPSTREAM_MTLS_ATTR = 'trellis.upstreamMtls';

/** What telemetry knows about an upstream endpoint of this config. */
export interface EndpointFacts {
  /** `trellis.dev/workload` from the endpoint's EDS metadata. */
  readonly workload: string | undefined;
  /** The proxy originates mutual TLS to it. */
  readonly mtls: boolean;
}

/** (cluster, endpoint key) -> facts about the endpoint. */
export type EndpointDirectory = (cluster: string, endpoint: string) => EndpointFacts | undefined;

export interface TelemetryLayerDeps {
  readonly stats: TelemetryStats;
  readonly self: WorkloadIdentity;
  readonly direction: 'inbound' | 'outbound' | 'gateway';
  readonly endpoints: EndpointDirectory;
  readonly tracer?: ProxyTracer | undefined;
  readonly accessLog?: AccessLog | undefined;
  /** The listener's config asks for every request to be logged (HCM accessLog). */
  readonly logAll?: boolean;
  readonly tap?: TapHub | undefined;
  /** performance.now() by default. */
  readonly now?: () => number;
}

export function telemetryLayer(d: TelemetryLayerDeps): Layer {
  const selfHeader = `${d.self.namespace}/${d.self.workload}`;
  const inbound = d.direction === 'inbound';
  return function telemetry(next: Dispatch): Dispatch {
    return function telemetryDispatch(req, handler) {
      const h = req.head.headers;
      let peer: WorkloadIdentity | undefined;
      if (inbound) {
        peer = parsePeerHeader(getHeader(h, PEER_HEADER));
        if (peer) removeHeader(h, PEER_HEADER);
      } else {
        setHeader(h, PEER_HEADER, selfHeader);
      }
      const span = d.tracer?.start(req);
      const t = new TelemetryHandler(handler, req, d, peer, span);
      if (req.body) {
        if (req.body.contentLength !== null) t.requestBytes = req.body.contentLength;
        else req.body = new CountingBody(req.body, t);
      }
      next(req, t);
    };
  };
}

/** Counts request body bytes when no content-length declared them. */
class CountingBody implements BodySource {
  private readonly inner: BodySource;
  private readonly t: TelemetryHandler;
  constructor(inner: BodySource, t: TelemetryHandler) {
    this.inner = inner;
    this.t = t;
  }
  get contentLength(): number | null {
    return this.inner.contentLength;
  }
  start(sink: BodySink): void {
    const t = this.t;
    this.inner.start({
      onData(chunk) {
        t.requestBytes += chunk.length;
        return sink.onData(chunk);
      },
      onEnd: (tr) => sink.onEnd(tr),
      onError: (e) => sink.onError(e),
    });
  }
  resume(): void {
    this.inner.resume();
  }
  destroy(err?: Error): void {
    this.inner.destroy(err);
  }
}

class TelemetryHandler implements ResponseHandler {
  private readonly inner: ResponseHandler;
  private readonly req: ProxyRequest;
  private readonly d: TelemetryLayerDeps;
  private readonly peer: WorkloadIdentity | undefined;
  private readonly span: HopSpan | undefined;
  requestBytes = 0;
  private responseBytes = 0;
  private status = 0;
  private headersAt = 0;
  private responseHeaders: HeaderList | null = null;
  private grpcStatus = '';
  private recorded = false;
  onInformational?: (head: ResponseHead) => void;
  onUpgrade?: (head: ResponseHead, upstream: Duplex, upstreamHead: Buffer) => void;

  constructor(inner: ResponseHandler, req: ProxyRequest, d: TelemetryLayerDeps, peer: WorkloadIdentity | undefined, span: HopSpan | undefined) {
    this.inner = inner;
    this.req = req;
    this.d = d;
    this.peer = peer;
    this.span = span;
    if (inner.onInformational) this.onInformational = (head) => inner.onInformational!(head);
    if (inner.onUpgrade) {
      this.onUpgrade = (head, up, rest) => {
        this.status = head.status;
        this.responseHeaders = head.headers;
        this.record(undefined);
        inner.onUpgrade!(head, up, rest);
      };
    }
  }

  onStart(c: ExchangeController): void {
    this.inner.onStart(c);
  }
  onHeaders(head: ResponseHead): boolean {
    this.status = head.status;
    this.headersAt = nowOf(this.d);
    this.responseHeaders = head.headers;
    if (this.req.ctx.grpc) {
      const g = getHeader(head.headers, 'grpc-status'); // trailers-only
      if (g !== undefined) this.grpcStatus = g;
    }
    return this.inner.onHeaders(head);
  }
  onData(chunk: Buffer): boolean {
    this.responseBytes += chunk.length;
    return this.inner.onData(chunk);
  }
  onEnd(trailers: HeaderList | null): void {
    if (trailers && this.req.ctx.grpc) {
      const g = getHeader(trailers, 'grpc-status');
      if (g !== undefined) this.grpcStatus = g;
    }
    this.record(undefined);
    this.inner.onEnd(trailers);
  }
  onError(err: ProxyError): void {
    if (this.status === 0) this.status = err.status;
    if (this.req.ctx.grpc) this.grpcStatus = String(err.grpcStatus);
    this.record(err);
    this.inner.onError(err);
  }

  private record(err: ProxyError | undefined): void {
    if (this.recorded) return;
    this.recorded = true;
    const { d, req } = this;
    const { ctx, head } = req;
    const end = nowOf(d);
    const flagsList = ctx.responseFlags;
    if (err && !flagsList.includes(err.flag)) flagsList.push(err.flag);
    const flags = flagsList.length === 0 ? '-' : flagsList.join(',');

    // Source and destination.
    let srcWorkload: string;
    let srcNamespace: string;
    let dstWorkload: string;
    let dstNamespace: string;
    let dstService: string;
    let mtls: boolean;
    let parentService: string;
    const cluster = ctx.cluster;
    if (d.direction === 'inbound') {
      const peerId = ctx.downstream.peerIdentity;
      const spiffe = peerId ? parseSpiffe(peerId) : undefined;
      mtls = peerId !== undefined;
      srcNamespace = spiffe?.namespace ?? this.peer?.namespace ?? UNKNOWN;
      srcWorkload = this.peer && (!spiffe || spiffe.namespace === this.peer.namespace) ? this.peer.workload : UNKNOWN;
      dstWorkload = d.self.workload;
      dstNamespace = d.self.namespace;
      // The service this sidecar serves (node metadata) is authoritative: the
      // authority is whatever the caller typed (an IP, the ingress host, a
      // gRPC target such as 127.0.0.1:port) and only a fallback.
      dstService = d.self.service ?? serviceFromAuthority(head.authority, d.self.namespace) ?? UNKNOWN;
      parentService = dstService;
    } else {
      srcWorkload = d.self.workload;
      srcNamespace = d.self.namespace;
      const svc = cluster !== undefined ? clusterService(cluster) : undefined;
      dstService = svc?.service ?? cluster ?? UNKNOWN;
      dstNamespace = svc?.namespace ?? UNKNOWN;
      const facts = cluster !== undefined && ctx.upstreamEndpoint !== undefined ? d.endpoints(cluster, ctx.upstreamEndpoint) : undefined;
      dstWorkload = facts?.workload ?? UNKNOWN;
      mtls = facts?.mtls === true || ctx.attrs.get(UPSTREAM_MTLS_ATTR) === true;
      // The service the caller addressed (the virtual host), which an
      // HTTPRoute may send to other backends (reviews -> reviews-v2).
      const vhost = ctx.virtualHost !== undefined ? clusterService(ctx.virtualHost) : undefined;
      parentService = vhost?.service ?? dstService;
    }
    const protocol = ctx.grpc ? 'grpc' : head.httpVersion === '2' ? 'http2' : 'http1';
    const route = ctx.route ?? 'none';
    const values: RequestLabelValues = [
      ctx.direction,
      srcWorkload,
      srcNamespace,
      dstWorkload,
      dstNamespace,
      dstService,
      route,
      String(this.status),
      this.grpcStatus,
      protocol,
      mtls ? 'true' : 'false',
      flags,
      parentService,
    ];
    const s = d.stats.request(values);
    const durationMs = end - ctx.startTime;
    s.requests.inc();
    s.duration.observe(durationMs / 1000);
    if (this.requestBytes > 0) s.requestBytes.inc(this.requestBytes);
    if (this.responseBytes > 0) s.responseBytes.inc(this.responseBytes);

    this.span?.end({ status: this.status, route: ctx.route, cluster, upstream: ctx.upstreamEndpoint, flags, endTime: end, error: err?.code });

    const log = d.accessLog;
    if (log && (d.logAll === true || (log.active && log.wants(dstService)))) {
      const entry: AccessLogEntry = {
        start_time: new Date(performance.timeOrigin + ctx.startTime).toISOString(),
        direction: ctx.direction,
        method: head.method,
        authority: head.authority,
        path: head.path,
        protocol,
        response_code: this.status,
        grpc_status: this.grpcStatus,
        response_flags: flags,
        duration_ms: round3(durationMs),
        response_ms: this.headersAt > 0 ? round3(this.headersAt - ctx.startTime) : null,
        bytes_received: this.requestBytes,
        bytes_sent: this.responseBytes,
        route: ctx.route ?? null,
        upstream_cluster: cluster ?? null,
        upstream_host: ctx.upstreamEndpoint ?? null,
        attempts: ctx.attempts,
        downstream_remote_address: `${ctx.downstream.remoteAddress}:${ctx.downstream.remotePort}`,
        source_workload: srcWorkload,
        source_namespace: srcNamespace,
        source_principal: ctx.downstream.peerIdentity ?? null,
        destination_workload: dstWorkload,
        destination_namespace: dstNamespace,
        destination_service: dstService,
        trace_id: this.span?.traceId ?? null,
        request_id: getHeader(head.headers, 'x-request-id') ?? null,
        user_agent: getHeader(head.headers, 'user-agent') ?? null,
      };
      log.log(entry);
    }

    const tap = d.tap;
    if (tap?.active) {
      const status = this.status;
      tap.publish({ method: head.method, authority: head.authority, path: head.path, status, service: dstService, parent: parentService }, (): TapEvent => ({
        type: 'exchange',
        time: new Date(performance.timeOrigin + ctx.startTime).toISOString(),
        direction: ctx.direction,
        method: head.method,
        authority: head.authority,
        path: head.path,
        route: ctx.route ?? null,
        status,
        grpc_status: this.grpcStatus,
        response_flags: flags,
        duration_ms: round3(durationMs),
        bytes_received: this.requestBytes,
        bytes_sent: this.responseBytes,
        source_workload: srcWorkload,
        source_namespace: srcNamespace,
        destination_workload: dstWorkload,
        destination_namespace: dstNamespace,
        destination_service: dstService,
        upstream_host: ctx.upstreamEndpoint ?? null,
        trace_id: this.span?.traceId ?? null,
        request_id: getHeader(head.headers, 'x-request-id') ?? null,
        request_headers: redactHeaders(head.headers),
        response_headers: redactHeaders(this.responseHeaders),
      }));
    }
  }
}

// Cluster names come from the config: a bounded set, parsed once each.
const clusterServices = new Map<string, { service: string; namespace: string } | null>();
function clusterService(cluster: string): { service: string; namespace: string } | undefined {
  let v = clusterServices.get(cluster);
  if (v === undefined) {
    v = serviceFromCluster(cluster) ?? null;
    if (clusterServices.size < 10_000) clusterServices.set(cluster, v);
  }
  return v ?? undefined;
}

function nowOf(d: TelemetryLayerDeps): number {
  return d.now ? d.now() : performance.now();
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}
