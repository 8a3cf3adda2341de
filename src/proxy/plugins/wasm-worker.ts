// Inside a proxy-wasm plugin's worker thread (started by worker-runner.ts):
// the host side of the proxy-wasm ABI (v0.2.0 / v0.2.1, the one Envoy and
// Istio load; https://github.com/proxy-wasm/spec) on Node's WebAssembly.
//
//   root context 1        proxy_on_vm_start, proxy_on_configure, ticks,
//                         queue-ready and HTTP-call-response callbacks
//   one context per request (a "stream" of the runner): created at its first
//   hook, proxy_on_done / _log / _delete when the request ends
//
// A header callback that returns Pause (StopIteration) holds the hook call
// open until the module calls proxy_continue_stream or
// proxy_send_local_response (typically from an HTTP call's response): the
// proxy's request waits meanwhile, as in Envoy. Shared data and shared
// queues live in this worker, so they are shared by every context of the
// plugin (not across plugins). A trap (panic, abort) fails the call and ends
// the worker: a wasm instance that trapped is not reused; the runner starts
// a fresh one. Bodies and trailers reach the module whole (one
// proxy_on_*_body call with end_of_stream) when the filter's config asks for
// them (`bodies: true`): the proxy then buffers each body up to maxBodyBytes.
import { parentPort, workerData } from 'node:worker_threads';
import { randomFillSync } from 'node:crypto';
import type { HookInput, HookName, HookOutput, PluginRequestHead } from './runner.ts';
import type { ToWorker, WorkerInit } from './ts-protocol.ts';
import { cpuMicros, op, post, takeOps } from './worker-ops.ts';

const port = parentPort!;
const init = workerData as WorkerInit;

const OK = 0, NOT_FOUND = 1, BAD_ARGUMENT = 2, EMPTY = 7, CAS_MISMATCH = 8, UNIMPLEMENTED = 12;
const ROOT = 1;
const MAP = { REQUEST_HEADERS: 0, REQUEST_TRAILERS: 1, RESPONSE_HEADERS: 2, RESPONSE_TRAILERS: 3, HTTP_CALL_RESPONSE_HEADERS: 6, HTTP_CALL_RESPONSE_TRAILERS: 7 } as const;
const BUFFER = { HTTP_REQUEST_BODY: 0, HTTP_RESPONSE_BODY: 1, HTTP_CALL_RESPONSE_BODY: 4, VM_CONFIGURATION: 6, PLUGIN_CONFIGURATION: 7 } as const;

function bufferOf(type: number): Buffer | undefined {
  switch (type) {
    case BUFFER.HTTP_REQUEST_BODY: return current?.requestBody ?? undefined;
    case BUFFER.HTTP_RESPONSE_BODY: return current?.responseBody ?? undefined;
    case BUFFER.HTTP_CALL_RESPONSE_BODY: return httpResponse?.body;
    case BUFFER.VM_CONFIGURATION: return Buffer.alloc(0);
    case BUFFER.PLUGIN_CONFIGURATION: return configBytes;
    default: return undefined;
  }
}
const LEVELS = ['debug', 'debug', 'info', 'warn', 'error', 'error'] as const;
const LOG_LEVEL_INFO = 2;


class Trap extends Error {}

interface Stream {
  readonly ctx: number;
  request: string[] | null;
  response: string[] | null;
  requestTrailers: string[] | null;
  responseTrailers: string[] | null;
  requestBody: Buffer | null;
  responseBody: Buffer | null;
  reply: { status: number; headers: string[]; body: Buffer } | null;
  /** A callback returned Pause: resolved by proxy_continue_stream or a local reply. */
  paused: { phase: 'request' | 'response'; resolve: () => void } | null;
}

