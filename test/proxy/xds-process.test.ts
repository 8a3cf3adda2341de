// The real `trellis proxy` process configured over xDS: an in-test ADS
// server (SnapshotCache + createXdsServer) drives listeners, routes,
// clusters and endpoints; a snapshot change moves traffic without a restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SnapshotCache } from '../../src/xds/cache.ts';
import { createSnapshot, type SnapshotInput } from '../../src/xds/snapshot.ts';
import { createXdsServer } from '../../src/xds/server.ts';
import { serviceSnapshotInput } from '../util/xds-fixtures.ts';
import { freePort, getText, httpBackend, request } from './helpers.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function snapshot(input: SnapshotInput, label: string) {
  const r = createSnapshot(input, label);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.snapshot;
}

test('trellis proxy with dynamicResources: starts on the first xDS config and follows snapshot changes', async (t) => {
  const a = await httpBackend(t, 'a');
  const b = await httpBackend(t, 'b');
  const listenerPort = await freePort();
  const cache = new SnapshotCache();
  const server = createXdsServer({ source: cache });
  const xdsPort = await server.listen('127.0.0.1', 0);
  t.after(() => server.close());
  cache.setSnapshot('xds-proxy', snapshot(serviceSnapshotInput('echo', [{ cluster: 'echo-a', weight: 1, ports: [a.port] }], { listenerPort }), 's1'));

  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-xds-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'proxy.yaml');
  writeFileSync(file, `node: { id: xds-proxy, cluster: test }\nadmin: { address: { socketAddress: { address: 127.0.0.1, portValue: 0 } } }\ndynamicResources: { ads: { address: "127.0.0.1:${xdsPort}" } }\n`);
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'trellis.ts'), 'proxy', '--config', file], { cwd: ROOT, env: { ...process.env, NODE_NO_WARNINGS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const lines: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let buf = '';
  const waiters: Array<() => void> = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
      for (const w of waiters.splice(0)) w();
    }
  });
  const waitFor = async (event: string, from: number): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const l = lines.slice(from).find((x) => x.event === event);
      if (l) return l;
      if (Date.now() > deadline) throw new Error(`no ${event}; stdout ${JSON.stringify(lines)} stderr ${stderr}`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, 200);
        waiters.push(() => (clearTimeout(timer), r()));
      });
    }
  };

  const started = await waitFor('started', 0);
  assert.equal((started.listeners as Record<string, number>).echo, listenerPort);
  const admin = (started.admin as { port: number }).port;
  assert.equal((await getText(admin, '/ready')).status, 200);
  assert.equal((await request(listenerPort, { agent: false })).headers['x-backend'], 'a');

  const mark = lines.length;
  cache.setSnapshot('xds-proxy', snapshot(serviceSnapshotInput('echo', [{ cluster: 'echo-b', weight: 1, ports: [b.port] }], { listenerPort }), 's2'));
  await waitFor('config_applied', mark);
  assert.equal((await request(listenerPort, { agent: false })).headers['x-backend'], 'b');

  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});

test('trellis proxy waits for an unreachable control plane instead of exiting, and starts once it appears', async (t) => {
  const a = await httpBackend(t, 'a');
  const listenerPort = await freePort();
  const xdsPort = await freePort(); // nothing listens there yet
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-xds-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'proxy.yaml');
  writeFileSync(file, `node: { id: xds-proxy, cluster: test }\nadmin: { address: { socketAddress: { address: 127.0.0.1, portValue: 0 } } }\ndynamicResources: { ads: { address: "127.0.0.1:${xdsPort}" } }\n`);
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'trellis.ts'), 'proxy', '--config', file, '--no-watch'], { cwd: ROOT, env: { ...process.env, NODE_NO_WARNINGS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  // Several reconnect attempts (100 ms backoff, doubling) go unanswered.
  const early = await Promise.race([exited, new Promise((r) => setTimeout(() => r('running'), 2000))]);
  assert.equal(early, 'running', `the proxy exited while the control plane was away:\n${out}`);

  const cache = new SnapshotCache();
  cache.setSnapshot('xds-proxy', snapshot(serviceSnapshotInput('echo', [{ cluster: 'echo-a', weight: 1, ports: [a.port] }], { listenerPort }), 's1'));
  const server = createXdsServer({ source: cache });
  await server.listen('127.0.0.1', xdsPort);
  t.after(() => server.close());
  const deadline = Date.now() + 20_000;
  while (!out.includes('"event":"started"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.match(out, /"event":"started"/);
  assert.equal((await request(listenerPort, { agent: false })).headers['x-backend'], 'a');
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});
