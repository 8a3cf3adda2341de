// The sidecar proxy as a supervised child process: `trellis proxy` with a
// generated bootstrap (node metadata `trellis: {...}` for the control
// plane's translate, config over ADS). `start()` resolves once the proxy is
// ready: admin /ready answers 200 and its config binds every listener the
// workload needs (inbound per app port, declared upstreams), so an app
// started afterwards never races its own sidecar. An unexpected exit is
// restarted with backoff (100 ms doubling to 5 s) while the app keeps
// running; `stop()` sends SIGTERM (the proxy drains) and waits.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, createWriteStream, readFileSync, writeFileSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { COMPILE_CACHE_DIR, PROXY_NODE_FLAGS, proxyEnv } from '../proxy/runtime.ts';

export const TRELLIS_BIN = path.resolve(import.meta.dirname, '..', '..', 'bin', 'trellis.ts');

/** What a proxy process is started from: a Node binary, `trellis.ts`, and
 * Node's compile cache for that code. */
export interface ProxyRuntime {
  node: string;
  entry: string;
  compileCache: string;
}

/** The installation the runner itself runs from. A pod's proxy, running as
 * its own uid, uses a staged copy instead (staged-runtime.ts). */
export const INSTALLED_RUNTIME: ProxyRuntime = { node: process.execPath, entry: TRELLIS_BIN, compileCache: COMPILE_CACHE_DIR };

export interface UpstreamDecl {
  service: string;
  namespace?: string;
  port: number;
  /** 0: the runner picks a free one (runner.ts). */
  localPort: number;
  localAddress?: string;
}

export interface SidecarSpec {
  kind: 'sidecar' | 'node-proxy';
  nodeId: string;
  /** xDS node.cluster: the service. */
  cluster: string;
  namespace: string;
  workload?: string;
  /** Control plane ADS address, host:port. */
  xdsAddress: string;
  /** xDS over mutual TLS with the workload certificate (port 15012). */
  xdsTls?: boolean;
  /** Control plane API, where a sidecar with a join token gets its
   * certificate (TRELLIS_IDENTITY_URL for the proxy). */
  identityUrl?: string;
  /** The mesh CA bundle to trust over HTTPS (TRELLIS_CA_FILE for the proxy). */
  caFile?: string;
  admin: { address: string; port: number };
  /** The mTLS metrics listener for a control plane on another host (proxy/metrics-listener.ts). */
  metrics?: { address: string; port: number };
  outbound: { address: string; port: number };
  inboundAddress?: string;
  upstreams?: UpstreamDecl[];
  capture?: 'transparent';
  /** Transparent capture: the inbound listener port (REDIRECT target). */
  inboundPort?: number;
  locality?: { region?: string; zone?: string; subZone?: string };
  /** Listener names that must be bound before the sidecar counts as ready. */
  requiredListeners: string[];
  drainMs?: number;
  /** Prefix for the command (e.g. `ip netns exec POD setpriv ...`). */
  wrap?: string[];
  /** Default INSTALLED_RUNTIME. */
  runtime?: ProxyRuntime;
  /** The proxy's environment before the runner adds to it; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Where the bootstrap file goes. */
  dir: string;
  /** Proxy stdout/stderr: a file path, or 'inherit' (to the runner's stderr). */
  logTo: string | 'inherit';
}

export function sidecarBootstrap(spec: SidecarSpec): object {
  const trellis: Record<string, unknown> = {
    kind: spec.kind,
    namespace: spec.namespace,
    outbound: spec.outbound,
    // Where the control plane scrapes metrics and taps (telemetry/proxy-nodes.ts).
    admin: `${spec.admin.address}:${spec.admin.port}`,
  };
  if (spec.workload) trellis.workload = spec.workload;
  if (spec.metrics) trellis.metrics = `${spec.metrics.address.includes(':') ? `[${spec.metrics.address}]` : spec.metrics.address}:${spec.metrics.port}`;
  // The service this sidecar serves: inbound destination_service (telemetry/identity.ts).
  if (spec.kind === 'sidecar') trellis.service = spec.cluster;
  if (spec.inboundAddress) trellis.inboundAddress = spec.inboundAddress;
  if (spec.upstreams && spec.upstreams.length > 0) trellis.upstreams = spec.upstreams;
  if (spec.capture) trellis.capture = spec.capture;
  if (spec.inboundPort !== undefined) trellis.inboundPort = spec.inboundPort;
  // Where the control plane scrapes metrics and taps (docs/telemetry.md).
  trellis.admin = `${spec.admin.address === '0.0.0.0' ? '127.0.0.1' : spec.admin.address}:${spec.admin.port}`;
  return {
    node: {
      id: spec.nodeId,
      cluster: spec.cluster,
      locality: { region: spec.locality?.region ?? '', zone: spec.locality?.zone ?? '', subZone: spec.locality?.subZone ?? '' },
      metadata: { trellis },
    },
    admin: { address: { socketAddress: { address: spec.admin.address, portValue: spec.admin.port } } },
    dynamicResources: { ads: { address: spec.xdsAddress, ...(spec.xdsTls ? { tls: true } : {}) } },
  };
}

