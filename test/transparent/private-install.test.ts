// Transparent mode from an installation the proxy's uid cannot enter
// (issue 19). The repository is copied into a `mktemp -d` directory (0700,
// as /root is), node_modules hard-linked in with the Node binary among them,
// and `trellis run --transparent` runs from there with that Node, under
// umask 077: two pods, mTLS (the server's join token in a 0600 file inside
// the private directory), a plain HTTP call by service name through both
// sidecars. The old runner started the sidecar, uid 1337, on the copy's own
// Node: "setpriv: failed to execute <copy>/node_modules/node/bin/node:
// Permission denied". Root and Linux only; skips with the reason otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { allocateVip } from '../../src/control-plane/registry/vip.ts';
import { ADDON_PATH } from '../../src/proxy/orig-dst.ts';
import { runtimeDir } from '../../src/runner/staged-runtime.ts';
import { DEFAULT_PROXY_UID, netnsName, transparentUnsupported } from '../../src/runner/transparent.ts';
import { apply, controlPlane, events, joinToken, ROOT, service, waitFor, type Running } from '../run/harness.ts';

const why = await transparentUnsupported();
if (why) console.log(`# private-install transparent test skipped: ${why}`);

function forceCleanup(name: string): void {
  if (!existsSync(`/run/netns/${netnsName(name)}`)) return;
  try {
    execFileSync('ip', ['netns', 'del', netnsName(name)]);
  } catch {
    // gone
  }
}

/** The runnable part of the repository, copied into `dest`: node_modules
 * hard-linked (copied where links cannot cross filesystems). */
function copyInstallation(dest: string): void {
  mkdirSync(dest);
  copyFileSync(path.join(ROOT, 'package.json'), path.join(dest, 'package.json'));
  for (const d of ['bin', 'src', 'test/run/apps']) cpSync(path.join(ROOT, d), path.join(dest, d), { recursive: true });
  const addon = path.join(dest, path.relative(ROOT, ADDON_PATH));
  mkdirSync(path.dirname(addon), { recursive: true });
  copyFileSync(ADDON_PATH, addon);
  // As a clone made under umask 077 would be (not node_modules: its files are links).
  execFileSync('chmod', ['-R', 'go-rwx', ...['package.json', 'bin', 'src', 'test', 'native'].map((d) => path.join(dest, d))]);
  try {
    execFileSync('cp', ['-al', path.join(ROOT, 'node_modules'), path.join(dest, 'node_modules')], { stdio: 'pipe' });
  } catch {
    rmSync(path.join(dest, 'node_modules'), { recursive: true, force: true });
    execFileSync('cp', ['-a', path.join(ROOT, 'node_modules'), path.join(dest, 'node_modules')]);
  }
}

/** `trellis run ARGS` from the copy, on the copy's Node, under umask 077
 * (as on a hardened system: every file the runner makes is private unless
 * it says otherwise). */
function runFromCopy(t: TestContext, copy: string, cp: { apiUrl: string; xdsAddress: string }, args: string[], env: NodeJS.ProcessEnv): Running {
  const node = path.join(copy, 'node_modules', 'node', 'bin', 'node');
  const child = spawn('sh', ['-c', 'umask 077 && exec "$@"', 'sh', node, path.join(copy, 'bin', 'trellis.ts'), 'run', '--server', cp.apiUrl, '--drain-ms', '500', ...args], {
    cwd: copy,
    env: { ...process.env, NODE_NO_WARNINGS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdout!.resume();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(killer);
    }
  });
  return { child, exit, stderr: () => err };
}

