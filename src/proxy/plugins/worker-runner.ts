// A plugin run in its own worker thread: a TypeScript plugin (ts-worker.ts)
// or a proxy-wasm module (wasm-worker.ts); both speak ts-protocol.ts.
//
// Why a worker and not node:vm's `timeout` on the proxy's thread: a vm call
// with a timeout starts a watchdog thread per call (measured ~125 us per
// call on the shared test machine, against ~25 us for a worker round trip),
// and it cannot stop a loop that starts after an `await`. A worker contains
// every failure the same way:
//   throw / rejection   the hook's answer is `fail: throw`
//   missed deadline     the call is answered `fail: timeout` at hookTimeoutMs;
//                       the worker is then pinged, and one that does not
//                       answer within another hookTimeoutMs (a runaway loop)
//                       is terminated and started again
//   crash / out of heap the worker's exit fails its calls `fail: crash`; it is
//                       started again (at most once a second)
// The proxy's thread never runs plugin code, so none of this stalls traffic
// that does not go through the plugin.
import { Worker } from 'node:worker_threads';
import type { Dispatch, RequestContext } from '../http/exchange.ts';
import type { PluginSpec } from '../config/envoy-wasm.ts';
import type { FailReason, HookInput, HookName, HookOutput, PluginRunner, PluginStream } from './runner.ts';
import type { Op, ToMain, ToWorker, WorkerInit } from './ts-protocol.ts';
import { httpCall } from './http-call.ts';
import type { PluginMetrics } from './plugin-metrics.ts';

const WORKER_URLS = { typescript: new URL('./ts-worker.ts', import.meta.url), wasm: new URL('./wasm-worker.ts', import.meta.url) };
const START_TIMEOUT_MS = 10_000;
const RESTART_MIN_INTERVAL_MS = 1_000;

export interface WorkerRunnerDeps {
  readonly metrics: PluginMetrics;
  readonly log: (event: string, fields?: Record<string, unknown>) => void;
  /** A cluster's dispatch in the active config, for httpCall. */
  readonly cluster: (name: string) => Dispatch | undefined;
}

interface Pending {
  readonly resolve: (o: HookOutput) => void;
  readonly timer: NodeJS.Timeout;
}

const HTTP_CALL_CTX: Pick<RequestContext, 'listener' | 'direction' | 'downstream'> = {
  listener: 'plugin',
  direction: 'outbound',
  downstream: { remoteAddress: '', remotePort: 0, localAddress: '', localPort: 0 },
};

/** Start the plugin; resolves once its code has loaded and said which hooks it has. */
export async function startWorkerRunner(spec: PluginSpec, code: WorkerInit['code'], deps: WorkerRunnerDeps): Promise<{ ok: true; runner: PluginRunner } | { ok: false; error: string }> {
  const r = new WorkerRunner(spec, { name: spec.name, code, config: spec.configuration, rootId: spec.rootId, vmId: spec.vmId, bodies: spec.bodies }, deps);
  const started = await r.start();
  if (!started.ok) {
    r.close();
    return started;
  }
  return { ok: true, runner: r };
}

class WorkerRunner implements PluginRunner {
  readonly name: string;
  hooks: ReadonlySet<HookName> = new Set();
  private readonly spec: PluginSpec;
  private readonly init: WorkerInit;
  private readonly deps: WorkerRunnerDeps;
  private worker!: Worker;
  private generation = 0;
  private nextId = 0;
  private nextStream = 0;
  private readonly pending = new Map<number, Pending>();
  private lastCpu = 0;
  private probing: NodeJS.Timeout | null = null;
  private lastStart = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private openStreams = 0;
  private retiring = false;
  private closed = false;
  private onReady: ((r: { ok: true } | { ok: false; error: string }) => void) | null = null;

  constructor(spec: PluginSpec, init: WorkerInit, deps: WorkerRunnerDeps) {
    this.name = spec.name;
    this.spec = spec;
    this.init = init;
    this.deps = deps;
  }