type Exports = Record<string, unknown> & { memory: WebAssembly.Memory };
let ex: Exports;
const streams = new Map<number, Stream>();
const byCtx = new Map<number, Stream>();
let nextCtx = ROOT + 1;
/** The context host calls act on: the stream whose callback runs, or one the module chose. */
let current: Stream | null = null;
let httpResponse: { headers: string[]; body: Buffer; trailers: string[] } | null = null;
const sharedData = new Map<string, { value: Buffer; cas: number }>();
let casCounter = 0;
const queues = new Map<number, Buffer[]>();
const queueIds = new Map<string, number>();
const metrics = new Map<number, { name: string; kind: 'counter' | 'gauge' | 'histogram'; value: number }>();
let tick: NodeJS.Timeout | null = null;
let httpIds = 0;
const configBytes = Buffer.from(init.config);

// ---- memory ----
const view = () => new DataView(ex.memory.buffer);
const bytes = (ptr: number, len: number): Buffer => {
  if (ptr + len > ex.memory.buffer.byteLength) throw new Trap('invalid memory access');
  return Buffer.from(ex.memory.buffer, ptr, len);
};
const str = (ptr: number, len: number): string => bytes(ptr, len).toString('utf8');
function alloc(size: number): number {
  const f = (ex.proxy_on_memory_allocate ?? ex.malloc) as ((n: number) => number) | undefined;
  if (!f) throw new Trap('the module exports neither proxy_on_memory_allocate nor malloc');
  const p = f(size);
  if (size > 0 && p === 0) throw new Trap('the module could not allocate memory');
  return p;
}
/** Copy `data` into the module's memory and store pointer and size at the return addresses. */
function give(data: Buffer, retPtr: number, retSize: number): number {
  const p = alloc(data.length);
  if (data.length > 0) Buffer.from(ex.memory.buffer, p, data.length).set(data);
  const v = view();
  v.setUint32(retPtr, p, true);
  v.setUint32(retSize, data.length, true);
  return OK;
}

// ---- header maps ----
function serialize(list: readonly string[]): Buffer {
  const n = list.length / 2;
  const parts = list.map((s) => Buffer.from(s));
  const head = Buffer.alloc(4 + n * 8);
  head.writeUInt32LE(n, 0);
  for (let i = 0; i < n; i++) {
    head.writeUInt32LE(parts[2 * i]!.length, 4 + i * 8);
    head.writeUInt32LE(parts[2 * i + 1]!.length, 8 + i * 8);
  }
  const out: Buffer[] = [head];
  for (const p of parts) out.push(p, Buffer.from([0]));
  return Buffer.concat(out);
}
function deserialize(b: Buffer): string[] {
  if (b.length < 4) return [];
  const n = b.readUInt32LE(0);
  const out: string[] = [];
  let off = 4 + n * 8;
  for (let i = 0; i < n; i++) {
    const kl = b.readUInt32LE(4 + i * 8);
    const vl = b.readUInt32LE(8 + i * 8);
    out.push(b.subarray(off, off + kl).toString().toLowerCase());
    off += kl + 1;
    out.push(b.subarray(off, off + vl).toString());
    off += vl + 1;
  }
  return out;
}
function mapOf(type: number): string[] | null {
  switch (type) {
    case MAP.REQUEST_HEADERS: return current?.request ?? null;
    case MAP.RESPONSE_HEADERS: return current?.response ?? null;
    case MAP.REQUEST_TRAILERS: return current?.requestTrailers ?? null;
    case MAP.RESPONSE_TRAILERS: return current?.responseTrailers ?? null;
    case MAP.HTTP_CALL_RESPONSE_HEADERS: return httpResponse?.headers ?? null;
    case MAP.HTTP_CALL_RESPONSE_TRAILERS: return httpResponse?.trailers ?? null;
    default: return null;
  }
}
function setMap(type: number, list: string[]): boolean {
  if (!current) return false;
  if (type === MAP.REQUEST_HEADERS) current.request = list;
  else if (type === MAP.RESPONSE_HEADERS) current.response = list;
  else if (type === MAP.REQUEST_TRAILERS) current.requestTrailers = list;
  else if (type === MAP.RESPONSE_TRAILERS) current.responseTrailers = list;
  else return false;
  return true;
}
function removeAll(list: string[], name: string): void {
  let w = 0;
  for (let r = 0; r < list.length; r += 2) {
    if (list[r] !== name) {
      list[w++] = list[r]!;
      list[w++] = list[r + 1]!;
    }
  }
  list.length = w;
}

