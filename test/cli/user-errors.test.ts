// Mistakes an operator can make on the command line, made the way an
// operator makes them (`node bin/trellis.ts ...` child processes): each gets
// one clear line naming what is wrong and how to fix it, a non-zero exit and
// no stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { once } from 'node:events';
import { openMemoryStore } from '../../src/control-plane/store/memory.ts';
import { startApi } from '../../src/control-plane/api/server.ts';

const bin = path.resolve('bin/trellis.ts');

function trellis(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env: { ...process.env, NODE_NO_WARNINGS: '1', ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function noStack(stderr: string): void {
  assert.doesNotMatch(stderr, /^\s+at /m, `no stack trace:\n${stderr}`);
}

test('an unknown flag on any command: one line with a did-you-mean, exit 2, no stack trace', async () => {
  const cases: [string[], RegExp][] = [
    [['identity', '--srever', 'http://127.0.0.1:1'], /^trellis identity: unknown option --srever \(did you mean --server\?\)/],
    [['control-plane', '--xds-prot', '1'], /^trellis control-plane: unknown option --xds-prot \(did you mean --xds-port\?\)/],
    [['stat', '--serverr', 'x'], /^trellis stat: unknown option --serverr \(did you mean --server\?\)/],
    [['edges', '--windw', '1m'], /^trellis edges: unknown option --windw \(did you mean --window\?\)/],
    [['run', '--srevice', 'x'], /^trellis run: unknown option --srevice \(did you mean --service\?\)/],
    [['bootstrap', 'grpc', '--servcie', 'x'], /^trellis bootstrap: unknown option --servcie \(did you mean --service\?\)/],
    [['stat', '--window'], /^trellis stat: --window needs a value/],
  ];
  await Promise.all(cases.map(async ([args, want]) => {
    const r = await trellis(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, want, args.join(' '));
    noStack(r.stderr);
  }));
});

test('tap and top of a service the mesh does not have: the reason and a suggestion, exit 1', async (t) => {
  const store = openMemoryStore();
  const api = await startApi({ store, port: 0 });
  t.after(async () => {
    await api.close();
    await store.close();
  });
  const res = await fetch(`${api.url}/api/v1/apply`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify([{ apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: 'reviews' }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080 }] } }]),
  });
  assert.equal(res.status, 200, await res.text());
  const env = { TRELLIS_SERVER: api.url };
  const nosuch = await trellis(['tap', 'nosuch'], env);
  assert.equal(nosuch.code, 1);
  assert.equal(nosuch.stderr.trim(), 'trellis tap: unknown service "nosuch": no Service of that name in the mesh (services: reviews)');
  const typo = await trellis(['top', 'reviwes', '--duration', '1s'], env);
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /trellis top: unknown service "reviwes": no Service of that name in the mesh; did you mean "reviews"\?/);
  noStack(nosuch.stderr + typo.stderr);
});

async function occupied(): Promise<{ port: number; close: () => Promise<void> }> {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { port: (srv.address() as net.AddressInfo).port, close: () => new Promise((r) => srv.close(() => r())) };
}

test('control plane: a busy port names the flag to change, a locked data dir suggests --data-dir; no stack traces', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-errors-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const busy = await occupied();
  t.after(() => busy.close());

  const xds = await trellis(['control-plane', '--api-port', '0', '--xds-port', String(busy.port), '--data-dir', path.join(dir, 'a')]);
  assert.equal(xds.code, 1);
  assert.equal(xds.stderr.trim(), `trellis control-plane: the xDS port 127.0.0.1:${busy.port} is already in use (another control plane, or \`trellis demo\`?); choose another with --xds-port N (0 picks a free port)`);
  const apiBusy = await trellis(['control-plane', '--api-port', String(busy.port), '--xds-port', '0', '--data-dir', path.join(dir, 'a')]);
  assert.equal(apiBusy.code, 1);
  assert.match(apiBusy.stderr, /the API and dashboard port 127\.0\.0\.1:\d+ is already in use .*; choose another with --api-port N/);

  // A running control plane holds the data dir; a second one is told why and what to do.
  const first = spawn(process.execPath, [bin, 'control-plane', '--api-port', '0', '--xds-port', '0', '--data-dir', path.join(dir, 'b'), '--no-identity'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
  t.after(async () => {
    if (first.exitCode === null) {
      first.kill('SIGTERM');
      await once(first, 'exit');
    }
  });
  let out = '';
  first.stdout.on('data', (c: Buffer) => (out += String(c)));
  for (let i = 0; i < 300 && !out.includes('"event":"ready"'); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(out, /"event":"ready"/);
  const second = await trellis(['control-plane', '--api-port', '0', '--xds-port', '0', '--data-dir', path.join(dir, 'b'), '--no-identity']);
  assert.equal(second.code, 1);
  assert.match(second.stderr, /^trellis control-plane: data directory .* is locked by running process \d+ .*Stop that control plane, or give this one its own store with --data-dir DIR/);
  assert.equal(second.stderr.trim().split('\n').length, 1, second.stderr);
  noStack(xds.stderr + apiBusy.stderr + second.stderr);
});
