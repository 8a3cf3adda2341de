// The proxy's plugins across config versions (one Plugins object per proxy,
// as layers/security.ts is for JWKS). A config swap:
//   prepare(config)   loads and starts every plugin the config names that is
//                     not running yet (code from inline bytes, a file, or a
//                     URL checked against its sha256: remote-code.ts, usually
//                     already fetched by the xDS preflight); any failure rejects
//                     the whole config (NACK) and the running plugins stay
//   layer(filter)     the plugin layer for one HCM filter of the new stacks
//   activate(config)  after the switch: plugins the new config no longer
//                     names are retired -- they stop once the requests that
//                     still hold them are done, so a swap drops nothing
// A plugin is identified by its runtime, code hash, name, configuration and
// limits: re-sending the same plugin keeps the running instance (and its
// state); changing any of these starts a new one beside the old.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { stripTypeScriptTypes } from 'node:module';
import type { ProxyConfig } from '../config/types.ts';
import type { PluginSpec } from '../config/envoy-wasm.ts';
import type { Dispatch, Layer } from '../http/exchange.ts';
import type { Registry } from '../stats.ts';
import { pluginLayer } from './layer.ts';
import { PluginMetrics } from './plugin-metrics.ts';
import type { PluginRunner } from './runner.ts';
import { startWorkerRunner } from './worker-runner.ts';
import { fetchRemoteCode, MAX_PLUGIN_CODE_BYTES, retainRemoteCode } from './remote-code.ts';

export interface PluginsOptions {
  readonly registry: Registry;
  readonly log: (event: string, fields?: Record<string, unknown>) => void;
  /** A cluster's dispatch in the active config (plugins' HTTP calls). */
  readonly cluster: (name: string) => Dispatch | undefined;
}

interface Running {
  readonly runner: PluginRunner;
  readonly spec: PluginSpec;
}

export class Plugins {
  private readonly opts: PluginsOptions;
  readonly metrics: PluginMetrics;
  /** Plugins of the active config and of a config being prepared, by identity. */
  private readonly running = new Map<string, Running>();
  /** Identity of each spec object seen by prepare() (specs are immutable). */
  private readonly ids = new WeakMap<PluginSpec, string>();

  constructor(opts: PluginsOptions) {
    this.opts = opts;
    this.metrics = new PluginMetrics(opts.registry, opts.log);
  }

  /** Start what `config` needs; the errors (empty when all is well) reject the config. */
  async prepare(config: ProxyConfig): Promise<string[]> {
    const errors: string[] = [];
    const started: string[] = [];
    for (const { where, spec } of pluginSpecs(config)) {
      const code = await loadCode(spec);
      if (!code.ok) {
        errors.push(`${where}: ${code.error}`);
        continue;
      }
      const id = identity(spec, code.bytes);
      this.ids.set(spec, id);
      if (this.running.has(id)) continue;
      const r = await this.start(spec, code.bytes);
      if (!r.ok) {
        errors.push(`${where}: plugin "${spec.name}": ${r.error}`);
        continue;
      }
      this.running.set(id, { runner: r.runner, spec });
      started.push(id);
      this.opts.log('plugin_started', { plugin: spec.name, runtime: spec.runtime, hooks: [...r.runner.hooks] });
    }
    if (errors.length > 0) {
      // Nothing of a rejected config keeps running.
      for (const id of started) {
        this.running.get(id)?.runner.close();
        this.running.delete(id);
      }
    }
    return errors;
  }

  private async start(spec: PluginSpec, bytes: Buffer): Promise<{ ok: true; runner: PluginRunner } | { ok: false; error: string }> {
    const deps = { metrics: this.metrics, log: this.opts.log, cluster: this.opts.cluster };
    if (spec.runtime === 'wasm') {
      try {
        // Compiled here too, so a bad module is refused with a clear reason before a worker starts.
        new WebAssembly.Module(new Uint8Array(bytes));
      } catch (err) {
        return { ok: false, error: `not a WebAssembly module: ${(err as Error).message}` };
      }
      return startWorkerRunner(spec, { kind: 'wasm', bytes }, deps);
    }
    let source: string;
    try {
      source = stripTypeScriptTypes(bytes.toString('utf8'), { mode: 'strip' });
    } catch (err) {
      return { ok: false, error: `TypeScript: ${(err as Error).message}` };
    }
    return startWorkerRunner(spec, { kind: 'script', source }, deps);
  }

  /** The layer of one plugin filter of a prepared config. */
  layer(spec: PluginSpec): Layer {
    const id = this.ids.get(spec);
    const r = id === undefined ? undefined : this.running.get(id);
    if (!r) throw new Error(`plugin "${spec.name}" was not prepared`);
    return pluginLayer({
      runner: r.runner,
      failOpen: spec.failOpen,
      maxBodyBytes: spec.maxBodyBytes,
      onError: (reason) => this.metrics.error(spec.name, reason),
    });
  }

  /** `config` is now serving: retire the plugins it does not name. */
  activate(config: ProxyConfig): void {
    const keep = new Set<string>();
    const shas = new Set<string>();
    for (const { spec } of pluginSpecs(config)) {
      const id = this.ids.get(spec);
      if (id !== undefined) keep.add(id);
      if (spec.code.kind === 'remote') shas.add(spec.code.sha256);
    }
    retainRemoteCode(shas);
    for (const [id, r] of this.running) {
      if (keep.has(id)) continue;
      this.running.delete(id);
      r.runner.retire();
      this.opts.log('plugin_retired', { plugin: r.spec.name });
    }
  }

  close(): void {
    for (const r of this.running.values()) r.runner.close();
    this.running.clear();
  }
}

function* pluginSpecs(config: ProxyConfig): Generator<{ where: string; spec: PluginSpec }> {
  for (const l of config.listeners) {
    for (const c of l.filterChains) {
      for (const f of c.http?.httpFilters ?? []) {
        if (f.kind === 'plugin') yield { where: `listener "${l.name}" chain "${c.name}" filter "${f.name}"`, spec: f.plugin };
      }
    }
  }
}

function identity(spec: PluginSpec, code: Buffer): string {
  const h = createHash('sha256');
  h.update(code);
  h.update(JSON.stringify([spec.runtime, spec.name, spec.rootId, spec.vmId, spec.configuration, spec.failOpen, spec.hookTimeoutMs, spec.maxBodyBytes, spec.maxMemoryMb, spec.bodies]));
  return h.digest('hex');
}

async function loadCode(spec: PluginSpec): Promise<{ ok: true; bytes: Buffer } | { ok: false; error: string }> {
  const c = spec.code;
  switch (c.kind) {
    case 'inline':
      return { ok: true, bytes: c.bytes };
    case 'file':
      try {
        const bytes = await readFile(c.path);
        if (bytes.length > MAX_PLUGIN_CODE_BYTES) return { ok: false, error: `${c.path}: larger than ${MAX_PLUGIN_CODE_BYTES} bytes` };
        return { ok: true, bytes };
      } catch (err) {
        return { ok: false, error: `cannot read plugin code ${c.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
      }
    case 'remote':
      return fetchRemoteCode(c.uri, c.sha256);
  }
}
