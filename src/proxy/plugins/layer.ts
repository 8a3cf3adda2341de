// The plugin layer: one HTTP filter of the HCM (an envoy.filters.http.wasm
// filter, TypeScript or proxy-wasm) as a layer of the listener's onion, in
// the filter's place among jwt_authn and rbac (stack.ts). It calls the
// plugin's hooks as the exchange passes, and only those it implements:
//
//   request  ── requestHeaders ──▶ [requestBody: whole body + trailers] ──▶ next
//   handler  ◀── responseHeaders (body streams)  |  responseBody (whole response) ◀──
//
// Each hook is an asynchronous call into the plugin's runtime: the request
// (or response) waits, paused, until it answers -- Envoy's
// StopIteration/Continue. The answer is one of
//   continue  with whatever the plugin changed (method, path, authority,
//             headers, status, body, trailers)
//   reply     a local response; the upstream is never asked (or is reset)
//   fail      the plugin threw, missed its deadline or crashed: fail-open
//             goes on unchanged, fail-closed answers PLUGIN_FAILED (500)
// Bodies a body hook needs are buffered up to maxBodyBytes (a larger one is
// a `body_too_large` failure under the same policy; a larger request body
// is refused with 413 when fail-closed).
import { ProxyError } from '../errors.ts';
import type { BodySource, Dispatch, ExchangeController, HeaderList, Layer, ProxyRequest, ResponseHandler, ResponseHead } from '../http/exchange.ts';
import { removeHeader, setHeader } from '../http/exchange.ts';
import { BufferedBody } from '../layers/mirror.ts';
import type { HookOutput, PluginRequestHead, PluginRunner, PluginStream } from './runner.ts';

export interface PluginFilter {
  readonly runner: PluginRunner;
  readonly failOpen: boolean;
  readonly maxBodyBytes: number;
  /** trellis_plugin_errors_total{plugin,reason} for failures the layer sees itself (body_too_large). */
  readonly onError: (reason: string) => void;
}

export function pluginLayer(f: PluginFilter): Layer {
  const hooks = f.runner.hooks;
  const onRequest = hooks.has('requestHeaders') || hooks.has('requestBody');
  const onResponse = hooks.has('responseHeaders') || hooks.has('responseBody');
  return (next: Dispatch): Dispatch => {
    if (!onRequest && !onResponse) return next;
    return function plugin(req, handler) {
      new PluginExchange(f, req, handler, next).start();
    };
  };
}

const NOOP_CONTROLLER: ExchangeController = { resume() {}, abort() {} };

function headOf(req: ProxyRequest): PluginRequestHead {
  const h = req.head;
  return { method: h.method, scheme: h.scheme, authority: h.authority, path: h.path, headers: h.headers };
}

class PluginExchange implements ExchangeController {
  private readonly f: PluginFilter;
  private readonly req: ProxyRequest;
  private readonly handler: ResponseHandler;
  private readonly next: Dispatch;
  private readonly stream: PluginStream;
  /** The downstream aborted while the request waited for the plugin. */
  private aborted = false;
  private reading: BodySource | null = null;

  constructor(f: PluginFilter, req: ProxyRequest, handler: ResponseHandler, next: Dispatch) {
    this.f = f;
    this.req = req;
    this.handler = handler;
    this.next = next;
    this.stream = f.runner.openStream();
  }

  start(): void {
    const hooks = this.f.runner.hooks;
    if (!hooks.has('requestHeaders') && !(hooks.has('requestBody') && this.req.body)) {
      this.forward();
      return;
    }
    // The downstream holds this controller while the request waits for the plugin.
    this.handler.onStart(this);
    void this.requestPhase();
  }

  resume(): void {}