// ---- the host functions ----
const env: Record<string, (...a: never[]) => number | bigint | void> = {
  proxy_log(level: number, ptr: number, len: number) {
    // The proxy logs at info: trace and debug lines (SDKs write several per request) are dropped here.
    if (level >= LOG_LEVEL_INFO) op({ op: 'log', level: LEVELS[level] ?? 'info', msg: str(ptr, len) });
    return OK;
  },
  proxy_get_log_level(ret: number) {
    view().setUint32(ret, LOG_LEVEL_INFO, true);
    return OK;
  },
  proxy_get_current_time_nanoseconds(ret: number) {
    view().setBigUint64(ret, BigInt(Date.now()) * 1_000_000n, true);
    return OK;
  },
  proxy_set_tick_period_milliseconds(ms: number) {
    if (tick) clearInterval(tick);
    tick = ms > 0 ? setInterval(() => guarded(() => call('proxy_on_tick', ROOT)), ms) : null;
    return OK;
  },
  proxy_get_buffer_bytes(type: number, start: number, max: number, retPtr: number, retSize: number) {
    const b = bufferOf(type);
    if (!b) return NOT_FOUND;
    // i32 parameters arrive signed: SDKs pass usize::MAX / 0xffffffff for "all".
    const from = start >>> 0;
    return give(b.subarray(from, from + (max >>> 0)), retPtr, retSize);
  },
  proxy_get_buffer_status(type: number, lenPtr: number, flagsPtr: number) {
    const b = bufferOf(type);
    if (!b) return NOT_FOUND;
    view().setUint32(lenPtr, b.length, true);
    view().setUint32(flagsPtr, 1, true);
    return OK;
  },
  proxy_set_buffer_bytes(type: number, start: number, size: number, dp: number, dl: number) {
    const s = current;
    const b = bufferOf(type);
    if (!s || !b || (type !== BUFFER.HTTP_REQUEST_BODY && type !== BUFFER.HTTP_RESPONSE_BODY)) return BAD_ARGUMENT;
    // Replace [start, start + size) with the data (Envoy: start 0 and size >= length replace it all).
    const from = Math.min(start >>> 0, b.length);
    const to = Math.min(from + (size >>> 0), b.length);
    const next = Buffer.concat([b.subarray(0, from), Buffer.from(bytes(dp, dl)), b.subarray(to)]);
    if (type === BUFFER.HTTP_REQUEST_BODY) s.requestBody = next;
    else s.responseBody = next;
    return OK;
  },
  proxy_get_header_map_pairs(type: number, retPtr: number, retSize: number) {
    const m = mapOf(type);
    if (!m) return NOT_FOUND;
    return give(serialize(m), retPtr, retSize);
  },
  proxy_set_header_map_pairs(type: number, ptr: number, len: number) {
    return setMap(type, deserialize(bytes(ptr, len))) ? OK : BAD_ARGUMENT;
  },
  proxy_get_header_map_size(type: number, ret: number) {
    const m = mapOf(type);
    if (!m) return NOT_FOUND;
    view().setUint32(ret, serialize(m).length, true);
    return OK;
  },
  proxy_get_header_map_value(type: number, kp: number, kl: number, retPtr: number, retSize: number) {
    const m = mapOf(type);
    if (!m) return NOT_FOUND;
    const k = str(kp, kl).toLowerCase();
    for (let i = 0; i < m.length; i += 2) if (m[i] === k) return give(Buffer.from(m[i + 1]!), retPtr, retSize);
    return NOT_FOUND;
  },
  proxy_add_header_map_value(type: number, kp: number, kl: number, vp: number, vl: number) {
    const m = mapOf(type);
    if (!m || type >= MAP.HTTP_CALL_RESPONSE_HEADERS) return BAD_ARGUMENT;
    m.push(str(kp, kl).toLowerCase(), str(vp, vl));
    return OK;
  },
  proxy_replace_header_map_value(type: number, kp: number, kl: number, vp: number, vl: number) {
    const m = mapOf(type);
    if (!m || type >= MAP.HTTP_CALL_RESPONSE_HEADERS) return BAD_ARGUMENT;
    const k = str(kp, kl).toLowerCase();
    const v = str(vp, vl);
    const i = m.indexOf(k);
    if (k.startsWith(':') && i >= 0 && i % 2 === 0) m[i + 1] = v;
    else {
      removeAll(m, k);
      m.push(k, v);
    }
    return OK;
  },
  proxy_remove_header_map_value(type: number, kp: number, kl: number) {
    const m = mapOf(type);
    if (!m || type >= MAP.HTTP_CALL_RESPONSE_HEADERS) return BAD_ARGUMENT;
    removeAll(m, str(kp, kl).toLowerCase());
    return OK;
  },
  proxy_get_property(pp: number, pl: number, retPtr: number, retSize: number) {
    const path = str(pp, pl).split('\u0000').filter((s) => s !== '').join('.');
    const v = property(path);
    return v === undefined ? NOT_FOUND : give(Buffer.from(v), retPtr, retSize);
  },
  proxy_set_property() {
    return UNIMPLEMENTED;
  },
  proxy_continue_stream(type: number) {
    return resume(type === 1 ? 'response' : 'request') ? OK : BAD_ARGUMENT;
  },
  proxy_continue_request() {
    return resume('request') ? OK : BAD_ARGUMENT;
  },
  proxy_continue_response() {
    return resume('response') ? OK : BAD_ARGUMENT;
  },
  proxy_close_stream() {
    return UNIMPLEMENTED;
  },
  proxy_send_local_response(status: number, _dp: number, _dl: number, bp: number, bl: number, hp: number, hl: number) {
    const s = current;
    if (!s) return BAD_ARGUMENT;
    const headers = hl > 0 ? deserialize(Buffer.from(bytes(hp, hl))) : [];
    const body = Buffer.from(bytes(bp, bl));
    removeAll(headers, 'content-length');
    headers.push('content-length', String(body.length));
    if (body.length > 0 && !headers.includes('content-type')) headers.push('content-type', 'text/plain');
    s.reply = { status, headers, body };
    if (s.paused) {
      const p = s.paused;
      s.paused = null;
      queueMicrotask(p.resolve);
    }
    return OK;
  },
  proxy_http_call(up: number, ul: number, hp: number, hl: number, bp: number, bl: number, _tp: number, _tl: number, timeout: number, retId: number) {
    const cluster = str(up, ul);
    const headers = deserialize(Buffer.from(bytes(hp, hl)));
    const pseudo = (n: string) => {
      const i = headers.indexOf(n);
      return i >= 0 && i % 2 === 0 ? headers[i + 1] : undefined;
    };
    const method = pseudo(':method');
    const path = pseudo(':path');
    const authority = pseudo(':authority');
    if (!method || !path || !authority) return BAD_ARGUMENT;
    const rest: string[] = [];
    for (let i = 0; i < headers.length; i += 2) if (!headers[i]!.startsWith(':')) rest.push(headers[i]!, headers[i + 1]!);
    const id = ++httpIds;
    view().setUint32(retId, id, true);
    post({ t: 'http', id, cluster, cpu: cpuMicros(), ops: takeOps(), req: { method, path, authority, headers: rest, body: bl > 0 ? Buffer.from(bytes(bp, bl)) : null, timeoutMs: timeout || 1000 } });
    return OK;
  },
  proxy_dispatch_http_call(...a: never[]) {
    return (env.proxy_http_call as (...x: never[]) => number)(...a);
  },
  proxy_define_metric(type: number, np: number, nl: number, ret: number) {
    const kind = (['counter', 'gauge', 'histogram'] as const)[type];
    if (!kind) return BAD_ARGUMENT;
    const name = str(np, nl).toLowerCase().replace(/[^a-z0-9_]/g, '_').replace(/^([0-9])/, '_$1');
    let id = 0;
    for (const [k, m] of metrics) if (m.name === name && m.kind === kind) id = k;
    if (id === 0) {
      id = metrics.size + 1;
      metrics.set(id, { name, kind, value: 0 });
      op({ op: 'def', kind, name, help: `proxy-wasm metric ${str(np, nl)}.` });
    }
    view().setUint32(ret, id, true);
    return OK;
  },
  proxy_increment_metric(id: number, delta: bigint) {
    const m = metrics.get(id);
    if (!m) return NOT_FOUND;
    const d = Number(delta);
    if (m.kind === 'counter' && d < 0) return BAD_ARGUMENT;
    if (m.kind === 'histogram') return BAD_ARGUMENT;
    m.value += d;
    op({ op: 'm', name: m.name, how: 'inc', v: d });
    return OK;
  },
  proxy_record_metric(id: number, value: bigint) {
    const m = metrics.get(id);
    if (!m) return NOT_FOUND;
    const v = Number(BigInt.asUintN(64, value));
    if (m.kind === 'counter') return BAD_ARGUMENT;
    m.value = v;
    op({ op: 'm', name: m.name, how: m.kind === 'gauge' ? 'set' : 'observe', v });
    return OK;
  },
  proxy_get_metric(id: number, ret: number) {
    const m = metrics.get(id);
    if (!m) return NOT_FOUND;
    view().setBigUint64(ret, BigInt(Math.max(0, Math.round(m.value))), true);
    return OK;
  },
  proxy_get_shared_data(kp: number, kl: number, retPtr: number, retSize: number, retCas: number) {
    const e = sharedData.get(str(kp, kl));
    if (!e) return NOT_FOUND;
    give(e.value, retPtr, retSize);
    view().setUint32(retCas, e.cas, true);
    return OK;
  },
  proxy_set_shared_data(kp: number, kl: number, vp: number, vl: number, cas: number) {
    const k = str(kp, kl);
    const e = sharedData.get(k);
    if (cas !== 0 && e && e.cas !== cas) return CAS_MISMATCH;
    sharedData.set(k, { value: Buffer.from(bytes(vp, vl)), cas: (casCounter = (casCounter % 0xfffffffe) + 1) });
    return OK;
  },
  proxy_register_shared_queue(np: number, nl: number, ret: number) {
    const name = str(np, nl);
    let id = queueIds.get(name);
    if (id === undefined) {
      id = queueIds.size + 1;
      queueIds.set(name, id);
      queues.set(id, []);
    }
    view().setUint32(ret, id, true);
    return OK;
  },
  proxy_resolve_shared_queue(_vp: number, _vl: number, np: number, nl: number, ret: number) {
    const id = queueIds.get(str(np, nl));
    if (id === undefined) return NOT_FOUND;
    view().setUint32(ret, id, true);
    return OK;
  },
  proxy_enqueue_shared_queue(id: number, vp: number, vl: number) {
    const q = queues.get(id);
    if (!q) return NOT_FOUND;
    q.push(Buffer.from(bytes(vp, vl)));
    setImmediate(() => guarded(() => call('proxy_on_queue_ready', ROOT, id)));
    return OK;
  },
  proxy_dequeue_shared_queue(id: number, retPtr: number, retSize: number) {
    const q = queues.get(id);
    if (!q) return NOT_FOUND;
    const v = q.shift();
    if (!v) return EMPTY;
    return give(v, retPtr, retSize);
  },
  proxy_set_effective_context(ctx: number) {
    if (ctx === ROOT) return OK;
    const s = byCtx.get(ctx);
    if (!s) return BAD_ARGUMENT;
    current = s;
    return OK;
  },
  proxy_done() {
    return OK;
  },
  proxy_get_status(retCode: number, retPtr: number, retSize: number) {
    view().setUint32(retCode, 0, true);
    return give(Buffer.alloc(0), retPtr, retSize);
  },
};

