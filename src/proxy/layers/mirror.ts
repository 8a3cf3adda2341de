// Request mirroring (Envoy's request_mirror_policies): for the configured
// fraction of requests, a fire-and-forget copy goes to the mirror cluster
// with `-shadow` appended to the host (before the port), as Envoy does. The
// copy's response is read and discarded; its latency and failures never
// touch the caller:
// - the request body is teed to the mirror only up to a bound (64 KiB):
//   the primary streams as usual, the mirror is sent once the whole body has
//   passed; a larger body drops the mirror;
// - mirrors in flight are bounded (1000 per proxy by default); past that a
//   mirror is dropped, never queued;
// - a mirror has its own deadline (10 s default) and is aborted after it.
import type { MirrorPolicySpec } from '../config/envoy-resilience.ts';
import { ProxyError } from '../errors.ts';
import type { BodySink, BodySource, Dispatch, ExchangeController, HeaderList, Layer, ProxyRequest, RequestContext, ResponseHandler, ResponseHead } from '../http/exchange.ts';

export const DEFAULT_MIRROR_BODY_LIMIT = 64 * 1024;
export const DEFAULT_MIRROR_MAX_IN_FLIGHT = 1000;
export const DEFAULT_MIRROR_TIMEOUT_MS = 10_000;

export type MirrorResult = 'sent' | 'ok' | 'failed' | 'dropped';

export interface MirrorDeps {
  /** The dispatch of a cluster by name (undefined: unknown, the mirror is dropped). */
  readonly cluster: (name: string) => Dispatch | undefined;
  readonly random: () => number;
  readonly now: () => number;
  readonly bodyLimit?: number;
  readonly maxInFlight?: number;
  readonly timeoutMs?: number;
  readonly onMirror?: (cluster: string, result: MirrorResult) => void;
}

export function shadowAuthority(authority: string): string {
  // "[v6]:port", "host:port" or "host"
  const m = /^(\[[^\]]*\]|[^:]*)(:\d+)?$/.exec(authority);
  if (!m) return `${authority}-shadow`;
  return `${m[1]}-shadow${m[2] ?? ''}`;
}

export function mirrorLayer(policiesOf: (req: ProxyRequest) => readonly MirrorPolicySpec[], deps: MirrorDeps): Layer {
  const state = { inFlight: 0 };
  const limit = deps.bodyLimit ?? DEFAULT_MIRROR_BODY_LIMIT;
  return function mirror(next: Dispatch): Dispatch {
    return function mirrorDispatch(req, handler) {
      const policies = policiesOf(req);
      if (policies.length === 0 || req.head.upgrade !== undefined) {
        next(req, handler);
        return;
      }
      const chosen = policies.filter((p) => p.fraction >= 1 || deps.random() < p.fraction);
      if (chosen.length === 0) {
        next(req, handler);
        return;
      }
      // Snapshot the head before the primary path mutates it further.
      const head = { ...req.head, headers: req.head.headers.slice() };
      const send = (body: Buffer | null, trailers: HeaderList | null) => {
        for (const p of chosen) sendMirror(p.cluster, req.ctx, head, body, trailers, deps, state);
      };
      if (req.body === null) {
        next(req, handler);
        send(null, null);
        return;
      }
      if (req.body.contentLength !== null && req.body.contentLength > limit) {
        for (const p of chosen) deps.onMirror?.(p.cluster, 'dropped');
        next(req, handler);
        return;
      }
      const tee = new TeeBody(req.body, limit, (body, trailers) => send(body, trailers), () => {
        for (const p of chosen) deps.onMirror?.(p.cluster, 'dropped');
      });
      next({ ...req, body: tee }, handler);
    };
  };
}

