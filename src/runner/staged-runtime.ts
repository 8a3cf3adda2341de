// The sidecar's runtime, staged where a transparent pod's proxy uid can run it.
//
// In a pod the proxy runs as its own uid (1337, transparent.ts) so that
// iptables can exempt its traffic. That uid must execute Node and read the
// proxy's code, and an installation in a private directory (0700: /root,
// any `mktemp -d`) is out of its reach. So the runner copies what the proxy
// needs, once per content, into a directory only root can write and anyone
// can read:
//
//   /var/lib/trellis/runtime/            ($TRELLIS_RUNTIME_DIR) it and every parent
//   │                                    root-owned, not group/world-writable (else refused)
//   ├─ node-<sha256 of the binary>/node  the runner's own Node (process.execPath)
//   └─ proxy-<sha256 of node, uid, files>/
//        package.json bin/ src/ (no tests, no test fixtures)
//        native/orig-dst/build/Release/orig_dst.node
//        node_modules/<what the proxy's code imports, and their dependencies>
//        compile-cache/                  Node's compile cache, filled by root
//
// The packages are found from the proxy's own import graph (bin/trellis.ts
// and the `proxy` command, following relative imports), then each package's
// dependencies: the control plane's and the dashboard's packages, and the
// 190 MB `node` package, stay behind. An entry is built in a `.tmp-*`
// directory beside it and renamed into place: an entry that exists is
// complete and never changes, so concurrent runners share it; when two build
// the same one, one rename wins and the other copy is removed.
//
// The compile cache is filled at staging by running `proxy --help` from the
// copy as root. Node names the cache's subdirectory after the version and
// the uid that writes it (`v24.21.0-x64-964aae3f-0`); root's is renamed to
// the proxy uid's name, so the proxy reads it (its start-up skips type
// stripping) but neither it nor anyone else but root can write it. Keys are
// relative to the cache (NODE_COMPILE_CACHE_PORTABLE), so it survives the
// rename from the `.tmp-*` directory.
//
// Nothing is pruned automatically; docs/running.md says how to clean up.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { ADDON_PATH } from '../proxy/orig-dst.ts';
import { PROXY_NODE_FLAGS } from '../proxy/runtime.ts';
import type { ProxyRuntime } from './sidecar.ts';

/** The installation the runner runs from (bin/, src/, node_modules/). */
export const INSTALL_DIR = path.resolve(import.meta.dirname, '..', '..');
export const DEFAULT_RUNTIME_DIR = '/var/lib/trellis/runtime';

export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.TRELLIS_RUNTIME_DIR || DEFAULT_RUNTIME_DIR;
}

export type StageResult = { ok: true; runtime: ProxyRuntime; built: string[] } | { ok: false; message: string };

export interface StageOptions {
  /** The uid the proxy runs as (its compile cache is named after it). */
  uid: number;
  /** Default runtimeDir(). */
  root?: string;
  installDir?: string;
  /** Default process.execPath. */
  node?: string;
}