/** WASI, as much as the SDKs' runtimes need: stdout/stderr to the log, clocks, randomness, empty args and environment. */
const wasi: Record<string, (...a: never[]) => number | void> = {
  fd_write(fd: number, iovs: number, n: number, retWritten: number) {
    const v = view();
    let total = 0;
    const parts: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const p = v.getUint32(iovs + i * 8, true);
      const l = v.getUint32(iovs + i * 8 + 4, true);
      parts.push(Buffer.from(bytes(p, l)));
      total += l;
    }
    if (fd === 1 || fd === 2) {
      const text = Buffer.concat(parts).toString().trimEnd();
      if (text) op({ op: 'log', level: fd === 2 ? 'error' : 'info', msg: text });
    } else return 8; // BADF
    v.setUint32(retWritten, total, true);
    return 0;
  },
  clock_time_get(id: number, _precision: bigint, ret: number) {
    const ns = id === 0 ? BigInt(Date.now()) * 1_000_000n : process.hrtime.bigint();
    view().setBigUint64(ret, ns, true);
    return 0;
  },
  random_get(ptr: number, len: number) {
    randomFillSync(bytes(ptr, len));
    return 0;
  },
  environ_sizes_get(c: number, s: number) {
    view().setUint32(c, 0, true);
    view().setUint32(s, 0, true);
    return 0;
  },
  environ_get() {
    return 0;
  },
  args_sizes_get(c: number, s: number) {
    view().setUint32(c, 0, true);
    view().setUint32(s, 0, true);
    return 0;
  },
  args_get() {
    return 0;
  },
  proc_exit(code: number) {
    throw new Trap(`proc_exit(${code})`);
  },
  sched_yield() {
    return 0;
  },
};

