// extensions.filters.http.wasm.v3.Wasm (an HCM HTTP filter) -> PluginSpec.
//
// One filter type carries both kinds of plugin the proxy runs (docs/plugins.md):
//   vmConfig.runtime envoy.wasm.runtime.{v8,wamr,wasmtime,wavm}  proxy-wasm module (bytes)
//   vmConfig.runtime trellis.plugin.runtime.typescript           TypeScript plugin (source text)
// so Envoy-shaped config, ECDS-style delivery and the control plane's
// translation are the same for both. Read strictly: every field is either
// honoured or named in an error.
import type { FieldReader } from './field-reader.ts';
import { anyType } from './envoy-common.ts';

export const WASM_FILTER_TYPE = 'envoy.extensions.filters.http.wasm.v3.Wasm';
export const WASM_FILTER_NAME = 'envoy.filters.http.wasm';
export const TS_RUNTIME = 'trellis.plugin.runtime.typescript';
const WASM_RUNTIMES = ['envoy.wasm.runtime.v8', 'envoy.wasm.runtime.wamr', 'envoy.wasm.runtime.wasmtime', 'envoy.wasm.runtime.wavm'];
const STRING_VALUE = 'google.protobuf.StringValue';
const STRUCT = 'google.protobuf.Struct';

export const DEFAULT_HOOK_TIMEOUT_MS = 500;
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
export const DEFAULT_MAX_MEMORY_MB = 64;

export type PluginCode =
  | { readonly kind: 'inline'; readonly bytes: Buffer }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'remote'; readonly uri: string; readonly sha256: string };

export interface PluginSpec {
  /** The plugin's name (PluginConfig.name, else the filter's name): metric label and log field. */
  readonly name: string;
  readonly runtime: 'wasm' | 'typescript';
  readonly code: PluginCode;
  /** proxy-wasm root context id (PluginConfig.rootId). */
  readonly rootId: string;
  readonly vmId: string;
  /** The plugin's configuration (PluginConfig.configuration as StringValue), handed to it verbatim. */
  readonly configuration: string;
  /** true: a failing plugin lets the request through untouched; false: the request fails. */
  readonly failOpen: boolean;
  /** Deadline of one hook call, async work included (Trellis vmConfig.configuration). */
  readonly hookTimeoutMs: number;
  /** Largest body a body hook buffers (Trellis vmConfig.configuration). */
  readonly maxBodyBytes: number;
  /** Heap limit of a TypeScript plugin's worker (Trellis vmConfig.configuration). */
  readonly maxMemoryMb: number;
  /** proxy-wasm: hand request/response bodies and trailers to the module (buffered whole; Trellis vmConfig.configuration). */
  readonly bodies: boolean;
}

/** The typedConfig of an envoy.filters.http.wasm filter. */
export function readWasmFilter(tc: FieldReader, filterName: string): PluginSpec | undefined {
  const before = tc.issues.errors.length;
  const pc = tc.obj('config', { required: true });
  tc.done();
  if (!pc) return undefined;
  const name = pc.str('name', { nonEmpty: true }) ?? filterName;
  const rootId = pc.str('rootId') ?? '';
  const configuration = readStringValue(pc, 'configuration');
  const failOpenFlag = pc.bool('failOpen');
  const policy = pc.str('failurePolicy');
  let failOpen = failOpenFlag ?? false;
  if (policy !== undefined) {
    if (policy === 'FAIL_OPEN') failOpen = true;
    else if (policy === 'FAIL_CLOSED' || policy === 'UNSPECIFIED') failOpen = false;
    else pc.error('failurePolicy', `must be FAIL_OPEN or FAIL_CLOSED (got ${JSON.stringify(policy)}; FAIL_RELOAD is not supported)`);
    if (failOpenFlag !== undefined && failOpenFlag !== failOpen) pc.error('failOpen', 'contradicts failurePolicy');
  }
  const which = pc.oneOf(['vmConfig', 'capabilityRestrictionConfig'], { required: true });
  if (which === 'capabilityRestrictionConfig') pc.error('capabilityRestrictionConfig', 'not supported (give vmConfig)');
  const vm = pc.obj('vmConfig');
  pc.done();
  if (!vm) return undefined;
  const vmId = vm.str('vmId') ?? '';
  const runtimeName = vm.str('runtime', { required: true });
  let runtime: PluginSpec['runtime'] | undefined;
  if (runtimeName === TS_RUNTIME) runtime = 'typescript';
  else if (runtimeName !== undefined && WASM_RUNTIMES.includes(runtimeName)) runtime = 'wasm';
  else if (runtimeName !== undefined) vm.error('runtime', `unsupported runtime ${JSON.stringify(runtimeName)} (supported: ${[...WASM_RUNTIMES, TS_RUNTIME].join(', ')})`);
  const code = readCode(vm.obj('code', { required: true }));
  const limits = readLimits(vm);
  vm.ignore('allowPrecompiled', 'nackOnCodeCacheMiss', 'environmentVariables');
  vm.done();
  if (tc.issues.errors.length > before || !runtime || !code) return undefined;
  return { name, runtime, code, rootId, vmId, configuration, failOpen, ...limits };
}