test('transparent pods run from an installation in a 0700 directory, mTLS with a join token file in it', { skip: why, timeout: 180_000 }, async (t) => {
  const priv = mkdtempSync(path.join(tmpdir(), 'trellis-private-'));
  t.after(() => rmSync(priv, { recursive: true, force: true }));
  assert.equal(statSync(priv).mode & 0o777, 0o700);
  const copy = path.join(priv, 'trellis');
  copyInstallation(copy);
  const node = path.join(copy, 'node_modules', 'node', 'bin', 'node');
  // The condition of the issue holds: the proxy's uid can run neither the
  // copy's Node nor read its code.
  for (const p of [node, path.join(copy, 'bin', 'trellis.ts')]) {
    const r = spawnSync('setpriv', [`--reuid=${DEFAULT_PROXY_UID}`, `--regid=${DEFAULT_PROXY_UID}`, '--clear-groups', '--', 'test', '-r', p]);
    assert.notEqual(r.status, 0, `uid ${DEFAULT_PROXY_UID} must not reach ${p}`);
  }

  const cp = await controlPlane(t);
  await apply(cp, service('reviews', 9080, 'http'));
  await apply(cp, service('productpage', 9080, 'http'));
  assert.ok((await allocateVip(cp.store, 'default', 'reviews')).ok);
  for (const n of ['reviews-p1', 'productpage-p1']) t.after(() => forceCleanup(n));

  const tokenFile = path.join(priv, 'reviews.token');
  writeFileSync(tokenFile, await joinToken(cp, 'reviews', 'reviews-p1'), { mode: 0o600 });
  const reviews = runFromCopy(t, copy, cp, ['--transparent', '--service', 'reviews', '--workload', 'reviews-p1', '--port', '9080:http', '--', node, path.join(copy, 'test/run/apps/http-server.ts'), '9080', 'reviews-pod'],
    { TRELLIS_JOIN_TOKEN_FILE: tokenFile });
  await waitFor('reviews app started in its pod', () => (events(reviews.stderr()).some((e) => e.event === 'app_started') ? true
    : reviews.child.exitCode !== null ? Promise.reject(new Error(reviews.stderr())) : undefined), 90_000);

  // The server's proxy: uid 1337, on the staged Node, its join token in a
  // file only it can read, not in its environment.
  const pid = events(reviews.stderr()).find((e) => e.event === 'sidecar_started')?.pid as number;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  assert.match(status, new RegExp(`^Uid:\\s+${DEFAULT_PROXY_UID}\\s`, 'm'));
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  assert.ok(argv[0]!.startsWith(`${runtimeDir()}/node-`), argv.join(' '));
  assert.ok(argv.some((a) => a.startsWith(`${runtimeDir()}/proxy-`) && a.endsWith('/bin/trellis.ts')), argv.join(' '));
  const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  const podDir = `/run/trellis/pods/${netnsName('reviews-p1')}`;
  assert.ok(environ.includes(`TRELLIS_JOIN_TOKEN_FILE=${podDir}/join-token`), environ.filter((e) => e.startsWith('TRELLIS')).join(' '));
  assert.ok(environ.some((e) => e.startsWith(`NODE_COMPILE_CACHE=${runtimeDir()}/proxy-`)));
  assert.ok(!environ.some((e) => e.startsWith('TRELLIS_JOIN_TOKEN=')));
  const tokenSt = statSync(`${podDir}/join-token`);
  assert.deepEqual([tokenSt.uid, tokenSt.mode & 0o777], [DEFAULT_PROXY_UID, 0o400]);
  const podDirSt = statSync(podDir);
  assert.deepEqual([podDirSt.uid, podDirSt.gid, podDirSt.mode & 0o777], [0, DEFAULT_PROXY_UID, 0o750]);

  const out = path.join(priv, 'client.json');
  const client = runFromCopy(t, copy, cp, ['--transparent', '--service', 'productpage', '--workload', 'productpage-p1', '--port', '9080:http', '--', node, path.join(copy, 'test/run/apps/plain-client.ts'), 'http://reviews:9080/from-a-private-install'],
    { OUT: out, TRELLIS_JOIN_TOKEN: await joinToken(cp, 'productpage', 'productpage-p1') });
  const ce = await client.exit;
  const rec = existsSync(out) ? (JSON.parse(readFileSync(out, 'utf8')) as { result?: { body: string; headers: Record<string, string> }; errors: string[] }) : undefined;
  assert.equal(ce.code, 0, `client failed: ${JSON.stringify(rec)}\n${client.stderr()}\nreviews: ${reviews.stderr().slice(-3000)}`);
  assert.equal(rec?.result?.body, 'reviews-pod /from-a-private-install');
  // Both sidecars got their identities: the callee verified the caller's certificate.
  assert.match(rec?.result?.headers['x-peer'] ?? '', /^spiffe:\/\/[^/]+\/ns\/default\/sa\/productpage$/);

  reviews.child.kill('SIGTERM');
  assert.equal((await reviews.exit).code, 0);
  assert.equal(existsSync(`/run/netns/${netnsName('reviews-p1')}`), false);
  assert.equal(existsSync(`/run/trellis/pods/${netnsName('reviews-p1')}`), false, 'the proxy\'s files are removed with the pod');
});