function property(path: string): string | undefined {
  switch (path) {
    case 'plugin_name': return init.name;
    case 'plugin_root_id': return init.rootId;
    case 'plugin_vm_id': return init.vmId;
    default: return undefined;
  }
}

function imports(module: WebAssembly.Module): WebAssembly.Imports {
  const out: Record<string, Record<string, WebAssembly.ImportValue>> = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.kind !== 'function') continue;
    const table = imp.module === 'env' ? env : imp.module === 'wasi_snapshot_preview1' || imp.module === 'wasi_unstable' ? wasi : undefined;
    const f = table?.[imp.name];
    // Anything else the module imports answers "unimplemented" (WASI: ENOSYS) if ever called.
    const fallback = imp.module === 'env' ? () => UNIMPLEMENTED : () => 52;
    (out[imp.module] ??= {})[imp.name] = (f ?? fallback) as WebAssembly.ImportValue;
  }
  return out;
}

function call(name: string, ...args: number[]): number {
  const f = ex[name] as ((...a: number[]) => number | undefined) | undefined;
  if (typeof f !== 'function') return 0;
  return f(...args) ?? 0;
}

/** Run a callback outside a hook call (tick, queue, HTTP response); a trap ends the worker. */
function guarded(f: () => void): void {
  try {
    f();
  } catch (err) {
    trapped(err);
  }
}

