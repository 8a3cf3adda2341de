// The contract every HTTP layer of the proxy speaks, whatever the protocol on
// either side. It follows undici's Dispatcher: a layer is a function
// `dispatch(req, handler)`; wrapping layers (retries, timeouts, metrics,
// authz...) are `(next: Dispatch) => Dispatch`; the terminal layer is an
// upstream connection pool. Bodies flow push-style with explicit
// backpressure in both directions: a sink returns `false` to pause its
// source, and the source waits for `resume()`.
//
// Downstream codecs (http1/server.ts, http2/server.ts) turn bytes into
// ProxyRequest + ResponseHandler; upstream codecs (http1/pool.ts,
// http2/pool.ts) turn them back into bytes. Nothing in between knows which
// protocol is on the wire.
import type { Duplex } from 'node:stream';
import type { ProxyError } from '../errors.ts';

/** Headers as a flat list `[name, value, name, value, ...]`. Names are
 * lower-case; order and duplicates are preserved as received. */
export type HeaderList = string[];

export interface RequestHead {
  method: string;
  scheme: 'http' | 'https';
  /** `Host` (HTTP/1) or `:authority` (HTTP/2), as received. */
  authority: string;
  /** Origin-form path including the query string, as received. */
  path: string;
  /** End-to-end headers only: the downstream codec has removed hop-by-hop
   * headers (RFC 9110 §7.6.1) and pseudo-headers. `te: trailers` is kept. */
  headers: HeaderList;
  httpVersion: '1.0' | '1.1' | '2';
  /** HTTP/1.1 `Upgrade` value (e.g. "websocket") when the client asked to
   * switch protocols; the codec kept `connection`/`upgrade` out of headers. */
  upgrade?: string;
  /** True when the client sent `Expect: 100-continue` and is waiting. */
  expectContinue?: boolean;
}

export interface ResponseHead {
  status: number;
  /** End-to-end headers, hop-by-hop removed by the upstream codec. */
  headers: HeaderList;
}

/** A request body, pushed by the downstream codec to whoever forwards it. */
export interface BodySource {
  /** Declared length, or null when unknown (chunked, HTTP/2 without one). */
  readonly contentLength: number | null;
  /** Begin delivery. Called at most once. */
  start(sink: BodySink): void;
  /** Continue after `sink.onData` returned false. */
  resume(): void;
  /** Stop reading and drop the rest (the exchange failed upstream). */
  destroy(err?: Error): void;
}

export interface BodySink {
  /** Return false to pause the source until `resume()`. */
  onData(chunk: Buffer): boolean;
  onEnd(trailers: HeaderList | null): void;
  onError(err: Error): void;
}

/** Given to the handler when an exchange is committed to an upstream. */
export interface ExchangeController {
  /** Resume response delivery after onData/onHeaders returned false. */
  resume(): void;
  /** Cancel the upstream exchange (the downstream went away, a timeout...). */
  abort(err: ProxyError): void;
}

export interface ResponseHandler {
  /** The exchange started; keep the controller to pause/abort it. May be
   * called again by a retrying layer for each new attempt. */
  onStart(controller: ExchangeController): void;
  /** 1xx other than 101 (100 Continue, 103 Early Hints). */
  onInformational?(head: ResponseHead): void;
  /** Return false to pause body delivery until controller.resume(). */
  onHeaders(head: ResponseHead): boolean;
  onData(chunk: Buffer): boolean;
  onEnd(trailers: HeaderList | null): void;
  /** Failure before or after headers. Before: the rescue edge renders a
   * synthetic response. After: the downstream stream is reset. */
  onError(err: ProxyError): void;
  /** 101 Switching Protocols: both sides become an opaque byte pipe. */
  onUpgrade?(head: ResponseHead, upstream: Duplex, upstreamHead: Buffer): void;
}

/** Per-request facts that layers read and annotate. */
export interface RequestContext {
  readonly listener: string;
  readonly direction: 'inbound' | 'outbound' | 'gateway';
  readonly downstream: DownstreamInfo;
  /** performance.now() at the first byte of the request head. */
  readonly startTime: number;
  /** Absolute deadline on the performance.now() clock, or null for none. */
  deadline: number | null;
  /** Envoy-style response flags (UF, UT, UO, NR, URX, DC, UH, RL, FI...). */
  readonly responseFlags: string[];
  /** True when the downstream speaks gRPC (content-type application/grpc*). */
  grpc: boolean;
  route?: string;
  /** The virtual host the router chose (outbound: `<svc>.<ns>.svc:<port>`,
   * the service the caller addressed, whichever backend the route picks). */
  virtualHost?: string;
  cluster?: string;
  upstreamEndpoint?: string;
  attempts: number;
  /** Free-form annotations for later layers (tracing ids, identities...). */
  readonly attrs: Map<string, unknown>;
}

export interface DownstreamInfo {
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  /** Set when transparent capture recovered the original destination. */
  originalDst?: { address: string; port: number };
  /** Set by TLS termination: the peer's verified identity (SPIFFE ID). */
  peerIdentity?: string;
  tls?: boolean;
  /** Set by gateway TLS termination: the filter chain the SNI chose (its certificate). */
  tlsChain?: string;
}

export interface ProxyRequest {
  head: RequestHead;
  /** Null when the request has no body. */
  body: BodySource | null;
  ctx: RequestContext;
}

export type Dispatch = (req: ProxyRequest, handler: ResponseHandler) => void;
export type Layer = (next: Dispatch) => Dispatch;

/** Compose layers outermost-first: compose([a, b], terminal) = a(b(terminal)). */
export function compose(layers: readonly Layer[], terminal: Dispatch): Dispatch {
  let d = terminal;
  for (let i = layers.length - 1; i >= 0; i--) d = layers[i]!(d);
  return d;
}

// ---- header helpers shared by codecs and layers (HeaderList is flat) ----

export function getHeader(h: HeaderList, name: string): string | undefined {
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1];
  return undefined;
}

export function getHeaderAll(h: HeaderList, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) out.push(h[i + 1]!);
  return out;
}

/** Remove every occurrence of `name` in place; returns the list. */
export function removeHeader(h: HeaderList, name: string): HeaderList {
  let w = 0;
  for (let r = 0; r < h.length; r += 2) {
    if (h[r] !== name) {
      h[w] = h[r]!;
      h[w + 1] = h[r + 1]!;
      w += 2;
    }
  }
  h.length = w;
  return h;
}

/** Replace all occurrences of `name` with one value, in place. */
export function setHeader(h: HeaderList, name: string, value: string): HeaderList {
  removeHeader(h, name);
  h.push(name, value);
  return h;
}
