// The real `trellis proxy --config FILE` process: start, serve, reload on a
// file change and on SIGHUP, a bad edit keeps the old config, SIGTERM drains
// an in-flight request and exits 0, a bad bootstrap exits 2; tracing from
// its flags, with the queued spans flushed at exit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { bootstrapDoc, getText, httpBackend, httpListener, request, routeConfig, staticCluster } from './helpers.ts';
import { collector } from '../telemetry/collector.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(ROOT, 'bin', 'trellis.ts');

interface LogLine { event: string; [k: string]: unknown }

class ProxyProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  stderr = '';
  private waiters: Array<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  readonly exited: Promise<number | null>;

  constructor(args: string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [BIN, 'proxy', ...args], { cwd: ROOT, env: { ...process.env, NODE_NO_WARNINGS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const text = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          line = { event: 'unparsed', text };
        }
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => (w.match(line) ? (w.resolve(line), false) : true));
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
  }

  /** The next (or an already seen, after index `from`) line for `event`. */
  waitFor(event: string, from = 0, ms = 10_000): Promise<LogLine> {
    const seen = this.lines.slice(from).find((l) => l.event === event);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${event}" log line within ${ms} ms; stdout: ${JSON.stringify(this.lines)} stderr: ${this.stderr}`)), ms);
      this.waiters.push({ match: (l) => l.event === event, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  }
}

function spawnProxy(t: TestContext, args: string[], env?: NodeJS.ProcessEnv): ProxyProcess {
  const p = new ProxyProcess(args, env);
  t.after(async () => {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill('SIGKILL');
      await p.exited;
    }
  });
  return p;
}

function tempFile(t: TestContext, name: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-proxy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, name);
}

function doc(routeTo: 'a' | 'b', aPort: number, bPort: number): string {
  return JSON.stringify(bootstrapDoc({
    listeners: [httpListener('out', { routeConfigName: 'r' })],
    clusters: [staticCluster('a', [aPort]), staticCluster('b', [bPort])],
    routes: [routeConfig('r', [{ cluster: routeTo }])],
  }), null, 2);
}

async function started(p: ProxyProcess): Promise<{ port: number; admin: number }> {
  const s = await p.waitFor('started');
  const listeners = s.listeners as Record<string, number>;
  const admin = s.admin as { port: number };
  return { port: listeners.out!, admin: admin.port };
}

test('a bad bootstrap exits 2 and names the field', async (t) => {
  const file = tempFile(t, 'bad.yaml');
  writeFileSync(file, 'staticResources:\n  listeners:\n    - name: x\n      address: { socketAddress: { address: 127.0.0.1, portValue: notaport } }\n');
  const p = spawnProxy(t, ['--config', file]);
  assert.equal(await p.exited, 2);
  assert.match(p.stderr, /staticResources\.listeners\[0\]/);
  const none = spawnProxy(t, []);
  assert.equal(await none.exited, 2);
  assert.match(none.stderr, /--config FILE is required/);
});

test('serves, reloads on file change, keeps the old config on a bad edit, reloads on SIGHUP', async (t) => {
  const a = await httpBackend(t, 'a');
  const b = await httpBackend(t, 'b');
  const file = tempFile(t, 'proxy.json');
  writeFileSync(file, doc('a', a.port, b.port));
  const p = spawnProxy(t, ['--config', file, '--admin-port', '0']);
  const { port, admin } = await started(p);
  assert.equal((await getText(admin, '/ready')).status, 200);
  assert.equal((await request(port, { agent: false })).headers['x-backend'], 'a');

  // A file change: debounced reload, next request goes to b.
  let mark = p.lines.length;
  writeFileSync(file, doc('b', a.port, b.port));
  await p.waitFor('config_applied', mark);
  assert.equal((await request(port, { agent: false })).headers['x-backend'], 'b');

  // A bad edit: logged, b keeps serving.
  mark = p.lines.length;
  writeFileSync(file, '{ "staticResources": { "listeners": [ { "name": 1 } ] } }');
  const invalid = await p.waitFor('config_invalid', mark);
  assert.ok(Array.isArray(invalid.errors));
  assert.equal((await request(port, { agent: false })).headers['x-backend'], 'b');

  // SIGHUP re-reads the (now good again) file.
  assert.ok(!p.lines.slice(mark).some((l) => l.event === 'config_applied'), 'the bad edit was not applied');
  mark = p.lines.length;
  writeFileSync(file, doc('a', a.port, b.port));
  p.child.kill('SIGHUP');
  await p.waitFor('config_applied', mark);
  assert.equal((await request(port, { agent: false })).headers['x-backend'], 'a');
  p.child.kill('SIGTERM');
  assert.equal(await p.exited, 0);
});