/** SIDECAR_PORT_IN_USE: the proxy exited because a port it was given is
 * taken (EXIT_PORT_IN_USE); whoever picked the ports may pick others. */
export type ReadyResult = { ok: true } | { ok: false; code: 'SIDECAR_EXITED' | 'SIDECAR_PORT_IN_USE' | 'SIDECAR_NOT_READY'; message: string };

/** `trellis proxy`'s exit code when a port it must bind is in use (the
 * command's EXIT_PORT_IN_USE; not imported, to keep the proxy's modules out
 * of the runner). */
const EXIT_PORT_IN_USE = 3;

/** The last lines of a log file, for an error message (empty when unreadable). */
export function logTail(file: string, lines = 8): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

type Log = (event: string, fields?: Record<string, unknown>) => void;

async function getText(url: string, timeoutMs: number): Promise<{ status: number; body: string } | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, body: await res.text() };
  } catch {
    return undefined;
  }
}

/** One probe: ready and every required listener bound. */
export async function probeReady(admin: { address: string; port: number }, required: readonly string[]): Promise<boolean> {
  const base = `http://${admin.address === '0.0.0.0' ? '127.0.0.1' : admin.address}:${admin.port}`;
  const r = await getText(`${base}/ready`, 1000);
  if (!r || r.status !== 200) return false;
  if (required.length === 0) return true;
  const dump = await getText(`${base}/config_dump`, 2000);
  if (!dump || dump.status !== 200) return false;
  try {
    const bound = (JSON.parse(dump.body) as { boundPorts?: Record<string, number> }).boundPorts ?? {};
    return required.every((n) => typeof bound[n] === 'number');
  } catch {
    return false;
  }
}

export class Sidecar {
  readonly spec: SidecarSpec;
  readonly bootstrapPath: string;
  readonly #log: Log;
  #child: ChildProcess | undefined;
  #stopping = false;
  #restarts = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #logStream: WriteStream | undefined;
  #exited: Promise<void> = Promise.resolve();
  /** While start() waits: an exit is reported to the caller, not restarted. */
  #starting = false;
  /** Per process: its output streams are closed (its log is complete). */
  readonly #closed = new WeakMap<ChildProcess, Promise<void>>();
  readonly #onRestart = new Set<() => void>();

