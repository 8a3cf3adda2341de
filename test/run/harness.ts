// Shared pieces for the `trellis run` tests: a real control plane, Services
// applied through its API, `trellis run` as a child process.
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.ts';
import { freePort } from '../../src/runner/ports.ts';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const TRELLIS = path.join(ROOT, 'bin', 'trellis.ts');
export const APPS = path.join(import.meta.dirname, 'apps');

export async function controlPlane(t: TestContext, host = '127.0.0.1'): Promise<ControlPlane> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-run-cp-'));
  const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort: await freePort(), host, log: () => {} });
  t.after(async () => {
    await cp.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return cp;
}

/** A join token for default/<serviceAccount>, bound to `workload` (its sidecar's identity). */
export async function joinToken(cp: ControlPlane, serviceAccount: string, workload: string): Promise<string> {
  const res = await fetch(`${cp.apiUrl}/api/v1/identity/join-tokens`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ namespace: 'default', serviceAccount, workload, ttl: '1h' }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return ((await res.json()) as { token: string }).token;
}

export function tempDir(t: TestContext): string {
  const d = mkdtempSync(path.join(tmpdir(), 'trellis-run-test-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

export async function apply(cp: ControlPlane, doc: unknown): Promise<void> {
  const res = await fetch(`${cp.apiUrl}/api/v1/apply`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(doc) });
  assert.ok(res.status < 300, `apply: ${res.status} ${await res.text()}`);
}

export function service(name: string, port: number, protocol: string, targetPort: string | number = protocol) {
  return {
    apiVersion: 'trellis.dev/v1alpha1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: { selector: { app: name }, ports: [{ name: protocol, port, targetPort, protocol }] },
  };
}

export async function workloads(cp: ControlPlane): Promise<{ name: string; namespace: string; ports: { proxyPort?: number }[] }[]> {
  const res = await fetch(`${cp.apiUrl}/api/v1/registry/workloads`);
  return ((await res.json()) as { items: { name: string; namespace: string; ports: { proxyPort?: number }[] }[] }).items;
}

export interface Running {
  child: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

/** `trellis run --server API ARGS` (xDS asked of the API); killed at the end of the test. */
export function trellisRun(t: TestContext, cp: ControlPlane, args: string[], env: NodeJS.ProcessEnv = {}): Running {
  return trellisRunWith(t, ['--server', cp.apiUrl, ...args], env);
}

/** `trellis run ARGS` exactly as given (the test picks how the control plane is named). */
export function trellisRunWith(t: TestContext, args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(process.execPath, [TRELLIS, 'run', '--drain-ms', '500', ...args], {
    cwd: ROOT,
    env: { ...process.env, NODE_NO_WARNINGS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdout!.resume();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // SIGTERM first: the runner cleans up (deregisters, removes its pod).
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(killer);
    }
  });
  return { child, exit, stderr: () => err };
}

/** Polls `fn` until it returns a value (bounded). */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The runner's JSON log events (stderr). */
export function events(stderr: string): { event: string; [k: string]: unknown }[] {
  return stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l); } catch { return { event: '?' }; } });
}