function trapped(err: unknown): never {
  const msg = `the module trapped: ${(err as Error)?.message ?? String(err)}`;
  post({ t: 'ops', cpu: cpuMicros(), ops: [...takeOps(), { op: 'log', level: 'error', msg }] });
  // A trapped instance is not reused: exit, and the runner starts a fresh one.
  setImmediate(() => process.exit(70));
  throw new Trap(msg);
}

// ---- hooks ----
function toMap(h: PluginRequestHead): string[] {
  return [':method', h.method, ':scheme', h.scheme, ':authority', h.authority, ':path', h.path, ...h.headers];
}
function fromMap(m: string[], was: PluginRequestHead): PluginRequestHead {
  const head = { ...was, headers: [] as string[] };
  for (let i = 0; i < m.length; i += 2) {
    const k = m[i]!;
    const v = m[i + 1]!;
    if (k === ':method') head.method = v;
    else if (k === ':authority') head.authority = v;
    else if (k === ':path') head.path = v;
    else if (k === ':scheme') continue;
    else if (k.startsWith(':')) continue;
    else head.headers.push(k, v);
  }
  return head;
}

function streamOf(id: number): Stream {
  let s = streams.get(id);
  if (!s) {
    s = { ctx: nextCtx++, request: null, response: null, requestTrailers: null, responseTrailers: null, requestBody: null, responseBody: null, reply: null, paused: null };
    streams.set(id, s);
    byCtx.set(s.ctx, s);
    current = s;
    call('proxy_on_context_create', s.ctx, ROOT);
  }
  return s;
}

