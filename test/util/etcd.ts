// Starts Debian's real `etcd` binary for tests: one member on 127.0.0.1 with
// free client and peer ports and a temporary data dir, waits until /health
// says true. `restart()` kills the process (SIGKILL: acknowledged writes must
// already be on disk) and starts it again on the same data dir and ports.
// Use `etcdMissingReason()` to skip when the binary is absent; `binary` runs
// another etcd build (test/kube/harness.ts runs the one it builds).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EtcdServer {
  /** http://127.0.0.1:<port> */
  readonly endpoint: string;
  readonly dataDir: string;
  /** Kill the server (SIGKILL) and start it again with the same data. */
  restart(): Promise<void>;
  /** Freeze the server (SIGSTOP): connections stay open, nothing answers. */
  pause(): void;
  /** Thaw a paused server (SIGCONT). */
  resume(): void;
  /** Stop the server and remove its data dir. Idempotent. */
  stop(): Promise<void>;
}

let missing: string | null | undefined;

/** null when etcd can run here, else why not. */
export function etcdMissingReason(): string | null {
  if (missing !== undefined) return missing;
  const r = spawnSync('etcd', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  missing = r.error ? `etcd not installed: ${r.error.message} (apt-get install etcd-server)` : r.status === 0 ? null : `etcd --version failed: ${r.stderr}`;
  return missing;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

async function healthy(endpoint: string, proc: ChildProcess, log: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`etcd exited (${proc.exitCode ?? proc.signalCode}): ${log().slice(-2000)}`);
    try {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1_000) });
      const body = (await res.json()) as { health?: string };
      if (body.health === 'true') return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`etcd at ${endpoint} not healthy after ${timeoutMs} ms: ${log().slice(-2000)}`);
}

function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('exit', () => resolve()));
}

export async function startEtcd(opts: { binary?: string } = {}): Promise<EtcdServer> {
  const binary = opts.binary ?? 'etcd';
  const reason = opts.binary ? null : etcdMissingReason();
  if (reason) throw new Error(reason);
  const dataDir = mkdtempSync(join(tmpdir(), 'trellis-etcd-'));
  let endpoint = '';
  let peer = '';
  const pickPorts = async () => {
    endpoint = `http://127.0.0.1:${await freePort()}`;
    peer = `http://127.0.0.1:${await freePort()}`;
  };
  let proc: ChildProcess | null = null;
  let output = '';

  const launch = async () => {
    output = '';
    const p = spawn(
      binary,
      [
        '--name', 'trellis-test',
        '--data-dir', dataDir,
        '--listen-client-urls', endpoint,
        '--advertise-client-urls', endpoint,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `trellis-test=${peer}`,
        '--initial-cluster-state', 'new',
        // Short ticks: fast start, and a minimum lease TTL of 1 s.
        '--heartbeat-interval', '50',
        '--election-timeout', '500',
        '--logger', 'zap',
        '--log-level', 'warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    running.add(p);
    p.once('exit', () => running.delete(p));
    const keep = (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-20_000);
    };
    p.stdout?.on('data', keep);
    p.stderr?.on('data', keep);
    proc = p;
    await healthy(endpoint, p, () => output, 20_000);
  };

  const kill = async (signal: NodeJS.Signals) => {
    const p = proc;
    proc = null;
    if (!p) return;
    p.kill(signal);
    const timer = setTimeout(() => p.kill('SIGKILL'), 5_000);
    await exited(p);
    clearTimeout(timer);
  };

  let stopped = false;
  // A free port can be taken by someone else before etcd binds it: retry.
  for (let attempt = 1; ; attempt++) {
    try {
      await pickPorts();
      await launch();
      break;
    } catch (err) {
      await kill('SIGKILL');
      if (attempt < 3 && /address already in use/.test(output)) {
        rmSync(dataDir, { recursive: true, force: true });
        mkdirSync(dataDir);
        continue;
      }
      rmSync(dataDir, { recursive: true, force: true });
      throw err;
    }
  }
  return {
    endpoint,
    dataDir,
    async restart() {
      await kill('SIGKILL');
      await launch();
    },
    pause() {
      (proc as ChildProcess | null)?.kill('SIGSTOP');
    },
    resume() {
      (proc as ChildProcess | null)?.kill('SIGCONT');
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      (proc as ChildProcess | null)?.kill('SIGCONT');
      await kill('SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
