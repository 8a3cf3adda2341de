// The proxy's one catalogue of failures, and the one place ("rescue") where a
// failure becomes an HTTP status or a gRPC status. Codecs call `rescue()` to
// render a synthetic response; nothing else chooses statuses for errors.
// Every synthetic response carries `x-trellis-proxy-error: <code>` so an
// operator can tell the proxy's answers from the application's.
import type { HeaderList } from './http/exchange.ts';

export const PROXY_ERROR_HEADER = 'x-trellis-proxy-error';
/** The reason in words (the error's detail: which policy denied, which
 * service has no such port), when there is one; the body says the same. */
export const PROXY_ERROR_REASON_HEADER = 'x-trellis-proxy-error-reason';

/** Codes by which a proxy turns a request away itself, without trying the
 * app: its rate limit, its circuit breaker or pool limits. In an upstream
 * answer they say the endpoint has no room right now, nothing about how fast
 * it serves: the caller's balancer treats them as load (cluster.ts,
 * balancer/load.ts), never as fast healthy answers. */
export const LOCAL_REJECTIONS: ReadonlySet<string> = new Set<ProxyErrorCode>(['RATE_LIMITED', 'OVERFLOW']);

interface Kind {
  status: number;
  grpc: number;
  /** Envoy-style response flag for access logs and metrics. */
  flag: string;
  message: string;
}

// gRPC codes: https://grpc.github.io/grpc/core/md_doc_statuscodes.html
export const GrpcStatus = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5,
  ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9,
  ABORTED: 10, OUT_OF_RANGE: 11, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14,
  DATA_LOSS: 15, UNAUTHENTICATED: 16,
} as const;

export const ERRORS = {
  NO_ROUTE: { status: 404, grpc: GrpcStatus.UNIMPLEMENTED, flag: 'NR', message: 'no route matched the request' },
  NO_CLUSTER: { status: 503, grpc: GrpcStatus.UNAVAILABLE, flag: 'NC', message: 'the route names a cluster that is not configured' },
  NO_HEALTHY_UPSTREAM: { status: 503, grpc: GrpcStatus.UNAVAILABLE, flag: 'UH', message: 'no healthy upstream endpoint' },
  UPSTREAM_CONNECT_FAILED: { status: 502, grpc: GrpcStatus.UNAVAILABLE, flag: 'UF', message: 'upstream connection failed' },
  UPSTREAM_CONNECT_TIMEOUT: { status: 503, grpc: GrpcStatus.UNAVAILABLE, flag: 'UF', message: 'upstream connection timed out' },
  UPSTREAM_RESET: { status: 502, grpc: GrpcStatus.UNAVAILABLE, flag: 'UR', message: 'upstream reset the connection before responding' },
  UPSTREAM_PROTOCOL_ERROR: { status: 502, grpc: GrpcStatus.INTERNAL, flag: 'UPE', message: 'upstream sent an invalid response' },
  REQUEST_TIMEOUT: { status: 504, grpc: GrpcStatus.DEADLINE_EXCEEDED, flag: 'UT', message: 'request timed out' },
  PER_TRY_TIMEOUT: { status: 504, grpc: GrpcStatus.DEADLINE_EXCEEDED, flag: 'UT', message: 'upstream attempt timed out' },
  OVERFLOW: { status: 503, grpc: GrpcStatus.UNAVAILABLE, flag: 'UO', message: 'upstream overflow: circuit breaker or pool limit reached' },
  RETRY_BUDGET_EXHAUSTED: { status: 503, grpc: GrpcStatus.UNAVAILABLE, flag: 'URX', message: 'retry budget exhausted' },
  RATE_LIMITED: { status: 429, grpc: GrpcStatus.RESOURCE_EXHAUSTED, flag: 'RL', message: 'rate limited' },
  FORBIDDEN: { status: 403, grpc: GrpcStatus.PERMISSION_DENIED, flag: 'RBAC', message: 'forbidden by authorization policy' },
  UNAUTHENTICATED: { status: 401, grpc: GrpcStatus.UNAUTHENTICATED, flag: 'UAEX', message: 'authentication failed' },
  FAULT_ABORT: { status: 503, grpc: GrpcStatus.UNAVAILABLE, flag: 'FI', message: 'fault injected' },
  MISDIRECTED_REQUEST: { status: 421, grpc: GrpcStatus.UNAVAILABLE, flag: 'NR', message: 'misdirected request' },
  BAD_REQUEST: { status: 400, grpc: GrpcStatus.INTERNAL, flag: 'DPE', message: 'malformed request' },
  // Not a failure, but a synthetic answer all the same: the path had escaped
  // slashes and the listener says unescape-and-redirect (layers/path-normalization.ts).
  PATH_REDIRECT: { status: 307, grpc: GrpcStatus.INVALID_ARGUMENT, flag: 'DPE', message: 'redirected to the normalized path' },
  PAYLOAD_TOO_LARGE: { status: 413, grpc: GrpcStatus.RESOURCE_EXHAUSTED, flag: 'DPE', message: 'request too large' },
  EXPECTATION_FAILED: { status: 417, grpc: GrpcStatus.INVALID_ARGUMENT, flag: 'DPE', message: 'expectation failed' },
  HEADERS_TOO_LARGE: { status: 431, grpc: GrpcStatus.RESOURCE_EXHAUSTED, flag: 'DPE', message: 'request header fields too large' },
  DOWNSTREAM_CLOSED: { status: 499, grpc: GrpcStatus.CANCELLED, flag: 'DC', message: 'downstream closed the connection' },
  DRAINING: { status: 503, grpc: GrpcStatus.UNAVAILABLE, flag: 'DR', message: 'proxy is shutting down' },
  PLUGIN_FAILED: { status: 500, grpc: GrpcStatus.INTERNAL, flag: 'PF', message: 'a fail-closed plugin failed' },
  INTERNAL: { status: 500, grpc: GrpcStatus.INTERNAL, flag: 'INT', message: 'internal proxy error' },
} as const satisfies Record<string, Kind>;

