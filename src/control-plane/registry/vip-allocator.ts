// Keeps service VIPs in step with the Service resources: lists and watches
// `/trellis/resources/Service/`, and after every change runs syncVips (one
// run at a time; changes during a run cause one more run). Safe on every
// replica (allocation is race-free), cheapest on the leader only.
import { kindPrefix } from '../resources/keys.ts';
import type { Store, StoreError, Watch } from '../store/types.ts';
import { syncVips, type VipOptions } from './vip.ts';

export type VipSyncReport = Awaited<ReturnType<typeof syncVips>>;

export interface VipAllocatorOptions extends VipOptions {
  /** Called after every sync run. */
  onSync?: (report: VipSyncReport) => void;
  /** A sync run or the watch failed (it retries after `retryMs`). */
  onError?: (err: unknown) => void;
  retryMs?: number;
}

export interface VipAllocator {
  /** Resolves when the services seen so far all have VIPs (the current run, and any queued one, are done). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

export function startVipAllocator(store: Store, opts: VipAllocatorOptions = {}): VipAllocator {
  const prefix = kindPrefix('Service');
  const services = new Map<string, { namespace: string; name: string }>();
  let watch: Watch | null = null;
  let stopped = false;
  let running: Promise<void> | null = null;
  let again = false;
  let retryTimer: NodeJS.Timeout | null = null;
  const retryMs = opts.retryMs ?? 1_000;

  const track = (key: string, present: boolean) => {
    const [namespace, name, ...rest] = key.slice(prefix.length).split('/');
    if (!namespace || !name || rest.length > 0) return;
    if (present) services.set(`${namespace}/${name}`, { namespace, name });
    else services.delete(`${namespace}/${name}`);
  };

  const later = (fn: () => void) => {
    if (stopped || retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      fn();
    }, retryMs);
  };

  const sync = (): void => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        try {
          const report = await syncVips(store, [...services.values()], opts);
          opts.onSync?.(report);
          if (report.failed.length > 0) opts.onError?.(new Error(report.failed.map((f) => `${f.service}: ${f.message}`).join('; ')));
        } catch (err) {
          if ((err as StoreError).code === 'closed') return;
          opts.onError?.(err);
          later(sync);
          return;
        }
      } while (again && !stopped);
    })().finally(() => {
      running = null;
    });
  };

  const start = async (): Promise<void> => {
    if (stopped) return;
    try {
      const listed = await store.list(prefix);
      if (stopped) return;
      services.clear();
      for (const kv of listed.items) track(kv.key, true);
      sync();
      watch = store.watch(prefix, { fromRevision: listed.revision + 1 }, {
        onEvent: (ev) => {
          track(ev.type === 'put' ? ev.kv.key : ev.key, ev.type === 'put');
          sync();
        },
        onError: (err) => {
          watch = null;
          if (err.code === 'closed') return;
          if (err.code !== 'compacted') opts.onError?.(err);
          void start();
        },
      });
    } catch (err) {
      if ((err as StoreError).code === 'closed') return;
      opts.onError?.(err);
      later(() => void start());
    }
  };
  void start();

  return {
    async idle() {
      for (let i = 0; i < 1_000 && running; i++) await running;
    },
    async stop() {
      stopped = true;
      if (retryTimer) clearTimeout(retryTimer);
      watch?.cancel();
      await running;
    },
  };
}
