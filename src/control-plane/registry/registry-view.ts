// A consistent in-memory view of the registry (workloads and service VIPs)
// for the parts of the control plane that consume it (xDS translation, the
// API). list() at one revision, then watch from the next revision: every
// change is seen once, in order; a compacted watch re-lists. Events of one
// revision (a lease expiring removes several workloads at once) are applied
// together before the callback runs, so no view is half a write.
import type { Store, StoreError, Watch, WatchEvent } from '../store/types.ts';
import { VIPS_PREFIX, type VipRecord } from './vip.ts';
import { REGISTRY_PREFIX, WORKLOADS_PREFIX, parseStoredWorkload, type Workload } from './workload.ts';

export interface RegistryView {
  /** The store revision this view reflects. */
  readonly revision: number;
  /** Sorted by namespace, then name. */
  readonly workloads: readonly Workload[];
  /** "namespace/name" -> virtual IP. */
  readonly vips: ReadonlyMap<string, string>;
}

export interface RegistryWatch {
  /** The latest view (null until the first list has completed). */
  current(): RegistryView | null;
  cancel(): void;
}

export interface WatchRegistryOptions {
  /** The store closed or failed for good (`closed`/`unavailable` while listing). Re-lists on `compacted` by itself. */
  onError?: (err: StoreError | Error) => void;
  /** Wait between retries after a failed list (default 500 ms). */
  retryMs?: number;
}

function compareWorkloads(a: Workload, b: Workload): number {
  if (a.namespace !== b.namespace) return a.namespace < b.namespace ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export function watchRegistry(store: Store, cb: (view: RegistryView) => void, opts: WatchRegistryOptions = {}): RegistryWatch {
  const workloads = new Map<string, Workload>();
  const vips = new Map<string, string>();
  let revision = 0;
  let view: RegistryView | null = null;
  let watch: Watch | null = null;
  let cancelled = false;
  let pending = false;
  let retryTimer: NodeJS.Timeout | null = null;

  const apply = (key: string, value: string | null) => {
    if (key.startsWith(WORKLOADS_PREFIX)) {
      const id = key.slice(WORKLOADS_PREFIX.length);
      const w = value === null ? null : parseStoredWorkload(value);
      if (w) workloads.set(id, w);
      else workloads.delete(id);
    } else if (key.startsWith(VIPS_PREFIX)) {
      const id = key.slice(VIPS_PREFIX.length);
      let ip: string | undefined;
      try {
        ip = value === null ? undefined : (JSON.parse(value) as VipRecord).ip;
      } catch {
        ip = undefined;
      }
      if (typeof ip === 'string') vips.set(id, ip);
      else vips.delete(id);
    }
  };

  const emit = () => {
    pending = false;
    if (cancelled) return;
    view = Object.freeze({ revision, workloads: Object.freeze([...workloads.values()].sort(compareWorkloads)), vips: new Map(vips) });
    cb(view);
  };

  const onEvent = (ev: WatchEvent) => {
    if (cancelled) return;
    if (ev.type === 'put') apply(ev.kv.key, ev.kv.value);
    else apply(ev.key, null);
    revision = ev.revision;
    if (!pending) {
      pending = true;
      queueMicrotask(emit); // after the other events of this revision
    }
  };

  const start = async (): Promise<void> => {
    if (cancelled) return;
    try {
      const listed = await store.list(REGISTRY_PREFIX);
      if (cancelled) return;
      workloads.clear();
      vips.clear();
      for (const kv of listed.items) apply(kv.key, kv.value);
      revision = listed.revision;
      emit();
      watch = store.watch(REGISTRY_PREFIX, { fromRevision: listed.revision + 1 }, {
        onEvent,
        onError: (err) => {
          watch = null;
          if (cancelled) return;
          if (err.code === 'compacted') void start();
          else opts.onError?.(err);
        },
      });
    } catch (err) {
      if (cancelled) return;
      const e = err as StoreError;
      if (e.code === 'closed') {
        opts.onError?.(e);
        return;
      }
      retryTimer = setTimeout(() => void start(), opts.retryMs ?? 500);
    }
  };
  void start();

  return {
    current: () => view,
    cancel: () => {
      cancelled = true;
      if (retryTimer) clearTimeout(retryTimer);
      watch?.cancel();
      watch = null;
    },
  };
}