test('SIGHUP reloads with --no-watch; SIGTERM drains an in-flight slow request, then exits 0', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let arrived!: () => void;
  const inFlight = new Promise<void>((r) => (arrived = r));
  const a = await httpBackend(t, 'a', (req, res) => {
    req.resume();
    if (req.url === '/slow') {
      arrived();
      void gate.then(() => res.end('slow done'));
    } else res.end('a');
  });
  const b = await httpBackend(t, 'b');
  const file = tempFile(t, 'proxy.json');
  writeFileSync(file, doc('b', a.port, b.port));
  const p = spawnProxy(t, ['--config', file, '--admin-port', '0', '--no-watch', '--drain-ms', '8000']);
  const { port, admin } = await started(p);
  assert.equal((await request(port, { agent: false })).headers['x-backend'], 'b');
  const mark = p.lines.length;
  writeFileSync(file, doc('a', a.port, b.port));
  p.child.kill('SIGHUP');
  await p.waitFor('config_applied', mark);

  const slow = request(port, { agent: false, path: '/slow' });
  await inFlight;
  p.child.kill('SIGTERM');
  await p.waitFor('shutdown');
  assert.equal((await getText(admin, '/ready')).status, 503);
  release();
  const r = await slow;
  assert.equal(r.status, 200);
  assert.equal(r.body, 'slow done');
  assert.equal(await p.exited, 0);
  assert.ok(p.lines.some((l) => l.event === 'exit'));
});

test('tracing from --tracing-collector/--tracing-sampling: spans exported, flushed at SIGTERM; bad values exit 2; off by default', async (t) => {
  const seen: Array<string | undefined> = [];
  const a = await httpBackend(t, 'a', (req, res) => {
    seen.push(req.headers.traceparent as string | undefined);
    req.resume();
    res.end('a');
  });
  const file = tempFile(t, 'proxy.json');
  writeFileSync(file, doc('a', a.port, a.port));

  for (const [args, message] of [
    [['--tracing-collector', 'ftp://collector/v1/traces'], /--tracing-collector: must be an http\(s\) URL/],
    [['--tracing-collector', 'http://127.0.0.1:4318/v1/traces', '--tracing-sampling', '1.5'], /--tracing-sampling: must be between 0 and 1/],
    [['--tracing-sampling', '1'], /--tracing-sampling: needs --tracing-collector/],
  ] as const) {
    const bad = spawnProxy(t, ['--config', file, ...args]);
    assert.equal(await bad.exited, 2, args.join(' '));
    assert.match(bad.stderr, message);
  }
  // The environment is read too (how `trellis run` passes it to its sidecar).
  const badEnv = spawnProxy(t, ['--config', file], { TRELLIS_TRACING_COLLECTOR: 'collector:4318' });
  assert.equal(await badEnv.exited, 2);
  assert.match(badEnv.stderr, /--tracing-collector: must be an http\(s\) URL/);

  // Off by default: no trace context is added.
  const plain = spawnProxy(t, ['--config', file, '--admin-port', '0']);
  assert.equal((await request((await started(plain)).port, { agent: false })).status, 200);
  assert.equal(seen.shift(), undefined);
  plain.child.kill('SIGTERM');
  assert.equal(await plain.exited, 0);

  // On: every new trace sampled; the batch (5 s delay) leaves at SIGTERM.
  const c = await collector(t);
  const p = spawnProxy(t, ['--config', file, '--admin-port', '0', '--tracing-collector', c.url, '--tracing-sampling', '1']);
  const { port } = await started(p);
  assert.equal((await request(port, { agent: false, path: '/traced' })).status, 200);
  const traceparent = seen.shift();
  assert.match(traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  assert.equal(c.spans.length, 0, 'batched, not sent per request');
  p.child.kill('SIGTERM');
  assert.equal(await p.exited, 0);
  assert.equal(c.spans.length, 1, JSON.stringify(c.spans));
  const span = c.spans[0]!;
  assert.equal(span.service, 'test');
  assert.equal(traceparent, `00-${span.traceId}-${span.spanId}-01`);
  assert.equal(span.attributes['url.path'], '/traced');
  assert.equal(span.attributes['http.response.status_code'], 200);
});