  constructor(spec: SidecarSpec, log: Log) {
    this.spec = spec;
    this.#log = log;
    this.bootstrapPath = path.join(spec.dir, `${spec.kind}-bootstrap.json`);
    writeFileSync(this.bootstrapPath, JSON.stringify(sidecarBootstrap(spec), null, 2));
    // Whatever the umask: a pod's proxy runs as another uid (its directory
    // decides who reaches the file).
    chmodSync(this.bootstrapPath, 0o644);
    if (spec.logTo !== 'inherit') this.#logStream = createWriteStream(spec.logTo, { flags: 'a' });
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get restarts(): number {
    return this.#restarts;
  }

  /** Called after each restart (the new process, not yet ready). */
  onRestart(fn: () => void): () => void {
    this.#onRestart.add(fn);
    return () => this.#onRestart.delete(fn);
  }

  #spawn(): ChildProcess {
    const runtime = this.spec.runtime ?? INSTALLED_RUNTIME;
    const args = [runtime.entry, 'proxy', '--config', this.bootstrapPath, '--no-watch', '--drain-ms', String(this.spec.drainMs ?? 5000)];
    const [cmd, ...pre] = [...(this.spec.wrap ?? []), runtime.node, ...PROXY_NODE_FLAGS, ...args];
    const env = proxyEnv({ ...(this.spec.env ?? process.env), NODE_NO_WARNINGS: '1' }, runtime.compileCache);
    if (this.spec.identityUrl !== undefined && env.TRELLIS_IDENTITY_URL === undefined) env.TRELLIS_IDENTITY_URL = this.spec.identityUrl;
    if (this.spec.caFile !== undefined) env.TRELLIS_CA_FILE = this.spec.caFile;
    const child = spawn(cmd!, pre, { stdio: ['ignore', 'pipe', 'pipe'], env });
    const sink = this.#logStream;
    for (const s of [child.stdout, child.stderr]) {
      if (sink) s?.pipe(sink, { end: false });
      else s?.pipe(process.stderr, { end: false });
    }
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    this.#closed.set(child, new Promise((resolve) => child.once('close', () => resolve())));
    child.once('exit', (code, signal) => {
      if (this.#child !== child) return;
      this.#child = undefined;
      if (this.#stopping) return;
      if (this.#starting) {
        this.#log('sidecar_exited', { code, signal, restartInMs: null });
        return;
      }
      this.#restarts++;
      const delay = Math.min(5000, 100 * 2 ** Math.min(6, this.#restarts - 1));
      this.#log('sidecar_exited', { code, signal, restartInMs: delay, restarts: this.#restarts });
      this.#restartTimer = setTimeout(() => {
        this.#restartTimer = undefined;
        if (this.#stopping) return;
        this.#child = this.#spawn();
        this.#log('sidecar_restarted', { pid: this.#child.pid });
        for (const fn of this.#onRestart) fn();
      }, delay);
    });
    child.once('error', (err) => this.#log('sidecar_spawn_error', { error: err.message }));
    return child;
  }

  /** Spawns the proxy and waits until it is ready (bounded). */
  async start(timeoutMs = 30_000): Promise<ReadyResult> {
    this.#child = this.#spawn();
    this.#log('sidecar_started', { pid: this.#child.pid, admin: this.spec.admin.port, outbound: this.spec.outbound.port });
    this.#starting = true;
    try {
      return await this.waitReady(timeoutMs, true);
    } finally {
      this.#starting = false;
    }
  }

  async waitReady(timeoutMs: number, failOnExit = false): Promise<ReadyResult> {
    const deadline = Date.now() + timeoutMs;
    const first = this.#child;
    while (Date.now() < deadline) {
      if (failOnExit && first && this.#child !== first) return this.#exitedEarly(first);
      if (await probeReady(this.spec.admin, this.spec.requiredListeners)) return { ok: true };
      await new Promise((r) => setTimeout(r, 50));
    }
    return { ok: false, code: 'SIDECAR_NOT_READY', message: `the sidecar proxy was not ready within ${timeoutMs} ms (listeners ${this.spec.requiredListeners.join(', ')} bound, config from ${this.spec.xdsAddress})` };
  }

  async #exitedEarly(child: ChildProcess): Promise<ReadyResult> {
    const inUse = child.exitCode === EXIT_PORT_IN_USE;
    if (this.spec.logTo === 'inherit') {
      return { ok: false, code: inUse ? 'SIDECAR_PORT_IN_USE' : 'SIDECAR_EXITED', message: 'the sidecar proxy exited before it was ready (see its output above)' };
    }
    // Its last words, so the failure explains itself wherever it is reported.
    await Promise.race([this.#closed.get(child), new Promise((r) => setTimeout(r, 1000))]);
    await new Promise((r) => setTimeout(r, 50)); // the file stream's last write
    const tail = logTail(this.spec.logTo);
    return {
      ok: false,
      code: inUse ? 'SIDECAR_PORT_IN_USE' : 'SIDECAR_EXITED',
      message: `the sidecar proxy exited before it was ready (${this.spec.logTo})${tail ? `:\n${tail}` : ''}`,
    };
  }

  /** SIGTERM (drain), wait up to drain + 3 s, then SIGKILL. */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), (this.spec.drainMs ?? 5000) + 3000);
      await this.#exited;
      clearTimeout(killer);
    }
    this.#child = undefined;
    await new Promise<void>((resolve) => (this.#logStream ? this.#logStream.end(resolve) : resolve()));
  }

  /** Test hook: kill the running proxy as a crash would (it is restarted). */
  crash(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.#child?.kill(signal);
  }
}
