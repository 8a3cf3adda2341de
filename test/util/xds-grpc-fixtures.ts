// Real gRPC backends and a proxyless grpc-js-xds client process for xDS tests.
import * as grpc from '@grpc/grpc-js';
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface EchoBackend {
  readonly name: string;
  readonly port: number;
  close(): Promise<void>;
}

/** A grpc-js server answering /echo.Echo/Call with its own name. */
export async function startEchoBackend(name: string): Promise<EchoBackend> {
  const server = new grpc.Server();
  server.addService(
    {
      Call: {
        path: '/echo.Echo/Call',
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    },
    {
      Call: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(name)),
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
        server.forceShutdown();
        resolve();
      }),
  };
}

export interface CallResult {
  counts: Record<string, number>;
  errors: Record<string, number>;
}

export interface GrpcXdsClientProcess {
  call(n: number, deadlineMs?: number): Promise<CallResult>;
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
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('grpc-js-xds client did not start in 10 s')), 10_000);
    child.once('message', () => {
      clearTimeout(t);
      resolve();
    });
    child.once('exit', (code) => reject(new Error(`grpc-js-xds client exited (${code})`)));
  });
  child.on('message', (m: { id?: number } & CallResult) => {
    if (m.id !== undefined) pending.get(m.id)?.(m);
  });
  return {
    call(n, deadlineMs = 2000) {
      const id = nextId++;
      return new Promise<CallResult>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no answer for ${n} calls`)), n * deadlineMs + 10_000);
        pending.set(id, (r) => {
          clearTimeout(t);
          pending.delete(id);
          resolve(r);
        });
        child.send({ cmd: 'call', n, deadlineMs, id });
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
