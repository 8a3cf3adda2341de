// V8 settings for a proxy process: many short-lived objects per request, a
// small set that lives for the process. Measured in docs/benchmarks.md
// ("Garbage collection").
//
// - Allocation-site pretenuring off. V8 watches which allocation sites'
//   objects survive a scavenge and, past a threshold, allocates them straight
//   in the old generation. In a proxy that decision is made for the request
//   path (request heads, header maps, exchanges) in the first busy second,
//   when young-generation collections come often and catch many requests in
//   flight; from then on every request's garbage goes to the old space, each
//   scavenge spends 10-25 ms on it and the heap grows until a full
//   mark-compact. With it off, a scavenge under load takes ~2 ms and the old
//   space stays flat. It is read at run time, so it is set here, before the
//   proxy serves.
// - A small young generation (PROXY_NODE_FLAGS): V8 grows the semi-spaces to
//   tens of MB under load, all of it resident, though a request's objects
//   die within it in microseconds. This one is fixed when the heap is
//   created, so whoever starts a proxy process passes it on the command line
//   (runner/sidecar.ts, the demo, the benchmark).
// - A low heap growing factor (20%). The old generation of a proxy holds
//   its config, a few MB, plus whatever requests in flight were promoted;
//   V8's own factor let it grow to several times that (80+ MB of garbage
//   under HTTP/2 load) before a full collection, all of it resident. At 20%
//   full collections come more often but are short (the live set is small):
//   peak RSS under the benchmark's loads 183 -> 119 MB, total GC time the
//   same (docs/benchmarks.md, "Memory"). Read at run time, so set here.
// - Node's compile cache (proxyEnv): the proxy runs from TypeScript, and
//   Node strips the types with a WebAssembly compiler that, once loaded,
//   keeps ~20 MB of a process's memory. With the cache, a process whose
//   modules were stripped and compiled before (the cache is keyed by their
//   content) never loads it, and starts faster. Same launchers.
import path from 'node:path';
import v8 from 'node:v8';

/** Node options for a `trellis proxy` process, before the script. */
export const PROXY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];

/** Where the compile cache lives: in the installation's node_modules/.cache,
 * writable only by whoever installed it (the cache holds code that is run,
 * so not a shared temporary directory another user could fill first). */
export const COMPILE_CACHE_DIR = path.resolve(import.meta.dirname, '..', '..', 'node_modules', '.cache', 'trellis-compile');

/** The environment for a `trellis proxy` process: `env` with Node's compile
 * cache in `cacheDir` on, unless the operator chose a directory for it or
 * turned it off (NODE_COMPILE_CACHE, NODE_DISABLE_COMPILE_CACHE). Its keys
 * are relative to the cache (portable), so a cache filled in one place
 * serves a copy moved elsewhere (runner/staged-runtime.ts). */
export function proxyEnv(env: NodeJS.ProcessEnv = process.env, cacheDir: string = COMPILE_CACHE_DIR): NodeJS.ProcessEnv {
  if (env.NODE_COMPILE_CACHE || env.NODE_DISABLE_COMPILE_CACHE) return env;
  return { ...env, NODE_COMPILE_CACHE: cacheDir, NODE_COMPILE_CACHE_PORTABLE: '1' };
}

/** How far the old generation may grow past what the last full collection
 * kept before the next one starts (V8 picks 1.1x-4x by itself). */
export const HEAP_GROWING_PERCENT = 20;

let tuned = false;

/** Apply the run-time V8 settings; idempotent. */
export function tuneProxyRuntime(): void {
  if (tuned) return;
  tuned = true;
  v8.setFlagsFromString('--no-allocation-site-pretenuring');
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
