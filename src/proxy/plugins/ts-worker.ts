// Inside a TypeScript plugin's worker thread (started by worker-runner.ts): runs
// the plugin's script in a fresh vm context (no require, process or file
// system; the worker is the containment, the context keeps the plugin away
// from the message port), answers hook calls, and reports the plugin's
// metric updates, logs and the thread's CPU time with each answer.
import { parentPort, workerData } from 'node:worker_threads';
import vm from 'node:vm';
import type { HttpCallResponse, LocalReply, PluginHeaders, PluginHooks, PluginHost, PluginRequest, PluginResponse } from './api.ts';
import type { HookInput, HookName, HookOutput, PluginRequestHead } from './runner.ts';
import type { ToWorker, WorkerInit } from './ts-protocol.ts';
import { cpuMicros, op, post, takeOps } from './worker-ops.ts';

const port = parentPort!;
const init = workerData as WorkerInit;





class Headers implements PluginHeaders {
  readonly list: string[];
  constructor(list: readonly string[] | null) {
    this.list = list ? [...list] : [];
  }
  get(name: string): string | undefined {
    const n = name.toLowerCase();
    for (let i = 0; i < this.list.length; i += 2) if (this.list[i] === n) return this.list[i + 1];
    return undefined;
  }
  getAll(name: string): string[] {
    const n = name.toLowerCase();
    const out: string[] = [];
    for (let i = 0; i < this.list.length; i += 2) if (this.list[i] === n) out.push(this.list[i + 1]!);
    return out;
  }
  has(name: string): boolean {
    return this.get(name) !== undefined;
  }
  set(name: string, value: string): void {
    this.remove(name);
    this.add(name, value);
  }
  add(name: string, value: string): void {
    const n = String(name).toLowerCase();
    const v = String(value);
    if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(n)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
    if (/[\r\n\0]/.test(v)) throw new TypeError(`invalid value for header ${n}`);
    this.list.push(n, v);
  }
  remove(name: string): void {
    const n = name.toLowerCase();
    let w = 0;
    for (let r = 0; r < this.list.length; r += 2) {
      if (this.list[r] !== n) {
        this.list[w++] = this.list[r]!;
        this.list[w++] = this.list[r + 1]!;
      }
    }
    this.list.length = w;
  }
  entries(): [string, string][] {
    const out: [string, string][] = [];
    for (let i = 0; i < this.list.length; i += 2) out.push([this.list[i]!, this.list[i + 1]!]);
    return out;
  }
}

class Reply implements LocalReply {
  readonly status: number;
  readonly headers: string[];
  readonly body: Buffer;
  constructor(status: number, body: string | Uint8Array | undefined, headers: Record<string, string> | undefined) {
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`respond: status must be an integer from 200 to 599 (got ${status})`);
    this.status = status;
    const h = new Headers(null);
    for (const [k, v] of Object.entries(headers ?? {})) h.add(k, v);
    this.body = toBuffer(body ?? '');
    if (!h.has('content-type') && this.body.length > 0) h.set('content-type', 'text/plain');
    h.set('content-length', String(this.body.length));
    this.headers = h.list;
  }
}

