// `trellis demo` as a real process: it starts, the page is served through
// the ingress gateway and the mesh (all four services, the Python one
// included, gRPC ratings reached), and SIGINT stops every process it started
// (runners, sidecars, apps, the gateway, the traffic generator).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { checkPortsFree, demoPorts } from '../../src/cli/commands/demo.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

async function freeBase(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    // Below the ephemeral range (32768+), so listen(0) elsewhere cannot take them meanwhile.
    const base = 20000 + Math.floor(Math.random() * 12000);
    if ((await checkPortsFree(demoPorts(base))).ok) return base;
  }
  throw new Error('no free port range for the demo');
}

/** Every live descendant of `root` (from /proc). */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(d), ppid);
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const [pid, pp] of parent) if (pp === p) {
      out.push(pid);
      walk(pid);
    }
  };
  walk(root);
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

test('trellis demo serves the page through the mesh and stops cleanly on SIGINT', { timeout: 90_000 }, async (t) => {
  const base = await freeBase();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'trellis-demo-test-'));
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'trellis.ts'), 'demo', '--base-port', String(base), '--data-dir', dataDir, '--rps', '5'], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let seen: number[] = [];
  t.after(() => {
    // Fallback: nothing may outlive the test, whatever failed.
    for (const pid of [child.pid!, ...seen]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  });
  const output: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => output.push(l));
  const ready = await new Promise<{ ingress: string } | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 50_000);
    createInterface({ input: child.stdout! }).on('line', (l) => {
      output.push(l);
      if (l.startsWith('{"event":"ready"')) {
        clearTimeout(timer);
        resolve(JSON.parse(l) as { ingress: string });
      }
    });
    child.once('exit', () => resolve(undefined));
  });
  assert.ok(ready, `the demo did not become ready:\n${output.join('\n')}`);

  // Through the ingress gateway: productpage -> details (Python) + reviews -> ratings (gRPC).
  const reached = new Set<string>();
  for (let i = 0; i < 60 && reached.size < 6; i++) {
    const res: Response = await fetch(ready.ingress, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    const page = (await res.json()) as {
      served_by: string;
      caller?: string;
      details: { status: number; body: { served_by?: string; caller?: string } };
      reviews: { status: number; body: { served_by?: string; caller?: string; rating?: { served_by?: string } } };
    };
    reached.add('productpage');
    if (page.details.status === 200 && page.details.body.served_by?.startsWith('details (python')) reached.add('details-python');
    if (page.reviews.status === 200) reached.add('reviews');
    // Sidecar to sidecar is mTLS: the inbound sidecars name productpage's SPIFFE identity.
    if (page.details.status === 200 && page.reviews.status === 200) {
      assert.match(String(page.details.body.caller), /^spiffe:\/\/[^/]+\/ns\/default\/sa\/productpage$/);
      assert.match(String(page.reviews.body.caller), /^spiffe:\/\/[^/]+\/ns\/default\/sa\/productpage$/);
      // The ingress gateway reaches productpage over mTLS too.
      assert.match(String(page.caller), /^spiffe:\/\/[^/]+\/ns\/default\/sa\/demo-ingress$/);
      reached.add('mtls');
    }
    if (page.reviews.body.rating?.served_by?.startsWith('ratings (grpc-js')) reached.add('ratings-grpc');
    // Header steering: beta users always get v3.
    const beta: Response = await fetch(ready.ingress, { headers: { 'x-user-group': 'beta' }, signal: AbortSignal.timeout(5000) });
    const bp = (await beta.json()) as { reviews: { status: number; body: { version?: string } } };
    if (bp.reviews.status === 200) {
      assert.equal(bp.reviews.body.version, 'v3');
      reached.add('beta-v3');
    }
  }
  assert.deepEqual([...reached].sort(), ['beta-v3', 'details-python', 'mtls', 'productpage', 'ratings-grpc', 'reviews']);

  seen = descendants(child.pid!);
  assert.ok(seen.length >= 13, `expected runners, sidecars and apps, found ${seen.length} processes`);
  const t0 = Date.now();
  child.kill('SIGINT');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 25_000)))]);
  clearTimeout(timer);
  assert.equal(code, 0, `the demo did not exit cleanly (${String(code)}):\n${output.slice(-20).join('\n')}`);
  assert.ok(Date.now() - t0 < 25_000);
  // Zombies aside, nothing the demo started may still run.
  const deadline = Date.now() + 3000;
  let left = seen.filter(alive);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = seen.filter(alive);
  }
  assert.deepEqual(left, [], 'processes left behind after SIGINT');
  assert.ok(output.some((l) => l.includes('trellis demo: stopped')));
});

test('trellis demo refuses to start when one of its ports is taken, naming it', { timeout: 30_000 }, async (t) => {
  const base = await freeBase();
  const net = await import('node:net');
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(base + 2, '127.0.0.1', r));
  t.after(() => holder.close());
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'trellis.ts'), 'demo', '--base-port', String(base)], {
    cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  t.after(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  assert.equal(code, 1);
  assert.match(stderr, new RegExp(`port ${base + 2} \\(ingress\\) on 127\\.0\\.0\\.1 is already in use.*--base-port`));
});