  abort(err: ProxyError): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reading?.destroy(err);
    this.stream.close();
    this.handler.onError(err);
  }

  private async requestPhase(): Promise<void> {
    const { req } = this;
    const hooks = this.f.runner.hooks;
    if (hooks.has('requestHeaders')) {
      const out = await this.stream.call({ hook: 'requestHeaders', request: headOf(req) });
      if (this.aborted || !this.proceed(out)) return;
      if (out.kind === 'continue' && out.request) this.applyRequest(out.request);
    }
    if (hooks.has('requestBody') && req.body) {
      this.reading = req.body;
      const whole = await readWhole(req.body, this.f.maxBodyBytes);
      this.reading = null;
      if (this.aborted) return;
      if (whole.kind === 'error') {
        this.finishWithError(new ProxyError('DOWNSTREAM_CLOSED', whole.message));
        return;
      }
      if (whole.kind === 'too_large') {
        this.f.onError('body_too_large');
        this.finishWithError(new ProxyError('PAYLOAD_TOO_LARGE', `the plugin buffers request bodies up to ${this.f.maxBodyBytes} bytes`));
        return;
      }
      const out = await this.stream.call({ hook: 'requestBody', request: headOf(req), body: whole.body, trailers: whole.trailers });
      if (this.aborted) return;
      if (out.kind === 'fail' && this.f.failOpen) {
        req.body = new BufferedBody(whole.body, whole.trailers);
      } else {
        if (!this.proceed(out)) return;
        if (out.kind === 'continue') {
          if (out.request) this.applyRequest(out.request);
          req.body = new BufferedBody(out.body ?? whole.body, out.trailers === undefined ? whole.trailers : out.trailers);
        }
      }
    }
    this.forward();
  }

  /** False when the outcome ended the exchange (a local reply or a fail-closed failure). */
  private proceed(out: HookOutput): boolean {
    if (out.kind === 'reply') {
      this.stream.close();
      sendLocal(this.handler, out.status, out.headers, out.body);
      return false;
    }
    if (out.kind === 'fail' && !this.f.failOpen) {
      this.finishWithError(pluginFailed(this.f.runner.name, out.message));
      return false;
    }
    return true;
  }

  private finishWithError(err: ProxyError): void {
    this.stream.close();
    this.handler.onError(err);
  }

  private applyRequest(r: PluginRequestHead): void {
    const h = this.req.head;
    h.method = r.method;
    h.authority = r.authority;
    h.path = r.path;
    h.headers = r.headers;
  }

  private forward(): void {
    const hooks = this.f.runner.hooks;
    const respond = hooks.has('responseBody')
      ? new WholeResponse(this)
      : hooks.has('responseHeaders')
        ? new HeadersResponse(this)
        : new Closing(this.handler, this.stream);
    this.next(this.req, respond);
  }

  // For the response filters below.
  get downstream(): ResponseHandler {
    return this.handler;
  }
  get pluginStream(): PluginStream {
    return this.stream;
  }
  get filter(): PluginFilter {
    return this.f;
  }
  get request(): ProxyRequest {
    return this.req;
  }
}

function pluginFailed(name: string, message: string): ProxyError {
  return new ProxyError('PLUGIN_FAILED', `${name}: ${message}`);
}

/** Pass-through that closes the plugin stream when the exchange ends. */
class Closing implements ResponseHandler {
  private readonly h: ResponseHandler;
  private readonly stream: PluginStream;
  constructor(h: ResponseHandler, stream: PluginStream) {
    this.h = h;
    this.stream = stream;
  }
  onStart(c: ExchangeController): void {
    this.h.onStart(c);
  }
  onInformational(head: ResponseHead): void {
    this.h.onInformational?.(head);
  }
  onHeaders(head: ResponseHead): boolean {
    return this.h.onHeaders(head);
  }
  onData(chunk: Buffer): boolean {
    return this.h.onData(chunk);
  }
  onEnd(trailers: HeaderList | null): void {
    this.stream.close();
    this.h.onEnd(trailers);
  }
  onError(err: ProxyError): void {
    this.stream.close();
    this.h.onError(err);
  }
  onUpgrade(head: ResponseHead, upstream: import('node:stream').Duplex, upstreamHead: Buffer): void {
    this.stream.close();
    if (this.h.onUpgrade) this.h.onUpgrade(head, upstream, upstreamHead);
    else upstream.destroy();
  }
}

/** responseHeaders: the head waits for the plugin (the body is paused and queued), then streams. */
class HeadersResponse extends Closing {
  private readonly x: PluginExchange;
  private upstream: ExchangeController = NOOP_CONTROLLER;
  private waiting = false;
  private done = false;
  private readonly queue: (Buffer | { end: HeaderList | null })[] = [];

  constructor(x: PluginExchange) {
    super(x.downstream, x.pluginStream);
    this.x = x;
  }
  override onStart(c: ExchangeController): void {
    this.upstream = c;
    super.onStart(c);
  }
  override onHeaders(head: ResponseHead): boolean {
    if (this.done) return false;
    this.waiting = true;
    void this.x.pluginStream.call({ hook: 'responseHeaders', request: headOf(this.x.request), status: head.status, headers: head.headers }).then((out) => this.answered(head, out));
    return false;
  }
  private answered(head: ResponseHead, out: HookOutput): void {
    this.waiting = false;
    if (this.done) return;
    const f = this.x.filter;
    if (out.kind === 'reply' || (out.kind === 'fail' && !f.failOpen)) {
      this.done = true;
      this.x.pluginStream.close();
      this.upstream.abort(new ProxyError('DOWNSTREAM_CLOSED', 'replaced by a plugin'));
      if (out.kind === 'reply') sendLocal(this.x.downstream, out.status, out.headers, out.body, false);
      else this.x.downstream.onError(pluginFailed(f.runner.name, out.message));
      return;
    }
    const next = out.kind === 'continue' ? { status: out.status ?? head.status, headers: out.headers ?? head.headers } : head;
    let ok = super.onHeaders(next);
    for (const item of this.queue.splice(0)) {
      if (Buffer.isBuffer(item)) ok = super.onData(item);
      else {
        super.onEnd(item.end);
        return;
      }
    }
    if (ok) this.upstream.resume();
  }
  override onData(chunk: Buffer): boolean {
    if (this.done) return false;
    if (this.waiting) {
      this.queue.push(chunk);
      return false;
    }
    return super.onData(chunk);
  }
  override onEnd(trailers: HeaderList | null): void {
    if (this.done) return;
    if (this.waiting) this.queue.push({ end: trailers });
    else super.onEnd(trailers);
  }
  override onError(err: ProxyError): void {
    if (this.done) return;
    this.done = true;
    super.onError(err);
  }
}

