// Where the proxy's config comes from. A ConfigSource publishes whole,
// validated configs; the proxy applies each one atomically and keeps the
// last good config when one is rejected. Two sources exist: the bootstrap
// file (below: reloaded on demand, e.g. SIGHUP, and when the file changes)
// and xDS (xds-source.ts, which has the same `onConfig` / `close` shape).
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { ProxyConfig } from './config/types.ts';
import { loadBootstrapFile, type Bootstrap } from './config/bootstrap.ts';
import { formatErrors } from './config/envoy.ts';

export interface ConfigSource {
  /** Calls `cb` with every new config; returns an unsubscribe function. */
  onConfig(cb: (config: ProxyConfig) => void): () => void;
  close(): void;
}

export interface FileSourceOptions {
  /** Coalesce bursts of file events (editors write in several steps). Default 200 ms. */
  readonly debounceMs?: number;
  /** A reload that failed to parse or validate; the old config keeps serving. */
  readonly onInvalid?: (errors: string) => void;
  /** Watch the file for changes (default true); SIGHUP-style `reload()` always works. */
  readonly watch?: boolean;
}

export interface FileConfigSource extends ConfigSource {
  /** Read the file again now; publishes only when its content changed. */
  reload(reason: string): void;
  /** The reason of the last reload that published a config. */
  readonly lastReason: string | undefined;
}

/**
 * The bootstrap file as a config source. `initial` is the bootstrap already
 * loaded at startup (its version is the content hash, so an unchanged file
 * publishes nothing). The directory is watched rather than the file, so
 * editors that replace the file (write + rename) are seen too.
 */
export function fileConfigSource(file: string, initial: Bootstrap, opts: FileSourceOptions = {}): FileConfigSource {
  const callbacks = new Set<(c: ProxyConfig) => void>();
  let version = initial.config.version;
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  let lastReason: string | undefined;
  let closed = false;
  const debounceMs = opts.debounceMs ?? 200;

  const reload = (reason: string): void => {
    if (closed) return;
    const r = loadBootstrapFile(file);
    if (!r.ok) {
      opts.onInvalid?.(formatErrors(r.errors));
      return;
    }
    if (r.bootstrap.config.version === version) return;
    version = r.bootstrap.config.version;
    lastReason = reason;
    for (const cb of callbacks) cb(r.bootstrap.config);
  };

  if (opts.watch ?? true) {
    const base = path.basename(file);
    try {
      watcher = watch(path.dirname(path.resolve(file)), (_event, name) => {
        if (name !== null && name !== base) return;
        clearTimeout(timer);
        timer = setTimeout(() => reload('file_changed'), debounceMs);
      });
      watcher.on('error', () => {}); // the directory went away: SIGHUP still works
    } catch {
      watcher = undefined;
    }
  }

  return {
    onConfig(cb) {
      callbacks.add(cb);
      return () => callbacks.delete(cb);
    },
    reload,
    get lastReason() {
      return lastReason;
    },
    close() {
      closed = true;
      clearTimeout(timer);
      watcher?.close();
      callbacks.clear();
    },
  };
}