export type ProxyErrorCode = keyof typeof ERRORS;

export class ProxyError extends Error {
  readonly code: ProxyErrorCode;
  /** Overrides for fault injection and rate limiting (e.g. a configured abort status). */
  readonly status: number;
  readonly grpcStatus: number;
  readonly flag: string;
  /** Extra response headers for the synthetic response (e.g. retry-after). */
  readonly headers: HeaderList;
  /** What is wrong in this instance, beyond the code's message. */
  readonly detail: string | undefined;

  constructor(code: ProxyErrorCode, detail?: string, opts: { status?: number; grpcStatus?: number; headers?: HeaderList; cause?: unknown } = {}) {
    const kind: Kind = ERRORS[code];
    super(detail ? `${kind.message}: ${detail}` : kind.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ProxyError';
    this.code = code;
    this.status = opts.status ?? kind.status;
    this.grpcStatus = opts.grpcStatus ?? kind.grpc;
    this.flag = kind.flag;
    this.headers = opts.headers ?? [];
    this.detail = detail;
  }
}

export function isProxyError(err: unknown): err is ProxyError {
  return err instanceof ProxyError;
}

/** Wrap anything thrown into a ProxyError (unknown errors are INTERNAL). */
export function toProxyError(err: unknown, fallback: ProxyErrorCode = 'INTERNAL'): ProxyError {
  if (err instanceof ProxyError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new ProxyError(fallback, msg, { cause: err });
}

export interface SyntheticResponse {
  status: number;
  headers: HeaderList;
  body: Buffer;
  /** For gRPC: the trailers-only response carries these in the head. */
  grpc: boolean;
}

/** The rescue edge: a failure that happened before any response byte was
 * sent, turned into the response the downstream will see. For gRPC callers
 * this is a trailers-only response (HTTP 200, grpc-status, grpc-message). */
export function rescue(err: ProxyError, grpc: boolean): SyntheticResponse {
  if (grpc) {
    return {
      status: 200,
      headers: [
        'content-type', 'application/grpc',
        'grpc-status', String(err.grpcStatus),
        'grpc-message', encodeGrpcMessage(err.message),
        PROXY_ERROR_HEADER, err.code,
        ...reasonHeader(err),
        ...err.headers,
      ],
      body: Buffer.alloc(0),
      grpc: true,
    };
  }
  const body = Buffer.from(`${err.message}\n`);
  return {
    status: err.status,
    headers: [
      'content-type', 'text/plain; charset=utf-8',
      'content-length', String(body.length),
      PROXY_ERROR_HEADER, err.code,
      ...reasonHeader(err),
      ...err.headers,
    ],
    body,
    grpc: false,
  };
}

/** The detail as a header value: printable ASCII, bounded. */
function reasonHeader(err: ProxyError): string[] {
  if (!err.detail) return [];
  const v = err.detail.replace(/[^\x20-\x7e]/g, '?').slice(0, 512);
  return [PROXY_ERROR_REASON_HEADER, v];
}

/** grpc-message is percent-encoded (gRPC over HTTP/2 spec). */
export function encodeGrpcMessage(msg: string): string {
  return encodeURIComponent(msg).replace(/%20/g, ' ');
}