function toBuffer(b: string | Uint8Array): Buffer {
  return typeof b === 'string' ? Buffer.from(b) : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** Per-request state objects by stream (the runner's request id), dropped at 'end'. */
const states = new Map<number, Record<string, unknown>>();

function request(head: PluginRequestHead, stream: number): PluginRequest & { headers: Headers } {
  let state = states.get(stream);
  if (!state) states.set(stream, (state = {}));
  return {
    method: head.method,
    scheme: head.scheme,
    authority: head.authority,
    path: head.path,
    headers: new Headers(head.headers),
    state,
    respond: (status, body, headers) => new Reply(status, body, headers),
  };
}

function response(status: number, headers: readonly string[]): PluginResponse & { headers: Headers } {
  return { status, headers: new Headers(headers), respond: (s, body, h) => new Reply(s, body, h) };
}

function headOf(r: PluginRequest & { headers: Headers }): PluginRequestHead {
  for (const k of ['method', 'authority', 'path'] as const) {
    if (typeof r[k] !== 'string' || r[k] === '' || /[\s\0]/.test(r[k])) throw new TypeError(`request.${k} must be a non-empty string without spaces`);
  }
  if (!r.path.startsWith('/') && r.path !== '*') throw new TypeError('request.path must start with "/"');
  return { method: r.method, scheme: r.scheme, authority: r.authority, path: r.path, headers: r.headers.list };
}

const METRIC_NAME = /^[a-z_][a-z0-9_]*$/;
const defined = new Map<string, string>();
function metric(kind: 'counter' | 'gauge' | 'histogram', name: string, help: string | undefined, buckets?: number[]): void {
  if (!METRIC_NAME.test(name)) throw new TypeError(`metric name ${JSON.stringify(name)} must match [a-z_][a-z0-9_]*`);
  const was = defined.get(name);
  if (was !== undefined && was !== kind) throw new TypeError(`metric ${name} is already a ${was}`);
  if (was === undefined) {
    defined.set(name, kind);
    op({ op: 'def', kind, name, help: help ?? `Plugin metric ${name}.`, ...(buckets ? { buckets } : {}) });
  }
}

function finite(v: number, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`${what} must be a finite number`);
  return v;
}

let httpIds = 0;
const httpPending = new Map<number, { resolve: (r: HttpCallResponse) => void; reject: (e: Error) => void }>();

const host: PluginHost = {
  name: init.name,
  config: init.config,
  log: {
    debug: (msg) => op({ op: 'log', level: 'debug', msg: String(msg) }),
    info: (msg) => op({ op: 'log', level: 'info', msg: String(msg) }),
    warn: (msg) => op({ op: 'log', level: 'warn', msg: String(msg) }),
    error: (msg) => op({ op: 'log', level: 'error', msg: String(msg) }),
  },
  metrics: {
    counter(name, help) {
      metric('counter', name, help);
      return { inc: (n = 1) => op({ op: 'm', name, how: 'inc', v: finite(n, 'counter increment') }) };
    },
    gauge(name, help) {
      metric('gauge', name, help);
      return {
        set: (v) => op({ op: 'm', name, how: 'set', v: finite(v, 'gauge value') }),
        inc: (n = 1) => op({ op: 'm', name, how: 'inc', v: finite(n, 'gauge increment') }),
        dec: (n = 1) => op({ op: 'm', name, how: 'dec', v: finite(n, 'gauge decrement') }),
      };
    },
    histogram(name, help, buckets) {
      metric('histogram', name, help, buckets);
      return { observe: (v) => op({ op: 'm', name, how: 'observe', v: finite(v, 'observation') }) };
    },
  },
  httpCall(cluster, req) {
    const id = ++httpIds;
    const headers = new Headers(null);
    for (const [k, v] of Object.entries(req.headers ?? {})) headers.add(k, v);
    const body = req.body === undefined ? null : toBuffer(req.body);
    return new Promise((resolve, reject) => {
      httpPending.set(id, { resolve, reject });
      post({
        t: 'http', id, cluster: String(cluster), cpu: cpuMicros(), ops: takeOps(),
        req: { method: req.method ?? 'GET', path: req.path, authority: req.authority ?? cluster, headers: headers.list, body, timeoutMs: req.timeoutMs ?? 1000 },
      });
    });
  },
};

let factory: ((h: PluginHost) => PluginHooks) | undefined;
const log = (level: 'info' | 'error') => (...args: unknown[]) => op({ op: 'log', level, msg: args.map((a) => (typeof a === 'string' ? a : safeJson(a))).join(' ') });
const sandbox = {
  definePlugin(f: (h: PluginHost) => PluginHooks) {
    if (typeof f !== 'function') throw new TypeError('definePlugin: expects a function (host) => hooks');
    if (factory) throw new Error('definePlugin: called twice');
    factory = f;
  },
  console: { log: log('info'), info: log('info'), debug: log('info'), warn: log('error'), error: log('error') },
  TextEncoder, TextDecoder, URL, URLSearchParams, atob, btoa, structuredClone, crypto, setTimeout, clearTimeout, queueMicrotask,
};

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** Errors from the plugin's context are not this realm's Error instances. */
function errorMessage(err: unknown): string {
  if (typeof err === 'object' && err !== null && typeof (err as Error).message === 'string') {
    const name = typeof (err as Error).name === 'string' ? (err as Error).name : 'Error';
    return `${name}: ${(err as Error).message}`;
  }
  return `thrown: ${safeJson(err)}`;
}

let hooks: PluginHooks;
try {
  const context = vm.createContext(sandbox, { name: `plugin:${init.name}`, codeGeneration: { strings: false, wasm: false } });
  if (init.code.kind !== 'script') throw new Error('not a script');
  new vm.Script(init.code.source, { filename: `plugin:${init.name}` }).runInContext(context);
  if (!factory) throw new Error('the script did not call definePlugin(factory)');
  const made = factory(host);
  if (typeof made !== 'object' || made === null) throw new TypeError('the factory given to definePlugin must return an object of hooks');
  hooks = made;
  const names: HookName[] = [];
  if (typeof hooks.onRequestHeaders === 'function') names.push('requestHeaders');
  if (typeof hooks.onRequestBody === 'function' || typeof hooks.onRequestTrailers === 'function') names.push('requestBody');
  const resBody = typeof hooks.onResponseBody === 'function' || typeof hooks.onResponseTrailers === 'function';
  if (resBody) names.push('responseBody');
  else if (typeof hooks.onResponseHeaders === 'function') names.push('responseHeaders');
  post({ t: 'ready', hooks: names, cpu: cpuMicros(), ops: takeOps() });
} catch (err) {
  post({ t: 'initFail', message: errorMessage(err) });
  hooks = {};
}

// A rejection the plugin left unhandled must not end the worker (and with it every request in flight).
process.on('unhandledRejection', (err) => op({ op: 'log', level: 'error', msg: `unhandled rejection: ${errorMessage(err)}` }));

async function run(stream: number, input: HookInput): Promise<HookOutput> {
  const req = request(input.request, stream);
  switch (input.hook) {
    case 'requestHeaders': {
      const r = await hooks.onRequestHeaders!(req);
      if (r instanceof Reply) return { kind: 'reply', status: r.status, headers: r.headers, body: r.body };
      return { kind: 'continue', request: headOf(req) };
    }
    case 'requestBody': {
      let body: Buffer = Buffer.from(input.body.buffer, input.body.byteOffset, input.body.byteLength);
      if (hooks.onRequestBody) {
        const r = await hooks.onRequestBody(body, req);
        if (r instanceof Reply) return { kind: 'reply', status: r.status, headers: r.headers, body: r.body };
        if (typeof r === 'string' || ArrayBuffer.isView(r)) body = toBuffer(r as string | Uint8Array);
      }
      let trailers = input.trailers;
      if (hooks.onRequestTrailers && trailers !== null) {
        const t = new Headers(trailers);
        const r = await hooks.onRequestTrailers(t, req);
        if (r instanceof Reply) return { kind: 'reply', status: r.status, headers: r.headers, body: r.body };
        trailers = t.list;
      }
      return { kind: 'continue', request: headOf(req), body, trailers };
    }
    case 'responseHeaders': {
      const res = response(input.status, input.headers);
      const r = await hooks.onResponseHeaders!(res, req);
      if (r instanceof Reply) return { kind: 'reply', status: r.status, headers: r.headers, body: r.body };
      return { kind: 'continue', status: checkStatus(res.status), headers: res.headers.list };
    }
    case 'responseBody': {
      const res = response(input.status, input.headers);
      if (hooks.onResponseHeaders) {
        const r = await hooks.onResponseHeaders(res, req);
        if (r instanceof Reply) return { kind: 'reply', status: r.status, headers: r.headers, body: r.body };
      }
      let body: Buffer = Buffer.from(input.body.buffer, input.body.byteOffset, input.body.byteLength);
      if (hooks.onResponseBody) {
        const r = await hooks.onResponseBody(body, res, req);
        if (r instanceof Reply) return { kind: 'reply', status: r.status, headers: r.headers, body: r.body };
        if (typeof r === 'string' || ArrayBuffer.isView(r)) body = toBuffer(r as string | Uint8Array);
      }
      let trailers = input.trailers;
      if (hooks.onResponseTrailers && trailers !== null) {
        const t = new Headers(trailers);
        const r = await hooks.onResponseTrailers(t, res, req);
        if (r instanceof Reply) return { kind: 'reply', status: r.status, headers: r.headers, body: r.body };
        trailers = t.list;
      }
      return { kind: 'continue', status: checkStatus(res.status), headers: res.headers.list, body, trailers };
    }
  }
}

function checkStatus(s: number): number {
  if (!Number.isInteger(s) || s < 200 || s > 599) throw new RangeError(`response.status must be an integer from 200 to 599 (got ${s})`);
  return s;
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'call':
      run(m.stream, m.input).then(
        (out) => post({ t: 'ret', id: m.id, out, cpu: cpuMicros(), ops: takeOps() }),
        (err: unknown) => post({ t: 'ret', id: m.id, out: { kind: 'fail', reason: 'throw', message: errorMessage(err) }, cpu: cpuMicros(), ops: takeOps() }),
      );
      return;
    case 'http': {
      const p = httpPending.get(m.id);
      if (!p) return;
      httpPending.delete(m.id);
      if (m.error !== undefined) p.reject(new Error(m.error));
      else {
        const r = m.res!;
        const body = Buffer.from(r.body.buffer, r.body.byteOffset, r.body.byteLength);
        p.resolve({ status: r.status, headers: new Headers(r.headers), body, text: () => body.toString() });
      }
      return;
    }
    case 'ping':
      post({ t: 'pong', cpu: cpuMicros(), ops: takeOps() });
      return;
    case 'end':
      states.delete(m.stream);
      return;
  }
});