const ENTRIES = ['bin/trellis.ts', 'src/cli/commands/proxy.ts'];
const IMPORT = /\b(?:from|import)\s*\(?\s*['"]([^'"\n]+)['"]/g;
/** Temporary build directories older than this were left by a killed runner. */
const STALE_TMP_MS = 3600_000;

/** Stages (or finds) the proxy's runtime under `root`; never throws. */
export function stageProxyRuntime(opts: StageOptions): StageResult {
  const installDir = opts.installDir ?? INSTALL_DIR;
  const node = opts.node ?? process.execPath;
  try {
    const r = safeRoot(opts.root ?? runtimeDir());
    if (!r.ok) return r;
    const root = r.root;
    removeStaleTemps(root);
    const built: string[] = [];
    const nodeDir = entry(root, 'node', [{ rel: 'node', abs: node }], '', built, (tmp) => copy(node, path.join(tmp, 'node'), 0o755));
    const files = proxyFiles(installDir);
    const proxyDir = entry(root, 'proxy', files, `${path.basename(nodeDir)} ${opts.uid}`, built, (tmp) => {
      for (const f of files) copy(f.abs, path.join(tmp, f.rel), statSync(f.abs).mode & 0o111 ? 0o755 : 0o644);
      warmCompileCache(path.join(nodeDir, 'node'), tmp, opts.uid);
    });
    return { ok: true, built, runtime: { node: path.join(nodeDir, 'node'), entry: path.join(proxyDir, 'bin', 'trellis.ts'), compileCache: path.join(proxyDir, 'compile-cache') } };
  } catch (err) {
    return { ok: false, message: `cannot stage the proxy's runtime in ${opts.root ?? runtimeDir()}: ${(err as Error).message}` };
  }
}

/** The entry `<kind>-<content hash>` for `files`, built if missing. Hashing
 * the node binary and the code takes about a second on a busy machine, so
 * `.index/` remembers the hash for the files' exact stat (device, inode,
 * size, mtime, ctime: a write changes ctime, which no one but the kernel
 * sets), as git's index does: an unchanged installation is matched by stat. */
function entry(root: string, kind: string, files: readonly StagedFile[], salt: string, built: string[], build: (tmp: string) => void): string {
  const index = path.join(root, '.index');
  const memo = path.join(index, `${kind}-${statHash(files, salt)}`);
  let remembered = '';
  try {
    remembered = readFileSync(memo, 'utf8');
  } catch {
    // not seen yet
  }
  if (/^[a-z]+-[0-9a-f]{32}$/.test(remembered) && existsSync(path.join(root, remembered))) return path.join(root, remembered);
  const dir = path.join(root, `${kind}-${hashFiles(files, salt)}`);
  if (!existsSync(dir)) {
    publish(root, dir, build);
    built.push(dir);
  }
  if (!existsSync(index)) {
    mkdirSync(index, { recursive: true });
    chmodSync(index, 0o755);
  }
  const tmp = `${memo}.${process.pid}`;
  writeFileSync(tmp, path.basename(dir), { mode: 0o644 });
  renameSync(tmp, memo);
  return dir;
}

/** Creates `root` (0755) if needed, then checks that it and every directory
 * above it belong to root and nobody else can write them: what is staged
 * there runs in every pod's proxy. */
function safeRoot(root: string): { ok: true; root: string } | { ok: false; message: string } {
  if (!path.isAbsolute(root)) return { ok: false, message: `TRELLIS_RUNTIME_DIR ${JSON.stringify(root)}: must be an absolute path` };
  const first = mkdirSync(root, { recursive: true, mode: 0o755 });
  // mkdir's mode is masked by the umask: the directories made here get 0755.
  if (first !== undefined) for (let d = root; d.length >= first.length; d = path.dirname(d)) chmodSync(d, 0o755);
  const real = realpathSync(root);
  for (let d = real; ; d = path.dirname(d)) {
    const st = statSync(d);
    const bad = st.uid !== 0 ? `${d} belongs to uid ${st.uid}` : st.mode & 0o022 ? `${d} is writable by ${st.mode & 0o002 ? 'everyone' : 'its group'} (mode ${modeString(st.mode)})` : undefined;
    if (bad) return { ok: false, message: `the proxy's runtime cannot be staged in ${root}: ${bad}; only root may write there, since the code in it runs in every pod's proxy (set TRELLIS_RUNTIME_DIR to a root-owned directory, e.g. ${DEFAULT_RUNTIME_DIR})` };
    if (d === path.dirname(d)) break;
  }
  return { ok: true, root: real };
}

function modeString(mode: number): string {
  return `0${(mode & 0o7777).toString(8)}`;
}

function removeStaleTemps(root: string): void {
  for (const name of readdirSync(root)) {
    if (!name.startsWith('.tmp-')) continue;
    const p = path.join(root, name);
    try {
      if (Date.now() - statSync(p).mtimeMs > STALE_TMP_MS) rmSync(p, { recursive: true, force: true });
    } catch {
      // another runner removed it
    }
  }
}

/** Builds an entry in a temporary directory beside it and renames it into
 * place; when another runner got there first, its entry stays. */
function publish(root: string, final: string, build: (tmp: string) => void): void {
  const tmp = mkdtempSync(path.join(root, `.tmp-${path.basename(final)}-`));
  try {
    build(tmp);
    normalizeModes(tmp);
    try {
      renameSync(tmp, final);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !existsSync(final)) throw err;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function copy(from: string, to: string, mode: number): void {
  mkdirSync(path.dirname(to), { recursive: true });
  copyFileSync(from, to);
  chmodSync(to, mode);
}

/** Directories 0755, files 0644 or 0755 (whatever the umask or Node chose). */
function normalizeModes(dir: string): void {
  chmodSync(dir, 0o755);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) normalizeModes(p);
    else if (e.isFile()) chmodSync(p, statSync(p).mode & 0o100 ? 0o755 : 0o644);
  }
}

interface StagedFile {
  /** Path in the installation and in the staged copy. */
  rel: string;
  abs: string;
}

/** sha256 (32 hex digits) over each file's path and stat. */
function statHash(files: readonly StagedFile[], salt: string): string {
  const h = createHash('sha256').update(`${salt}\0`);
  for (const f of files) {
    const st = statSync(f.abs, { bigint: true });
    h.update(`${f.rel}\0${st.dev} ${st.ino} ${st.mode} ${st.size} ${st.mtimeNs} ${st.ctimeNs}\0`);
  }
  return h.digest('hex').slice(0, 32);
}

/** sha256 (32 hex digits) over each file's path, mode and content. */
function hashFiles(files: readonly StagedFile[], salt = ''): string {
  const h = createHash('sha256').update(`trellis-proxy-runtime 1\0${salt}\0`);
  for (const f of files) {
    const data = readFileSync(f.abs);
    h.update(`${f.rel}\0${statSync(f.abs).mode & 0o111 ? 'x' : '-'}\0${data.length}\0`).update(data);
  }
  return h.digest('hex').slice(0, 32);
}

/** Everything the proxy process reads from the installation, sorted. */
export function proxyFiles(installDir: string = INSTALL_DIR): StagedFile[] {
  const out: StagedFile[] = [];
  const add = (abs: string): void => void out.push({ rel: path.relative(installDir, abs), abs });
  add(path.join(installDir, 'package.json'));
  walk(path.join(installDir, 'bin'), add, () => true);
  // Not the tests, nor their fixtures (test keys among them).
  walk(path.join(installDir, 'src'), add, (p, dir) => (dir ? path.basename(p) !== 'fixtures' : !p.endsWith('.test.ts')));
  add(path.join(installDir, path.relative(INSTALL_DIR, ADDON_PATH)));
  // Of a package, what Node may load: not its nested packages (each is one
  // of the list if it is needed), nor type declarations and source maps.
  for (const pkg of proxyPackages(installDir)) walk(pkg, add, (p, dir) => (dir ? p !== path.join(pkg, 'node_modules') : !/\.([cm]?ts|map)$/.test(p)));
  return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}

function walk(dir: string, add: (abs: string) => void, keep: (p: string, isDir: boolean) => boolean): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    // A symbolic link is followed to a file, never to a directory (no loops).
    const isDir = e.isDirectory();
    const isFile = e.isFile() || (e.isSymbolicLink() && statSync(p, { throwIfNoEntry: false })?.isFile() === true);
    if (!keep(p, isDir)) continue;
    if (isDir) walk(p, add, keep);
    else if (isFile) add(p);
  }
}