  start(): Promise<{ ok: true } | { ok: false; error: string }> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish({ ok: false, error: `did not start within ${START_TIMEOUT_MS} ms` }), START_TIMEOUT_MS);
      const finish = (r: { ok: true } | { ok: false; error: string }) => {
        clearTimeout(timer);
        this.onReady = null;
        resolve(r);
      };
      this.onReady = finish;
      this.spawn();
    });
  }

  private spawn(): void {
    const gen = ++this.generation;
    this.lastStart = performance.now();
    this.lastCpu = 0;
    const w = new Worker(WORKER_URLS[this.spec.runtime], {
      workerData: this.init,
      resourceLimits: { maxOldGenerationSizeMb: this.spec.maxMemoryMb, maxYoungGenerationSizeMb: Math.max(4, Math.floor(this.spec.maxMemoryMb / 8)) },
      stdout: true,
      stderr: true,
    });
    // The worker's own stdio is not the proxy's log: plugins log through host.log.
    w.stdout.resume();
    w.stderr.resume();
    this.worker = w;
    w.on('message', (m: ToMain) => {
      if (gen === this.generation) this.onMessage(m);
    });
    w.on('error', (err) => {
      if (gen !== this.generation) return;
      this.deps.log('plugin_crashed', { plugin: this.name, error: err.message });
    });
    w.on('exit', (code) => {
      if (gen !== this.generation || this.closed) return;
      if (this.onReady) {
        this.onReady({ ok: false, error: `the plugin's worker exited (code ${code}) while starting` });
        return;
      }
      this.crashed('crash', `the plugin's worker exited (code ${code})`);
    });
  }

  /** Fail every call in flight and start a fresh worker. */
  private crashed(reason: FailReason, message: string): void {
    this.deps.metrics.restarts(this.name);
    this.failAll(reason, message);
    this.generation++; // the old worker's late messages and exit are ignored
    const old = this.worker;
    void old.terminate();
    if (this.probing) clearTimeout(this.probing);
    this.probing = null;
    const wait = Math.max(0, RESTART_MIN_INTERVAL_MS - (performance.now() - this.lastStart));
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (!this.closed) this.spawn();
    }, wait);
    this.deps.log('plugin_restarting', { plugin: this.name, reason, message, inMs: Math.round(wait) });
  }

  private failAll(reason: FailReason, message: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      if (!this.closed) this.deps.metrics.error(this.name, reason);
      p.resolve({ kind: 'fail', reason, message });
    }
  }

  private onMessage(m: ToMain): void {
    if (m.t === 'initFail') {
      if (this.onReady) this.onReady({ ok: false, error: m.message });
      else this.crashed('crash', `restart failed: ${m.message}`);
      return;
    }
    this.report(m.cpu, m.ops);
    switch (m.t) {
      case 'ready':
        this.hooks = new Set(m.hooks);
        this.onReady?.({ ok: true });
        return;
      case 'ret': {
        const p = this.pending.get(m.id);
        if (!p) return; // answered late: the call already failed with a timeout
        this.pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.out.kind === 'fail') this.deps.metrics.error(this.name, m.out.reason);
        p.resolve(asBuffers(m.out));
        return;
      }
      case 'http':
        void this.httpCall(m.id, m.cluster, m.req);
        return;
      case 'pong':
        if (this.probing) clearTimeout(this.probing);
        this.probing = null;
        return;
      case 'ops':
        return;
    }
  }

  private report(cpu: number, ops: readonly Op[]): void {
    if (cpu > this.lastCpu) {
      this.deps.metrics.cpu(this.name, (cpu - this.lastCpu) / 1e6);
      this.lastCpu = cpu;
    }
    for (const o of ops) {
      if (o.op === 'log') this.deps.log('plugin_log', { plugin: this.name, level: o.level, msg: o.msg.slice(0, 4096) });
      else this.deps.metrics.apply(this.name, o);
    }
  }

  private async httpCall(id: number, cluster: string, req: Extract<ToMain, { t: 'http' }>['req']): Promise<void> {
    const gen = this.generation;
    const r = await httpCall(this.deps.cluster(cluster), cluster, { ...req, body: req.body === null ? null : Buffer.from(req.body.buffer, req.body.byteOffset, req.body.byteLength) }, HTTP_CALL_CTX);
    if (gen !== this.generation || this.closed) return;
    const m: ToWorker = r.ok ? { t: 'http', id, res: { status: r.status, headers: r.headers, body: r.body } } : { t: 'http', id, error: r.error };
    this.worker.postMessage(m);
  }

  private call(stream: number, input: HookInput): Promise<HookOutput> {
    if (this.closed) return Promise.resolve({ kind: 'fail', reason: 'unavailable', message: 'the plugin is stopped' });
    if (this.restartTimer) {
      this.deps.metrics.error(this.name, 'unavailable');
      return Promise.resolve({ kind: 'fail', reason: 'unavailable', message: 'the plugin is restarting' });
    }
    const id = ++this.nextId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.deadline(id), this.spec.hookTimeoutMs);
      this.pending.set(id, { resolve, timer });
      const m: ToWorker = { t: 'call', id, stream, input };
      this.worker.postMessage(m);
    });
  }

  /** A call missed its deadline: answer it, then make sure the worker is alive. */
  private deadline(id: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.deps.metrics.error(this.name, 'timeout');
    p.resolve({ kind: 'fail', reason: 'timeout', message: `the plugin did not answer within ${this.spec.hookTimeoutMs} ms` });
    if (this.probing || this.restartTimer) return;
    const gen = this.generation;
    this.worker.postMessage({ t: 'ping' } satisfies ToWorker);
    this.probing = setTimeout(() => {
      this.probing = null;
      if (gen === this.generation && !this.closed) this.crashed('timeout', `the plugin's thread was stuck for ${this.spec.hookTimeoutMs * 2} ms (runaway loop?)`);
    }, this.spec.hookTimeoutMs);
  }

  openStream(): PluginStream {
    this.openStreams++;
    const stream = ++this.nextStream;
    const gen = this.generation;
    let open = true;
    return {
      call: (input) => this.call(stream, input),
      close: () => {
        if (!open) return;
        open = false;
        this.openStreams--;
        if (gen === this.generation && !this.closed) this.worker.postMessage({ t: 'end', stream } satisfies ToWorker);
        if (this.retiring && this.openStreams === 0) this.close();
      },
    };
  }

  retire(): void {
    this.retiring = true;
    if (this.openStreams === 0) this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.generation++;
    if (this.probing) clearTimeout(this.probing);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.failAll('unavailable', 'the plugin is stopped');
    void this.worker.terminate();
  }
}

/** Buffers cross the thread boundary as plain Uint8Arrays. */
function asBuffers(o: HookOutput): HookOutput {
  if (o.kind === 'reply') return { ...o, body: toBuffer(o.body) };
  if (o.kind === 'continue' && o.body) return { ...o, body: toBuffer(o.body) };
  return o;
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}
