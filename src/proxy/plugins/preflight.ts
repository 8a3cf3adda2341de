// A check of a config's plugins, for the xDS source to NACK a
// config whose plugin code does not load (xds-source.ts `check`) before the
// proxy tries it -- so the control plane sees the rejection with its reason,
// and the proxy keeps the config it has:
//   wasm        the bytes compile and export a supported proxy-wasm ABI version
//   typescript  the source strips and compiles, calls definePlugin, and its
//               factory returns hooks when given a stand-in host (run in a
//               throwaway vm context, bounded by a 1 s timeout)
// Synchronous when every plugin's code is at hand (inline, file, or a URL's
// code already cached); when code from a URL must be fetched first
// (remote-code.ts: bounded by its 10 s timeout, checked against its sha256,
// then cached for the apply step), the result is a promise and the xDS client
// holds the ACK/NACK until it settles -- a failed download or a sha256
// mismatch NACKs the config with the reason.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import vm from 'node:vm';
import type { ProxyConfig } from '../config/types.ts';
import type { PluginSpec } from '../config/envoy-wasm.ts';
import { cachedRemoteCode, fetchRemoteCode } from './remote-code.ts';

const INIT_TIMEOUT_MS = 1000;
const checked = new Map<string, string | undefined>();
const MAX_CACHED = 64;

export function preflightPlugins(config: ProxyConfig): string[] | Promise<string[]> {
  const found: { where: string; spec: PluginSpec }[] = [];
  for (const l of config.listeners) {
    for (const c of l.filterChains) {
      for (const f of c.http?.httpFilters ?? []) {
        if (f.kind === 'plugin') found.push({ where: `listener "${l.name}" chain "${c.name}" filter "${f.name}": plugin "${f.plugin.name}"`, spec: f.plugin });
      }
    }
  }
  const missing = found.filter(({ spec }) => spec.code.kind === 'remote' && cachedRemoteCode(spec.code.sha256) === undefined);
  if (missing.length === 0) return checkAll(found, new Map());
  return Promise.all(missing.map(async ({ spec }) => {
    const c = spec.code as Extract<PluginSpec['code'], { kind: 'remote' }>;
    return [spec, await fetchRemoteCode(c.uri, c.sha256)] as const;
  })).then((results) => checkAll(found, new Map(results.map(([spec, r]) => [spec, r.ok ? r.bytes : r.error]))));
}

/** `fetched`: code (or the error) of remote plugins that were not cached. */
function checkAll(found: readonly { where: string; spec: PluginSpec }[], fetched: ReadonlyMap<PluginSpec, Buffer | string>): string[] {
  const errors: string[] = [];
  for (const { where, spec } of found) {
    const e = checkPlugin(spec, fetched.get(spec));
    if (e !== undefined) errors.push(`${where}: ${e}`);
  }
  return errors;
}

function checkPlugin(spec: PluginSpec, fetched: Buffer | string | undefined): string | undefined {
  let bytes: Buffer;
  if (typeof fetched === 'string') return fetched;
  if (spec.code.kind === 'remote') {
    const b = fetched ?? cachedRemoteCode(spec.code.sha256);
    if (b === undefined) return `code from ${spec.code.uri} was not fetched`;
    bytes = b;
  } else if (spec.code.kind === 'file') {
    try {
      bytes = readFileSync(spec.code.path);
    } catch (err) {
      return `cannot read plugin code ${spec.code.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
  } else bytes = spec.code.bytes;
  const key = createHash('sha256').update(spec.runtime).update('\0').update(spec.configuration).update('\0').update(bytes).digest('hex');
  if (checked.has(key)) return checked.get(key);
  const e = spec.runtime === 'wasm' ? checkWasm(bytes) : checkScript(spec, bytes.toString('utf8'));
  if (checked.size >= MAX_CACHED) checked.delete(checked.keys().next().value!);
  checked.set(key, e);
  return e;
}

function checkWasm(bytes: Buffer): string | undefined {
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(new Uint8Array(bytes));
  } catch (err) {
    return `not a WebAssembly module: ${(err as Error).message}`;
  }
  const names = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
  if (![...names].some((n) => n.startsWith('proxy_abi_version_0_'))) return 'not a proxy-wasm module (no proxy_abi_version_0_* export)';
  if (!names.has('proxy_abi_version_0_2_0') && !names.has('proxy_abi_version_0_2_1')) return 'unsupported proxy-wasm ABI (supported: 0.2.0, 0.2.1)';
  return undefined;
}

function checkScript(spec: PluginSpec, text: string): string | undefined {
  let source: string;
  try {
    source = stripTypeScriptTypes(text, { mode: 'strip' });
  } catch (err) {
    return `TypeScript: ${(err as Error).message}`;
  }
  const noop = () => {};
  const metric = () => ({ inc: noop, dec: noop, set: noop, observe: noop });
  const host = {
    name: spec.name,
    config: spec.configuration,
    log: { debug: noop, info: noop, warn: noop, error: noop },
    metrics: { counter: metric, gauge: metric, histogram: metric },
    httpCall: () => Promise.reject(new Error('no HTTP calls while the config is checked')),
  };
  let factory: unknown;
  let calls = 0;
  const context = vm.createContext({
    definePlugin(f: unknown) {
      calls++;
      factory = f;
    },
    console: { log: noop, info: noop, debug: noop, warn: noop, error: noop },
    TextEncoder, TextDecoder, URL, URLSearchParams, atob, btoa, structuredClone, crypto,
    setTimeout: noop, clearTimeout: noop, queueMicrotask: noop,
    __host: host,
  }, { codeGeneration: { strings: false, wasm: false } });
  try {
    new vm.Script(source, { filename: `plugin:${spec.name}` }).runInContext(context, { timeout: INIT_TIMEOUT_MS });
    if (calls !== 1 || typeof factory !== 'function') return calls > 1 ? 'definePlugin: called twice' : 'the script did not call definePlugin(factory)';
    (context as { __factory?: unknown }).__factory = factory;
    const hooks = new vm.Script('__factory(__host)').runInContext(context, { timeout: INIT_TIMEOUT_MS }) as unknown;
    if (typeof hooks !== 'object' || hooks === null) return 'the factory given to definePlugin must return an object of hooks';
  } catch (err) {
    const e = err as { name?: unknown; message?: unknown; code?: unknown };
    if (e?.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return `the plugin did not finish loading within ${INIT_TIMEOUT_MS} ms`;
    return typeof e?.message === 'string' ? `${typeof e.name === 'string' ? e.name : 'Error'}: ${e.message}` : `thrown: ${String(err)}`;
  }
  return undefined;
}
