// Builds the proxy-wasm test filters in examples/plugins/wasm/ with their
// SDKs, into a cache OUTSIDE the repository keyed by a hash of the sources
// and the recipe: ~/.cache/trellis-test/wasm-<sdk>-<hash>.wasm (override the
// folder with TRELLIS_TEST_CACHE). Nothing is rebuilt while the hash holds.
//
//   assemblyscript  @solo-io/proxy-runtime + assemblyscript from npm (pinned
//                   in the example's package.json), compiled with asc
//   rust            the proxy-wasm crate from crates.io (Cargo.lock pinned);
//                   crates are vendored with the newest cargo on the machine
//                   (rustup's: sparse index, MSRV-aware), then built offline
//                   by Debian's rustc + wasm32 std (libstd-rust-dev-wasm32)
//                   and linked with wasm-ld (lld): the only wasm32 Rust
//                   target the registries here can supply
//   go              not built: the proxy-wasm Go SDK is not served by the Go
//                   module proxy reachable here (403 for every version)
//
//   node scripts/build-test-wasm.ts            # build what is missing (.ci/run)
//   node scripts/build-test-wasm.ts rust       # one SDK
// Tests call testWasm(sdk) and skip with the printed reason when a
// toolchain is truly absent.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** An example filter: its folder under examples/plugins/wasm/ and the SDK that builds it. */
export type Sdk = 'assemblyscript' | 'assemblyscript-empty' | 'rust' | 'rust-features';
export const SDKS: readonly Sdk[] = ['assemblyscript', 'assemblyscript-empty', 'rust', 'rust-features'];

const root = path.resolve(import.meta.dirname, '..');
const cacheDir = process.env.TRELLIS_TEST_CACHE ?? path.join(os.homedir(), '.cache', 'trellis-test');
const RECIPE_VERSION = '1';

function sources(sdk: Sdk): string {
  return path.join(root, 'examples', 'plugins', 'wasm', sdk);
}

function hashDir(dir: string, h = createHash('sha256')): string {
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      if (name === 'node_modules' || name === 'target' || name === 'vendor' || name === 'build') continue;
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else {
        h.update(path.relative(dir, p));
        h.update(readFileSync(p));
      }
    }
  };
  walk(dir);
  return h.digest('hex').slice(0, 16);
}

export function wasmPath(sdk: Sdk): string {
  const h = createHash('sha256');
  h.update(`${RECIPE_VERSION}\n${sdk}\n`);
  return path.join(cacheDir, `wasm-${sdk}-${hashDir(sources(sdk), h)}.wasm`);
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): { ok: true } | { ok: false; error: string } {
  const r = spawnSync('nice', [cmd, ...args], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 15 * 60_000 });
  if (r.error) return { ok: false, error: `${cmd}: ${r.error.message}` };
  if (r.status !== 0) return { ok: false, error: `${cmd} ${args.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).trim().split('\n').slice(-8).join('\n')}` };
  return { ok: true };
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** Debian packages a build needs, installed when missing and we are root. */
function aptEnsure(pkgs: { bin: string; pkg: string }[]): string | undefined {
  const need = pkgs.filter((p) => !existsSync(p.bin)).map((p) => p.pkg);
  if (need.length === 0) return undefined;
  if (process.getuid?.() !== 0) return `needs ${need.join(', ')} (not root: cannot install)`;
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  const r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...need], { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return r.status === 0 ? undefined : `could not install ${need.join(', ')}: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`;
}

function buildAssemblyScript(work: string): { ok: true; out: string } | { ok: false; error: string } {
  const npm = run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts'], work);
  if (!npm.ok) return npm;
  const out = path.join(work, 'build', 'filter.wasm');
  mkdirSync(path.dirname(out), { recursive: true });
  const asc = run(process.execPath, [path.join(work, 'node_modules', 'assemblyscript', 'bin', 'asc'), 'assembly/index.ts', '-b', out, '--use', 'abort=abort_proc_exit', '-O3'], work);
  return asc.ok ? { ok: true, out } : asc;
}

function buildRust(work: string, crate: string): { ok: true; out: string } | { ok: false; error: string } {
  const missing = aptEnsure([
    { bin: '/usr/bin/rustc', pkg: 'rustc' },
    { bin: '/usr/bin/cargo', pkg: 'cargo' },
    { bin: '/usr/lib/rustlib/wasm32-unknown-unknown', pkg: 'libstd-rust-dev-wasm32' },
    { bin: '/usr/bin/wasm-ld', pkg: 'lld' },
  ]);
  if (missing) return { ok: false, error: missing };
  // Vendoring needs a cargo that speaks the sparse index (Debian's 1.65 does not).
  const vendorCargo = [path.join(os.homedir(), '.cargo', 'bin', 'cargo'), 'cargo'].find((c) => c.includes('/') ? existsSync(c) : have(c));
  if (!vendorCargo) return { ok: false, error: 'no cargo to fetch crates with' };
  const v = run(vendorCargo, ['vendor', '--locked', '--versioned-dirs', 'vendor'], work);
  if (!v.ok) return v;
  mkdirSync(path.join(work, '.cargo'), { recursive: true });
  writeFileSync(path.join(work, '.cargo', 'config.toml'), '[source.crates-io]\nreplace-with = "vendored-sources"\n\n[source.vendored-sources]\ndirectory = "vendor"\n');
  const b = run('/usr/bin/cargo', ['build', '--offline', '--locked', '--release', '--target', 'wasm32-unknown-unknown'], work, {
    RUSTC: '/usr/bin/rustc',
    RUSTFLAGS: '-C linker=wasm-ld',
    CARGO_HOME: path.join(work, '.cargo-home'),
    CARGO_BUILD_JOBS: '1',
  });
  return b.ok ? { ok: true, out: path.join(work, 'target', 'wasm32-unknown-unknown', 'release', `${crate}.wasm`) } : b;
}

/** The built filter of one SDK (building it when missing). */
export function testWasm(sdk: Sdk): { ok: true; path: string } | { ok: false; reason: string } {
  const target = wasmPath(sdk);
  if (existsSync(target)) return { ok: true, path: target };
  const as = sdk.startsWith('assemblyscript');
  if (as && !have('npm')) return { ok: false, reason: 'npm is not on PATH' };
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const work = path.join(cacheDir, `build-${path.basename(target, '.wasm')}`);
  rmSync(work, { recursive: true, force: true });
  cpSync(sources(sdk), work, { recursive: true });
  const r = as ? buildAssemblyScript(work) : buildRust(work, `trellis_example_wasm_${sdk.replace('-', '_')}`);
  if (!r.ok) return { ok: false, reason: `building the ${sdk} test filter failed: ${r.error}` };
  const tmp = `${target}.tmp-${process.pid}`;
  copyFileSync(r.out, tmp);
  renameSync(tmp, target);
  rmSync(work, { recursive: true, force: true });
  return { ok: true, path: target };
}

if (import.meta.main) {
  const want = process.argv.slice(2) as Sdk[];
  let failed = false;
  for (const sdk of want.length > 0 ? want : SDKS) {
    const r = testWasm(sdk);
    if (r.ok) console.log(`build-test-wasm: ${sdk}: ${r.path}`);
    else {
      console.log(`build-test-wasm: ${sdk}: ${r.reason}`);
      failed = true;
    }
  }
  // Never fails CI by itself: the tests that need a filter say why they skip.
  process.exitCode = failed && want.length > 0 ? 1 : 0;
}