/** proxy_continue_stream: a paused phase of the current context goes on. */
function resume(phase: 'request' | 'response'): boolean {
  const s = current;
  if (!s?.paused || s.paused.phase !== phase) return false;
  const p = s.paused;
  s.paused = null;
  // Goes on after the callback that called us returns, with the maps as they are then.
  queueMicrotask(p.resolve);
  return true;
}

/** One callback's verdict: go on, or stop because the module answered. Waits while it paused. */
async function step(s: Stream, phase: 'request' | 'response', action: number): Promise<'next' | 'reply'> {
  if (s.reply) return 'reply';
  if (action !== 0) {
    await new Promise<void>((resolve) => (s.paused = { phase, resolve }));
    current = s;
  }
  return s.reply ? 'reply' : 'next';
}

function responseOut(s: Stream, input: { status: number }): { status: number; headers: string[] } {
  const m = s.response!;
  const i = m.indexOf(':status');
  const status = i >= 0 && i % 2 === 0 ? Number(m[i + 1]) : input.status;
  const headers: string[] = [];
  for (let j = 0; j < m.length; j += 2) if (!m[j]!.startsWith(':')) headers.push(m[j]!, m[j + 1]!);
  return { status: Number.isInteger(status) && status >= 200 && status <= 599 ? status : input.status, headers };
}

async function run(stream: number, input: HookInput): Promise<HookOutput> {
  const s = streamOf(stream);
  current = s;
  const reply = (): HookOutput => ({ kind: 'reply', ...s.reply! });
  switch (input.hook) {
    case 'requestHeaders': {
      s.request = toMap(input.request);
      if ((await step(s, 'request', call('proxy_on_request_headers', s.ctx, s.request.length / 2, 0))) === 'reply') return reply();
      return { kind: 'continue', request: fromMap(s.request, input.request) };
    }
    case 'requestBody': {
      s.request ??= toMap(input.request);
      s.requestBody = Buffer.from(input.body.buffer, input.body.byteOffset, input.body.byteLength);
      s.requestTrailers = input.trailers ? [...input.trailers] : null;
      if ((await step(s, 'request', call('proxy_on_request_body', s.ctx, s.requestBody.length, 1))) === 'reply') return reply();
      if (s.requestTrailers && (await step(s, 'request', call('proxy_on_request_trailers', s.ctx, s.requestTrailers.length / 2))) === 'reply') return reply();
      return { kind: 'continue', request: fromMap(s.request, input.request), body: s.requestBody, trailers: s.requestTrailers };
    }
    case 'responseHeaders': {
      s.request ??= toMap(input.request);
      s.response = [':status', String(input.status), ...input.headers];
      if ((await step(s, 'response', call('proxy_on_response_headers', s.ctx, s.response.length / 2, 0))) === 'reply') return reply();
      return { kind: 'continue', ...responseOut(s, input) };
    }
    case 'responseBody': {
      s.request ??= toMap(input.request);
      s.response = [':status', String(input.status), ...input.headers];
      s.responseBody = Buffer.from(input.body.buffer, input.body.byteOffset, input.body.byteLength);
      s.responseTrailers = input.trailers ? [...input.trailers] : null;
      if ((await step(s, 'response', call('proxy_on_response_headers', s.ctx, s.response.length / 2, 0))) === 'reply') return reply();
      if ((await step(s, 'response', call('proxy_on_response_body', s.ctx, s.responseBody.length, 1))) === 'reply') return reply();
      if (s.responseTrailers && (await step(s, 'response', call('proxy_on_response_trailers', s.ctx, s.responseTrailers.length / 2))) === 'reply') return reply();
      return { kind: 'continue', ...responseOut(s, input), body: s.responseBody, trailers: s.responseTrailers };
    }
  }
}

