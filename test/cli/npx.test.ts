// `npx trellis` on a machine whose own Node is older than the project's
// (the README's case: `npm install` brings Node 24 through the `node`
// package): the command runs, on Node 24, with no `npm warn EBADENGINE`.
// Runs npx with the machine's own Node and a fresh npm cache, as a first
// call on a fresh clone would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');

/** The machine's own node and npx (outside node_modules), if its Node is older than 22.12. */
function oldSystemNode(): { node: string; npx: string; version: string } | string {
  for (const node of ['/usr/bin/node', '/usr/local/bin/node']) {
    if (!existsSync(node)) continue;
    const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
    const [major, minor] = version.slice(1).split('.').map(Number) as [number, number];
    if (major > 22 || (major === 22 && minor >= 12)) return `the machine's node (${node}) is ${version}, not older than the project's`;
    const npxBin = [path.join(path.dirname(node), 'npx')].find(existsSync);
    if (!npxBin) return `no npx next to ${node}`;
    return { node, npx: realpathSync(npxBin), version };
  }
  return 'no system node in /usr/bin or /usr/local/bin';
}

test('npx trellis with the machine\'s older Node: no EBADENGINE warning, the CLI runs on the project\'s Node', { timeout: 120_000 }, (t) => {
  const sys = oldSystemNode();
  if (typeof sys === 'string') {
    t.skip(sys);
    console.log(`# SKIP: ${sys}`);
    return;
  }
  const cache = mkdtempSync(path.join(tmpdir(), 'trellis-npx-cache-'));
  t.after(() => rmSync(cache, { recursive: true, force: true }));
  // Only the machine's own tools on PATH, and none of the npm_* variables
  // of an npm script that may be running this test.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('npm_')) env[k] = v;
  Object.assign(env, { npm_config_cache: cache, npm_config_update_notifier: 'false', PATH: `${path.dirname(sys.node)}:/usr/bin:/bin` });
  const r = spawnSync(sys.node, [sys.npx, 'trellis', '--help'], { cwd: root, env, encoding: 'utf8', timeout: 100_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /EBADENGINE/, `npm's Node ${sys.version}:\n${r.stderr}`);
  assert.match(r.stdout, /^usage: trellis <command> \[options\]/);
});
