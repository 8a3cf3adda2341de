// `npm install` step: build the native addons in native/ (today only
// orig-dst, the SO_ORIGINAL_DST reader for transparent capture) with
// node-gyp against local Node headers (no download: the machine has no
// network beyond the registries). N-API is ABI-stable, so headers of an
// older Node on the machine (/usr/include/node) build an addon the project's
// Node 24 loads. Never fails the install: without the addon only
// transparent capture is unavailable, and its tests say why they skip.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const addons = ['native/orig-dst'];

function nodeGyp(): string[] | undefined {
  const candidates: string[] = [];
  if (process.env.npm_execpath) candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push('/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js', '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  for (const c of candidates) if (existsSync(c)) return [process.execPath, c];
  const which = spawnSync('sh', ['-c', 'command -v node-gyp'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return [which.stdout.trim()];
  return undefined;
}

function nodeDir(): string | undefined {
  const fromEnv = process.env.npm_config_nodedir;
  const candidates = [fromEnv, path.join(path.dirname(process.execPath), '..'), '/usr', '/usr/local'];
  for (const c of candidates) if (c && existsSync(path.join(c, 'include', 'node', 'node_api.h'))) return c;
  return undefined;
}

const gyp = nodeGyp();
const dir = nodeDir();
if (!gyp || !dir) {
  console.log(`build-native: skipped (${!gyp ? 'node-gyp not found' : 'no Node headers with node_api.h found'}); transparent capture will be unavailable`);
  process.exit(0);
}
for (const addon of addons) {
  const cwd = path.join(root, addon);
  const [cmd, ...args] = gyp;
  const r = spawnSync(cmd!, [...args, 'rebuild', `--nodedir=${dir}`], { cwd, encoding: 'utf8', env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` } });
  if (r.status === 0) console.log(`build-native: built ${addon}`);
  else console.log(`build-native: ${addon} failed to build (exit ${r.status}); transparent capture will be unavailable\n${(r.stderr || r.stdout || '').split('\n').slice(-15).join('\n')}`);
}