function end(stream: number): void {
  const s = streams.get(stream);
  if (!s) return;
  streams.delete(stream);
  current = s;
  guarded(() => {
    call('proxy_on_done', s.ctx);
    call('proxy_on_log', s.ctx);
    call('proxy_on_delete', s.ctx);
  });
  byCtx.delete(s.ctx);
  if (current === s) current = null;
}

function onHttpResponse(id: number, res: { status: number; headers: string[]; body: Uint8Array } | undefined): void {
  httpResponse = res
    ? { headers: [':status', String(res.status), ...res.headers], body: Buffer.from(res.body.buffer, res.body.byteOffset, res.body.byteLength), trailers: [] }
    : { headers: [], body: Buffer.alloc(0), trailers: [] };
  const n = httpResponse.headers.length / 2;
  guarded(() => call('proxy_on_http_call_response', ROOT, id, n, httpResponse!.body.length, 0));
  httpResponse = null;
}

// ---- start ----
try {
  if (init.code.kind !== 'wasm') throw new Error('not a wasm module');
  const module = new WebAssembly.Module(new Uint8Array(init.code.bytes));
  const exportNames = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
  if (![...exportNames].some((n) => n.startsWith('proxy_abi_version_0_'))) throw new Error('not a proxy-wasm module (no proxy_abi_version_0_* export)');
  if (!exportNames.has('proxy_abi_version_0_2_0') && !exportNames.has('proxy_abi_version_0_2_1')) throw new Error('unsupported proxy-wasm ABI (supported: 0.2.0, 0.2.1)');
  const instance = new WebAssembly.Instance(module, imports(module));
  ex = instance.exports as Exports;
  if (typeof ex._initialize === 'function') (ex._initialize as () => void)();
  else if (typeof ex._start === 'function') (ex._start as () => void)();
  call('proxy_on_context_create', ROOT, 0);
  if (call('proxy_on_vm_start', ROOT, 0) === 0 && exportNames.has('proxy_on_vm_start')) throw new Error('proxy_on_vm_start refused to start');
  if (call('proxy_on_configure', ROOT, configBytes.length) === 0 && exportNames.has('proxy_on_configure')) throw new Error('proxy_on_configure rejected the configuration');
  const hooks: HookName[] = [];
  if (exportNames.has('proxy_on_request_headers')) hooks.push('requestHeaders');
  // Bodies only when the filter config asks (vmConfig.configuration bodies: true): SDKs export every
  // callback, and delivering bodies means buffering each one whole (up to maxBodyBytes).
  if (init.bodies && exportNames.has('proxy_on_request_body')) hooks.push('requestBody');
  if (init.bodies && exportNames.has('proxy_on_response_body')) hooks.push('responseBody');
  else if (exportNames.has('proxy_on_response_headers')) hooks.push('responseHeaders');
  post({ t: 'ready', hooks, cpu: cpuMicros(), ops: takeOps() });
} catch (err) {
  const logged = takeOps().flatMap((o) => (o.op === 'log' ? [(o as { msg: string }).msg] : []));
  post({ t: 'initFail', message: `${(err as Error).message}${logged.length ? ` (log: ${logged.join(' | ')})` : ''}` });
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'call': {
      run(m.stream, m.input).then(
        (out) => post({ t: 'ret', id: m.id, out, cpu: cpuMicros(), ops: takeOps() }),
        (err: unknown) => {
          post({ t: 'ret', id: m.id, out: { kind: 'fail', reason: 'throw', message: `the module trapped: ${(err as Error)?.message ?? String(err)}` }, cpu: cpuMicros(), ops: takeOps() });
          setImmediate(() => process.exit(70));
        },
      );
      return;
    }
    case 'end':
      end(m.stream);
      return;
    case 'http':
      onHttpResponse(m.id, m.error === undefined ? m.res : undefined);
      return;
    case 'ping':
      post({ t: 'pong', cpu: cpuMicros(), ops: takeOps() });
      return;
  }
});