/** The package directories the proxy loads: the packages its code imports
 * (from the `proxy` command's graph of relative imports, including lazy
 * `import()`s), and theirs, resolved as Node does within the installation. */
export function proxyPackages(installDir: string = INSTALL_DIR): string[] {
  const seen = new Set<string>();
  const queue = ENTRIES.map((e) => path.join(installDir, e));
  const packages = new Set<string>();
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) {
        const target = path.resolve(path.dirname(file), spec);
        if (/\.(ts|js|mjs)$/.test(target) && existsSync(target)) queue.push(target);
      } else if (!isBuiltin(spec)) {
        const parts = spec.split('/');
        packages.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
      }
    }
  }
  const dirs = new Set<string>();
  const pending: [string, string][] = [...packages].map((p) => [p, installDir]);
  while (pending.length > 0) {
    const [name, from] = pending.pop()!;
    const dir = resolvePackage(name, from, installDir);
    if (dir === undefined || dirs.has(dir)) continue;
    dirs.add(dir);
    const pj = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
    for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies']) {
      for (const dep of Object.keys(pj[field] ?? {})) pending.push([dep, dir]);
    }
  }
  return [...dirs].sort();
}

/** node_modules/<name> in `from` or the nearest directory above it, up to `top`. */
function resolvePackage(name: string, from: string, top: string): string | undefined {
  for (let d = from; ; d = path.dirname(d)) {
    const candidate = path.join(d, 'node_modules', name);
    if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (d === top || d === path.dirname(d)) return undefined;
  }
}