function sendMirror(
  cluster: string,
  parent: RequestContext,
  head: ProxyRequest['head'],
  body: Buffer | null,
  trailers: HeaderList | null,
  deps: MirrorDeps,
  state: { inFlight: number },
): void {
  const dispatch = deps.cluster(cluster);
  if (!dispatch || state.inFlight >= (deps.maxInFlight ?? DEFAULT_MIRROR_MAX_IN_FLIGHT)) {
    deps.onMirror?.(cluster, 'dropped');
    return;
  }
  const now = deps.now();
  const timeoutMs = deps.timeoutMs ?? DEFAULT_MIRROR_TIMEOUT_MS;
  const ctx: RequestContext = {
    listener: parent.listener,
    direction: parent.direction,
    downstream: parent.downstream,
    startTime: now,
    deadline: now + timeoutMs,
    responseFlags: [],
    grpc: parent.grpc,
    cluster,
    attempts: 1,
    attrs: new Map(),
  };
  const req: ProxyRequest = {
    head: { ...head, authority: shadowAuthority(head.authority), headers: head.headers.slice() },
    body: body === null ? null : new BufferedBody(body, trailers),
    ctx,
  };
  state.inFlight++;
  deps.onMirror?.(cluster, 'sent');
  const sink = new DiscardHandler((ok) => {
    state.inFlight--;
    deps.onMirror?.(cluster, ok ? 'ok' : 'failed');
  }, timeoutMs);
  try {
    dispatch(req, sink);
  } catch {
    sink.onError(undefined);
  }
}

/** Reads and drops the mirror's response. */
class DiscardHandler implements ResponseHandler {
  private readonly done: (ok: boolean) => void;
  private controller: ExchangeController | null = null;
  private finished = false;
  private status = 0;
  private timer: NodeJS.Timeout | null;

  constructor(done: (ok: boolean) => void, timeoutMs: number) {
    this.done = done;
    this.timer = setTimeout(() => {
      this.timer = null;
      const c = this.controller;
      this.finish(false);
      c?.abort(new ProxyError('REQUEST_TIMEOUT', 'mirror'));
    }, timeoutMs);
    this.timer.unref();
  }

  private finish(ok: boolean): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.done(ok);
  }

  onStart(c: ExchangeController): void {
    this.controller = c;
  }
  onHeaders(head: ResponseHead): boolean {
    this.status = head.status;
    return true;
  }
  onData(): boolean {
    return true;
  }
  onEnd(): void {
    this.finish(this.status > 0 && this.status < 500);
  }
  onError(_err: ProxyError | undefined): void {
    this.finish(false);
  }
}

/** The primary's body, copied up to `limit` for the mirror. */
class TeeBody implements BodySource, BodySink {
  private readonly source: BodySource;
  private readonly limit: number;
  private readonly onComplete: (body: Buffer, trailers: HeaderList | null) => void;
  private readonly onDrop: () => void;
  private chunks: Buffer[] | null = [];
  private size = 0;
  private sink: BodySink | null = null;

  constructor(source: BodySource, limit: number, onComplete: (body: Buffer, trailers: HeaderList | null) => void, onDrop: () => void) {
    this.source = source;
    this.limit = limit;
    this.onComplete = onComplete;
    this.onDrop = onDrop;
  }

  get contentLength(): number | null {
    return this.source.contentLength;
  }
  start(sink: BodySink): void {
    this.sink = sink;
    this.source.start(this);
  }
  resume(): void {
    this.source.resume();
  }
  destroy(err?: Error): void {
    this.drop();
    this.source.destroy(err);
  }

  private drop(): void {
    if (this.chunks === null) return;
    this.chunks = null;
    this.onDrop();
  }

  onData(chunk: Buffer): boolean {
    if (this.chunks !== null) {
      this.size += chunk.length;
      if (this.size > this.limit) this.drop();
      else this.chunks.push(chunk);
    }
    return this.sink!.onData(chunk);
  }
  onEnd(trailers: HeaderList | null): void {
    const chunks = this.chunks;
    this.chunks = null;
    this.sink!.onEnd(trailers);
    if (chunks !== null) this.onComplete(Buffer.concat(chunks), trailers);
  }
  onError(err: Error): void {
    this.drop();
    this.sink!.onError(err);
  }
}

/** A complete body held in memory. */
export class BufferedBody implements BodySource {
  private readonly data: Buffer;
  private readonly trailers: HeaderList | null;
  private sink: BodySink | null = null;
  private sent = false;
  private destroyed = false;

  constructor(data: Buffer, trailers: HeaderList | null = null) {
    this.data = data;
    this.trailers = trailers;
  }
  get contentLength(): number | null {
    return this.trailers === null ? this.data.length : null;
  }
  start(sink: BodySink): void {
    this.sink = sink;
    this.push();
  }
  private push(): void {
    if (this.destroyed || this.sink === null) return;
    if (!this.sent) {
      this.sent = true;
      if (this.data.length > 0 && !this.sink.onData(this.data)) return;
    }
    this.sink.onEnd(this.trailers);
    this.sink = null;
  }
  resume(): void {
    this.push();
  }
  destroy(): void {
    this.destroyed = true;
  }
}
