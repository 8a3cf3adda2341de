// The control-plane side of the proxyless gRPC tests (test/control-plane/
// proxyless-grpc.test.ts with grpc-js-xds, test/interop/ with grpc-go and gRPC
// C-core): apply, register a backend, the CLI's `bootstrap grpc`, waiting for
// xDS events and sync, and calling until a condition holds. All bounded.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ControlPlane } from '../../src/control-plane/control-plane.ts';
import type { XdsServerEvent } from '../../src/xds/server.ts';
import { call, type ApiAnswer } from '../control-plane/fixtures.ts';
import type { CallOptions, CallResult, GrpcXdsClientProcess } from './xds-grpc-fixtures.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const api = (cp: ControlPlane, method: string, p: string, body?: unknown): Promise<ApiAnswer> => call(cp.apiUrl, method, p, body);

export async function apply(cp: ControlPlane, resource: unknown): Promise<void> {
  const r = await api(cp, 'POST', '/api/v1/apply', resource);
  assert.ok(r.status < 300, `apply: ${r.status} ${JSON.stringify(r.json)}`);
}

/** Registers a proxyless gRPC server (no proxyPort: dialled directly on its own port). */
export async function register(cp: ControlPlane, name: string, port: number, labels: Record<string, string>, extra: Record<string, unknown> = {}): Promise<void> {
  const r = await api(cp, 'POST', '/api/v1/registry/workloads', {
    name, namespace: 'default', address: '127.0.0.1', ports: [{ name: 'grpc', port, protocol: 'grpc' }], labels, ttlSeconds: 120, ...extra,
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
}

export interface GrpcBootstrap {
  node: { id: string; metadata: unknown };
  xds_servers: unknown[];
}

/** The bootstrap, exactly as `trellis bootstrap grpc` prints it. */
export function cliBootstrap(xdsPort: number, service = 'echo-client'): Promise<GrpcBootstrap> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [path.join(ROOT, 'bin', 'trellis.ts'), 'bootstrap', 'grpc', '--service', service, '--xds', `127.0.0.1:${xdsPort}`],
      { cwd: ROOT, env: { ...process.env, NODE_NO_WARNINGS: '1' }, timeout: 15_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`trellis bootstrap grpc failed: ${err.message}\n${stderr}`));
        else {
          try {
            resolve(JSON.parse(stdout));
          } catch (e) {
            reject(new Error(`bootstrap is not JSON: ${(e as Error).message}\n${stdout}`));
          }
        }
      },
    );
  });
}

/** Resolves on the first xDS event matching `pred` (bounded). */
export function nextEvent(cp: ControlPlane, pred: (e: XdsServerEvent) => boolean, timeoutMs = 10_000): Promise<XdsServerEvent> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      off();
      reject(new Error('xDS event not seen in time'));
    }, timeoutMs);
    const off = cp.xds.on((e) => {
      if (pred(e)) {
        clearTimeout(t);
        off();
        resolve(e);
      }
    });
  });
}

/** Calls in small batches until `done(batch)` holds (bounded in count and time). */
export async function callUntil(client: GrpcXdsClientProcess, what: string, done: (r: CallResult) => boolean, timeoutMs = 10_000, opts: CallOptions = {}): Promise<CallResult> {
  let last: CallResult | undefined;
  const until = Date.now() + timeoutMs;
  for (let i = 0; i < 400 && Date.now() < until; i++) {
    last = await client.call(10, 1000, opts);
    if (done(last)) return last;
    await sleep(25);
  }
  throw new Error(`${what}: not reached; last batch ${JSON.stringify(last)}`);
}

/** Polls the control plane's view of `nodeId` until it has acked everything (bounded). */
export async function waitSynced(cp: ControlPlane, nodeId: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    last = cp.xds.status().find((p) => p.nodeId === nodeId);
    if ((last as { status?: string } | undefined)?.status === 'synced') return;
    await sleep(50);
  }
  throw new Error(`${nodeId} not synced: ${JSON.stringify(last)}`);
}