/** responseBody: the whole response is buffered, handed to the plugin, then sent. */
class WholeResponse extends Closing {
  private readonly x: PluginExchange;
  private upstream: ExchangeController = NOOP_CONTROLLER;
  private head: ResponseHead | null = null;
  private chunks: Buffer[] = [];
  private size = 0;
  private mode: 'buffer' | 'pass' | 'done' = 'buffer';

  constructor(x: PluginExchange) {
    super(x.downstream, x.pluginStream);
    this.x = x;
  }
  override onStart(c: ExchangeController): void {
    this.upstream = c;
    super.onStart(c);
  }
  override onHeaders(head: ResponseHead): boolean {
    if (this.mode !== 'buffer') return this.mode === 'pass' ? super.onHeaders(head) : false;
    this.head = head;
    return true;
  }
  override onData(chunk: Buffer): boolean {
    if (this.mode === 'pass') return super.onData(chunk);
    if (this.mode === 'done') return false;
    this.size += chunk.length;
    this.chunks.push(chunk);
    if (this.size <= this.x.filter.maxBodyBytes) return true;
    const f = this.x.filter;
    f.onError('body_too_large');
    if (f.failOpen) {
      // Give up on the plugin for this response: send what we have and stream the rest.
      this.mode = 'pass';
      let ok = super.onHeaders(this.head!);
      for (const c of this.chunks.splice(0)) ok = super.onData(c);
      return ok;
    }
    this.mode = 'done';
    this.x.pluginStream.close();
    this.upstream.abort(new ProxyError('DOWNSTREAM_CLOSED', 'response too large for the plugin'));
    this.x.downstream.onError(pluginFailed(f.runner.name, `the response body exceeds maxBodyBytes (${f.maxBodyBytes})`));
    return false;
  }
  override onEnd(trailers: HeaderList | null): void {
    if (this.mode === 'pass') {
      super.onEnd(trailers);
      return;
    }
    if (this.mode === 'done') return;
    const head = this.head!;
    const body = Buffer.concat(this.chunks);
    this.chunks = [];
    void this.x.pluginStream.call({ hook: 'responseBody', request: headOf(this.x.request), status: head.status, headers: head.headers, body, trailers }).then((out) => {
      if (this.mode === 'done') return;
      this.mode = 'done';
      const f = this.x.filter;
      if (out.kind === 'reply') {
        this.x.pluginStream.close();
        sendLocal(this.x.downstream, out.status, out.headers, out.body, false);
        return;
      }
      if (out.kind === 'fail' && !f.failOpen) {
        super.onError(pluginFailed(f.runner.name, out.message));
        return;
      }
      const status = out.kind === 'continue' ? (out.status ?? head.status) : head.status;
      const headers = out.kind === 'continue' ? (out.headers ?? head.headers) : head.headers;
      const newBody = out.kind === 'continue' ? (out.body ?? body) : body;
      const newTrailers = out.kind === 'continue' && out.trailers !== undefined ? out.trailers : trailers;
      if (newBody !== body) {
        if (newTrailers === null) setHeader(headers, 'content-length', String(newBody.length));
        else removeHeader(headers, 'content-length');
      }
      super.onHeaders({ status, headers });
      if (newBody.length > 0) super.onData(newBody);
      super.onEnd(newTrailers);
    });
  }
  override onError(err: ProxyError): void {
    if (this.mode === 'done') return;
    this.mode = 'done';
    super.onError(err);
  }
}

/** Answer from the plugin. `start`: the handler has not been given a controller yet for this answer. */
function sendLocal(handler: ResponseHandler, status: number, headers: HeaderList, body: Buffer, start = true): void {
  if (start) handler.onStart(NOOP_CONTROLLER);
  handler.onHeaders({ status, headers });
  if (body.length > 0) handler.onData(body);
  handler.onEnd(null);
}

type Whole = { kind: 'ok'; body: Buffer; trailers: HeaderList | null } | { kind: 'too_large' } | { kind: 'error'; message: string };

/** Read a request body to its end, up to `max` bytes. */
function readWhole(source: BodySource, max: number): Promise<Whole> {
  if (source.contentLength !== null && source.contentLength > max) {
    source.destroy();
    return Promise.resolve({ kind: 'too_large' });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    source.start({
      onData(chunk) {
        if (over) return true;
        size += chunk.length;
        if (size > max) {
          over = true;
          source.destroy();
          resolve({ kind: 'too_large' });
          return true;
        }
        chunks.push(chunk);
        return true;
      },
      onEnd(trailers) {
        if (!over) resolve({ kind: 'ok', body: Buffer.concat(chunks), trailers });
      },
      onError(err) {
        if (!over) resolve({ kind: 'error', message: err.message });
      },
    });
  });
}