/** config.core.v3.AsyncDataSource: local (filename / inlineBytes / inlineString) or remote (httpUri + sha256). */
function readCode(r: FieldReader | undefined): PluginCode | undefined {
  if (!r) return undefined;
  const which = r.oneOf(['local', 'remote'], { required: true });
  let code: PluginCode | undefined;
  const l = which === 'local' ? r.obj('local') : undefined;
  const rm = which === 'remote' ? r.obj('remote') : undefined;
  if (l) {
    const k = l.oneOf(['filename', 'inlineBytes', 'inlineString'], { required: true });
    if (k === 'filename') {
      const path = l.str('filename', { nonEmpty: true });
      if (path !== undefined) code = { kind: 'file', path };
    } else if (k === 'inlineString') {
      const s = l.str('inlineString', { nonEmpty: true });
      if (s !== undefined) code = { kind: 'inline', bytes: Buffer.from(s) };
    } else if (k === 'inlineBytes') {
      const s = l.str('inlineBytes', { nonEmpty: true });
      if (s !== undefined) {
        if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(s)) l.error('inlineBytes', 'must be base64');
        else code = { kind: 'inline', bytes: Buffer.from(s, 'base64') };
      }
    }
    l.ignore('environmentVariable');
    l.done();
  } else if (rm) {
    const sha256 = rm.str('sha256', { required: true });
    if (sha256 !== undefined && !/^[0-9a-f]{64}$/.test(sha256)) rm.error('sha256', 'must be 64 lower-case hex digits');
    const hu = rm.obj('httpUri', { required: true });
    let uri: string | undefined;
    if (hu) {
      uri = hu.str('uri', { required: true });
      if (uri !== undefined && !/^https?:\/\//.test(uri)) hu.error('uri', `must be an http:// or https:// URL (got ${JSON.stringify(uri)})`);
      hu.ignore('cluster', 'timeout');
      hu.done();
    }
    rm.ignore('retryPolicy');
    rm.done();
    if (uri !== undefined && sha256 !== undefined && /^[0-9a-f]{64}$/.test(sha256)) code = { kind: 'remote', uri, sha256 };
  }
  r.done();
  return code;
}

/** PluginConfig.configuration: a google.protobuf.StringValue (`{"@type": ..., "value": "..."}`). */
function readStringValue(r: FieldReader, key: string): string {
  const a = r.obj(key);
  if (!a) return '';
  const t = anyType(a);
  let v = '';
  if (t === STRING_VALUE) v = a.str('value') ?? '';
  else if (t !== undefined) a.error('@type', `must be type.googleapis.com/${STRING_VALUE} (got ${JSON.stringify(t)})`);
  a.done();
  return v;
}

/** Trellis limits in vmConfig.configuration (a google.protobuf.Struct):
 * hookTimeout (duration), maxBodyBytes, maxMemoryMb, bodies (proxy-wasm). */
function readLimits(vm: FieldReader): Pick<PluginSpec, 'hookTimeoutMs' | 'maxBodyBytes' | 'maxMemoryMb' | 'bodies'> {
  const out = { hookTimeoutMs: DEFAULT_HOOK_TIMEOUT_MS, maxBodyBytes: DEFAULT_MAX_BODY_BYTES, maxMemoryMb: DEFAULT_MAX_MEMORY_MB, bodies: false };
  const a = vm.obj('configuration');
  if (!a) return out;
  const t = anyType(a);
  if (t !== undefined && t !== STRUCT) a.error('@type', `must be type.googleapis.com/${STRUCT} (got ${JSON.stringify(t)})`);
  const v = a.obj('value');
  a.done();
  if (!v) return out;
  const timeout = v.duration('hookTimeout');
  if (timeout !== undefined) {
    if (timeout <= 0 || timeout > 60_000) v.error('hookTimeout', 'must be more than 0s and at most 60s');
    else out.hookTimeoutMs = timeout;
  }
  out.maxBodyBytes = v.uint('maxBodyBytes', { min: 1, max: 64 * 1024 * 1024 }) ?? out.maxBodyBytes;
  out.maxMemoryMb = v.uint('maxMemoryMb', { min: 8, max: 4096 }) ?? out.maxMemoryMb;
  out.bodies = v.bool('bodies') ?? false;
  v.done();
  return out;
}
