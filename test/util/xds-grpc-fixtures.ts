// Real gRPC backends and proxyless gRPC client processes for xDS tests: a
// grpc-js-xds client (forked, commands over IPC) and, for the interop tests,
// any peer speaking the same commands as JSON lines on stdin/stdout (the
// grpc-go and Python grpcio clients in test/interop/).
import * as grpc from '@grpc/grpc-js';
import { fork, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface EchoBackend {
  readonly name: string;
  readonly port: number;
  close(): Promise<void>;
}

const rawMethod = (p: string) => ({
  path: p,
  requestStream: false,
  responseStream: false,
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
});

/** A grpc-js server answering /echo.Echo/Call with its own name,
 * /echo.Echo/Slow likewise after `slowMs`, and /echo.Echo/Flaky with
 * UNAVAILABLE on a first attempt (no `grpc-previous-rpc-attempts`, which gRPC
 * clients send on retries, gRFC A6), else its name. */
export async function startEchoBackend(name: string, slowMs = 2000): Promise<EchoBackend> {
  const server = new grpc.Server();
  const timers = new Set<NodeJS.Timeout>();
  server.addService(
    { Call: rawMethod('/echo.Echo/Call'), Slow: rawMethod('/echo.Echo/Slow'), Flaky: rawMethod('/echo.Echo/Flaky') },
    {
      Call: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(name)),
      Slow: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const t = setTimeout(() => {
          timers.delete(t);
          cb(null, Buffer.from(name));
        }, slowMs);
        timers.add(t);
      },
      Flaky: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        if (call.metadata.get('grpc-previous-rpc-attempts').length === 0) cb({ code: grpc.status.UNAVAILABLE, details: 'first attempt' });
        else cb(null, Buffer.from(name));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    name,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        server.forceShutdown();
        resolve();
      }),
  };
}

export interface CallResult {
  counts: Record<string, number>;
  errors: Record<string, number>;
}

export interface CallOptions {
  /** Full method name; default /echo.Echo/Call. */
  method?: string;
  metadata?: Record<string, string>;
}

export interface GrpcXdsClientProcess {
  call(n: number, deadlineMs?: number, opts?: CallOptions): Promise<CallResult>;
  close(): Promise<void>;
}

const CHILD = fileURLToPath(new URL('./xds-grpc-client-child.ts', import.meta.url));

/** Forks a grpc-js-xds client with `bootstrap` (an object) calling `target`. */
export async function startGrpcXdsClient(bootstrap: object, target = 'xds:///echo'): Promise<GrpcXdsClientProcess> {
  const child: ChildProcess = fork(CHILD, [], {
    env: { ...process.env, GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(bootstrap), XDS_TARGET: target, NODE_NO_WARNINGS: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 1;
  const pending = new Map<number, (r: CallResult) => void>();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    // Loading grpc-js takes seconds on a busy machine: a generous bound.
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('grpc-js-xds client did not start in 30 s')), 30_000);
      child.once('message', () => {
        clearTimeout(t);
        resolve();
      });
      child.once('exit', (code) => reject(new Error(`grpc-js-xds client exited (${code})`)));
    });
  } catch (err) {
    // A child left running would keep the test process alive for good.
    child.kill('SIGKILL');
    throw err;
  }
  child.on('message', (m: { id?: number } & CallResult) => {
    if (m.id !== undefined) pending.get(m.id)?.({ counts: m.counts, errors: m.errors });
  });
  return {
    call(n, deadlineMs = 2000, opts = {}) {
      const id = nextId++;
      return new Promise<CallResult>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no answer for ${n} calls`)), n * deadlineMs + 10_000);
        pending.set(id, (r) => {
          clearTimeout(t);
          pending.delete(id);
          resolve(r);
        });
        child.send({ cmd: 'call', n, deadlineMs, id, ...opts });
      });
    },
    async close() {
      if (child.exitCode === null && child.connected) child.send({ cmd: 'exit' });
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Starts `argv` (a grpc-go or Python peer, test/interop/) with `bootstrap`
 * written to a file for GRPC_XDS_BOOTSTRAP, calling `target`; commands and
 * answers are JSON lines on its stdin/stdout. Calls are sequential. */
export async function startStdioXdsClient(argv: readonly string[], bootstrap: object, target: string): Promise<GrpcXdsClientProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-xds-peer-'));
  const file = path.join(dir, 'bootstrap.json');
  writeFileSync(file, JSON.stringify(bootstrap), { mode: 0o600 });
  const child = spawn(argv[0]!, argv.slice(1), {
    env: { ...process.env, GRPC_XDS_BOOTSTRAP: file, XDS_TARGET: target, GRPC_VERBOSITY: process.env.GRPC_VERBOSITY ?? 'ERROR' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((line: string) => void)[] = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  const nextLine = (timeoutMs: number, what: string): Promise<string> => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${argv[0]}: ${what} not answered in ${timeoutMs} ms`)), timeoutMs);
    void exited.then((code) => {
      clearTimeout(t);
      reject(new Error(`${argv[0]} exited (${code}) before answering ${what}`));
    });
    waiting.push((line) => {
      clearTimeout(t);
      resolve(line);
    });
  });
  try {
    await nextLine(30_000, 'start');
  } catch (err) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let queue: Promise<unknown> = Promise.resolve();
  return {
    call(n, deadlineMs = 2000, opts = {}) {
      const run = async (): Promise<CallResult> => {
        const answer = nextLine(n * deadlineMs + 10_000, `${n} calls`);
        child.stdin!.write(`${JSON.stringify({ n, deadlineMs, ...opts })}\n`);
        return JSON.parse(await answer) as CallResult;
      };
      const p = queue.then(run, run);
      queue = p.catch(() => {});
      return p;
    },
    async close() {
      child.stdin!.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