/** The environment for a trial run of the staged Node: what Node itself
 * reads from the runner's, and nothing else (no join token). */
function nodeEnv(): NodeJS.ProcessEnv {
  const { PATH = '/usr/bin:/bin', NODE_OPTIONS } = process.env;
  return { PATH, NODE_NO_WARNINGS: '1', ...(NODE_OPTIONS ? { NODE_OPTIONS } : {}) };
}

/** Runs `proxy --help` from the copy as root so Node fills the compile
 * cache, then gives root's cache the proxy uid's name. */
function warmCompileCache(node: string, dir: string, uid: number): void {
  const cache = path.join(dir, 'compile-cache');
  const r = spawnSync(node, [...PROXY_NODE_FLAGS, path.join(dir, 'bin', 'trellis.ts'), 'proxy', '--help'], {
    env: { ...nodeEnv(), NODE_COMPILE_CACHE: cache, NODE_COMPILE_CACHE_PORTABLE: '1' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`the staged proxy does not start (${node} ${dir}/bin/trellis.ts proxy --help): ${(r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-3).join(' ')}`);
  if (uid === 0 || !existsSync(cache)) return;
  for (const name of readdirSync(cache)) if (name.endsWith('-0')) renameSync(path.join(cache, name), path.join(cache, `${name.slice(0, -2)}-${uid}`));
}

/** What the proxy uid checks before a pod starts: it can run the staged
 * Node, read `dirs` (its bootstrap), load the SO_ORIGINAL_DST addon and the
 * whole `proxy` command. Root cannot tell this from modes alone (ACLs,
 * noexec mounts), so it is tried. */
const PREFLIGHT = `
import { accessSync, constants } from 'node:fs';
const [dir, ...dirs] = process.argv.slice(1);
for (const d of dirs) accessSync(d, constants.R_OK | constants.X_OK);
const addon = (await import(dir + '/src/proxy/orig-dst.ts')).loadOrigDst();
if (!addon.ok) throw new Error(addon.reason);
await import(dir + '/src/cli/commands/proxy.ts');
`;

/** Why the proxy cannot run as `uid` from `runtime`, or undefined when it can. */
export function proxyUidCannotRun(runtime: ProxyRuntime, uid: number, dirs: readonly string[] = []): string | undefined {
  const dir = path.dirname(path.dirname(runtime.entry));
  const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', runtime.node, '--input-type=module', '-e', PREFLIGHT, dir, ...dirs], {
    env: { ...nodeEnv(), NODE_COMPILE_CACHE: runtime.compileCache, NODE_COMPILE_CACHE_PORTABLE: '1' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (r.status === 0) return undefined;
  const detail = (r.stderr || r.error?.message || `exit ${r.status ?? r.signal}`).trim().split('\n').filter((l) => /error|denied|cannot|failed|setpriv/i.test(l)).slice(0, 2).join(' ');
  const blocked = [runtime.node, dir, ...dirs].map((p) => unreachable(p, uid)).find((b) => b !== undefined);
  return `the sidecar proxy runs as uid ${uid} (so iptables can exempt its traffic) and cannot run from ${dir}: ${blocked ?? detail}. `
    + `Set TRELLIS_RUNTIME_DIR to a root-owned directory that every user can enter (mode 0755, on a filesystem mounted without noexec), e.g. ${DEFAULT_RUNTIME_DIR}`;
}

/** The first directory on the way to `target` that `uid` (with gid `uid`
 * and no other groups) may not enter, judged from its mode bits. */
export function unreachable(target: string, uid: number): string | undefined {
  const parts = path.resolve(target).split(path.sep).filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const d = `/${parts.slice(0, i).join('/')}`;
    const st = statSync(d, { throwIfNoEntry: false });
    if (!st?.isDirectory()) return undefined;
    const shift = st.uid === uid ? 6 : st.gid === uid ? 3 : 0;
    if (((st.mode >> shift) & 0o1) === 0) return `uid ${uid} may not enter ${d} (mode ${modeString(st.mode)}, owner uid ${st.uid})`;
  }
  return undefined;
}
