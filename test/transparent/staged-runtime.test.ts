// The proxy's staged runtime (src/runner/staged-runtime.ts) in a runtime
// directory of the test's own under /var/lib/trellis: two runners staging at
// once, what is staged and who may write it, the compile cache as the proxy
// uid uses it, and `trellis run --transparent` refusing before the app
// starts when the proxy uid cannot reach the runtime. Root and Linux only;
// skips with the reason otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_PROXY_UID, netnsName, transparentUnsupported } from '../../src/runner/transparent.ts';
import { stageProxyRuntime, type StageResult } from '../../src/runner/staged-runtime.ts';
import { ROOT, TRELLIS } from '../run/harness.ts';

const why = await transparentUnsupported();
if (why) console.log(`# staged runtime tests skipped: ${why}`);

const UID = DEFAULT_PROXY_UID;
const MODULE = path.join(ROOT, 'src', 'runner', 'staged-runtime.ts');

/** stageProxyRuntime in a process of its own, as a runner would. */
function stageInChild(root: string): Promise<StageResult> {
  const script = `const { stageProxyRuntime } = await import(${JSON.stringify(MODULE)}); console.log(JSON.stringify(stageProxyRuntime({ uid: ${UID}, root: ${JSON.stringify(root)} })));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  return new Promise((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as StageResult) : reject(new Error(`exit ${code}: ${out}`)))));
}

/** Every path under `dir` that is not root's or that group or others may write. */
function writableByOthers(dir: string): string[] {
  const out: string[] = [];
  const visit = (p: string): void => {
    const st = statSync(p);
    if (st.uid !== 0 || st.mode & 0o022) out.push(`${p} (uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)})`);
    if (st.isDirectory()) for (const n of readdirSync(p)) visit(path.join(p, n));
  };
  visit(dir);
  return out;
}

function asUid(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  return spawnSync('setpriv', [`--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', '--', ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env }, timeout: 60_000 });
}

test('staged runtime', { skip: why, timeout: 300_000 }, async (t) => {
  mkdirSync('/var/lib/trellis', { recursive: true });
  const base = mkdtempSync('/var/lib/trellis/test-');
  chmodSync(base, 0o755);
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const root = path.join(base, 'runtime');

  await t.test('two runners staging at once share one entry of each kind, root\'s and written by no one else', async () => {
    const [a, b] = await Promise.all([stageInChild(root), stageInChild(root)]);
    assert.ok(a.ok && b.ok, JSON.stringify([a, b]));
    assert.deepEqual(a.runtime, b.runtime);
    const names = readdirSync(root).sort();
    assert.equal(names.length, 3, names.join(' '));
    assert.match(names.join(' '), /^\.index node-[0-9a-f]{32} proxy-[0-9a-f]{32}$/, 'no build directory left behind');
    assert.deepEqual(writableByOthers(root), []);
    const proxyDir = path.dirname(path.dirname(a.runtime.entry));
    assert.equal(existsSync(path.join(proxyDir, 'node_modules', 'node')), false, 'the node package stays behind');
  });

  const again = stageProxyRuntime({ uid: UID, root });
  assert.ok(again.ok);
  const { runtime } = again;

  await t.test('an unchanged installation is found again, nothing built; a build directory left by a killed runner is removed', () => {
    const stale = path.join(root, '.tmp-proxy-left');
    mkdirSync(stale);
    const old = new Date(Date.now() - 2 * 3600_000);
    utimesSync(stale, old, old);
    const r = stageProxyRuntime({ uid: UID, root });
    assert.ok(r.ok);
    assert.deepEqual(r.built, []);
    assert.deepEqual(r.runtime, runtime);
    assert.equal(existsSync(stale), false);
  });

  await t.test('the proxy uid starts the staged proxy from the compile cache, and cannot write it', () => {
    const cache = readdirSync(runtime.compileCache);
    assert.deepEqual(cache.filter((n) => n.endsWith(`-${UID}`)).length, 1, `a cache named for uid ${UID}: ${cache.join(' ')}`);
    const r = asUid([runtime.node, '--max-semi-space-size=4', runtime.entry, 'proxy', '--help'], {
      NODE_COMPILE_CACHE: runtime.compileCache, NODE_COMPILE_CACHE_PORTABLE: '1', NODE_DEBUG_NATIVE: 'COMPILE_CACHE',
    });
    assert.equal(r.status, 0, r.stderr.slice(-2000));
    assert.match(r.stdout, /usage: trellis proxy/);
    // Every module came from the cache: nothing was compiled, so nothing was
    // to be written (a miss would try to, and be denied).
    assert.match(r.stderr, /was accepted/);
    assert.doesNotMatch(r.stderr, /permission denied/i);
    const dir = path.join(runtime.compileCache, cache.find((n) => n.endsWith(`-${UID}`))!);
    const entry = path.join(dir, readdirSync(dir)[0]!);
    assert.notEqual(asUid(['sh', '-c', `: >> '${entry}'`]).status, 0, 'a cache entry is not the proxy\'s to write');
    assert.notEqual(asUid(['sh', '-c', `: > '${dir}/planted'`]).status, 0, 'nor is the cache directory');
  });

  await t.test('trellis run --transparent says what the proxy uid cannot reach before it starts the app', () => {
    // Still safe (root's, no one else writes it), but uid 1337 may not enter it.
    chmodSync(base, 0o700);
    const marker = path.join(base, 'app-ran');
    const r = spawnSync(process.execPath, [TRELLIS, 'run', '--transparent', '--service', 'refused', '--workload', 'refused-r1', '--port', '9080', '--server', 'http://127.0.0.1:9', '--xds', '127.0.0.1:9', '--', 'touch', marker], {
      encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1', TRELLIS_RUNTIME_DIR: root }, timeout: 60_000,
    });
    assert.equal(r.status, 1, r.stderr);
    // (--xds: no API answers here, and the local check must come first anyway; its deprecation hint is the line before.)
    assert.match(r.stderr, new RegExp(`^trellis run: --transparent: the sidecar proxy runs as uid ${UID} .*uid ${UID} may not enter ${base} \\(mode 0700, owner uid 0\\)\\. Set TRELLIS_RUNTIME_DIR`, 'm'));
    assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
    assert.equal(existsSync(marker), false, 'the app did not start');
    assert.equal(existsSync(`/run/netns/${netnsName('refused-r1')}`), false, 'no pod was made');
  });
});
