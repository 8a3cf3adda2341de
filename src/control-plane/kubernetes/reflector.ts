// List, then watch from the list's resourceVersion, forever (client-go's
// Reflector). Every change reaches the handlers exactly in the API server's
// order, one at a time (a slow handler holds the stream: backpressure):
//
//   start(rv?) ── rv known? ── no ──► LIST ──► replace(items, rv)
//                    │ yes                           │
//                    ▼                               ▼
//              WATCH from rv ◄───────────────────────┘
//                    │ event ──► event(type, obj); rv = obj's
//                    │ BOOKMARK ─► rv = bookmark's
//                    │ closed by the server's timeout ──► WATCH from rv
//                    │ dropped (network, API server restart) ──► backoff, WATCH from rv
//                    └ 410 Gone (rv older than the kept history) ──► LIST again
//
// Starting from a saved resourceVersion (a restart) watches straight from
// it, so nothing that happened while the process was away is missed; if the
// API server no longer has that history it answers 410 and this lists.
import { KubeApiError, type KubeClient, type KubeObject, type WatchEventType } from './client.ts';

export interface ReflectorHandlers<T extends KubeObject> {
  /** The full current set (first start, or after 410): replace whatever was known. */
  replace(items: T[], resourceVersion: string): Promise<void> | void;
  event(type: Exclude<WatchEventType, 'BOOKMARK'>, object: T): Promise<void> | void;
  /** The resourceVersion everything before has been handled up to (after each event, bookmark and list). */
  progress?(resourceVersion: string): void;
}

export interface ReflectorOptions<T extends KubeObject> {
  /** Collection path, e.g. /api/v1/pods or /apis/discovery.k8s.io/v1/endpointslices. */
  path: string;
  /** Resume: watch from here without listing first. */
  resourceVersion?: string;
  handlers: ReflectorHandlers<T>;
  log?: (msg: string) => void;
  /** Server-side watch timeout (default 300 s; the watch is then re-opened from its rv). */
  watchTimeoutSeconds?: number;
}

export interface Reflector {
  /** Resolves once the handlers have the current state (first list done, or resumed watch open). */
  readonly synced: Promise<void>;
  resourceVersion(): string | undefined;
  stop(): void;
}

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5_000;

export function startReflector<T extends KubeObject>(client: KubeClient, opts: ReflectorOptions<T>): Reflector {
  const log = opts.log ?? (() => {});
  let rv = opts.resourceVersion;
  let stopped = false;
  let cancel: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  let backoff = MIN_BACKOFF_MS;
  let markSynced!: () => void;
  const synced = new Promise<void>((r) => (markSynced = r));

  const retry = (why: string): void => {
    if (stopped) return;
    const wait = Math.min(backoff, MAX_BACKOFF_MS) * (0.5 + Math.random() / 2);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    log(`kubernetes ${opts.path}: ${why}; retrying in ${Math.round(wait)} ms`);
    timer = setTimeout(run, wait);
  };

  const list = async (): Promise<void> => {
    const { items, resourceVersion } = await client.list<T>(opts.path);
    if (stopped) return;
    await opts.handlers.replace(items, resourceVersion);
    rv = resourceVersion;
    opts.handlers.progress?.(resourceVersion);
  };

  const watchFrom = (from: string): void => {
    let opened = false;
    const since = Date.now();
    const w = client.watch<T>(opts.path, { resourceVersion: from, timeoutSeconds: opts.watchTimeoutSeconds ?? 300 }, {
      async onEvent(type, object) {
        if (!opened) {
          opened = true;
          backoff = MIN_BACKOFF_MS;
        }
        if (type !== 'BOOKMARK') await opts.handlers.event(type, object);
        const next = object.metadata?.resourceVersion;
        if (next) {
          rv = next;
          opts.handlers.progress?.(next);
        }
      },
      onClose(err) {
        cancel = undefined;
        if (stopped) return;
        if (err instanceof KubeApiError && (err.status === 410 || err.reason === 'Expired' || err.reason === 'Gone')) {
          log(`kubernetes ${opts.path}: resourceVersion ${from} is too old (${err.message}); listing again`);
          rv = undefined;
          return void run();
        }
        if (err) return retry(`watch dropped: ${err.message}`);
        // The server's timeout: re-open from the last rv (at once, unless it closed at once).
        if (!opened && Date.now() - since < 1_000) return retry('watch closed at once');
        run();
      },
    });
    cancel = w.cancel;
    // A watch that the server accepted is "synced" at once: it will replay from `from`.
    markSynced();
  };

  function run(): void {
    timer = undefined;
    if (stopped) return;
    if (rv !== undefined) return watchFrom(rv);
    list().then(() => {
      if (!stopped && rv !== undefined) watchFrom(rv);
    }, (err: Error) => retry(`list failed: ${err.message}`));
  }

  run();
  return {
    synced,
    resourceVersion: () => rv,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      cancel?.();
      markSynced();
    },
  };
}
