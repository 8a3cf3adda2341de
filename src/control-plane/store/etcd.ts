// The highly available store: a real etcd v3 cluster through the `etcd3`
// client. Every write is one etcd transaction (compare on mod_revision or
// version == 0, then put/delete with prev_kv, else read the current value),
// so a conflict returns the value that won. Revisions are etcd's own (int64
// strings, kept as JS numbers: 2^53 writes is out of reach). Watches resume
// by themselves after a disconnect from the last revision delivered + 1, and
// drop anything older, so each event arrives exactly once. Keys live under
// `prefix` (several Trellis installations, or tests, can share one etcd).
import { Etcd3, EtcdLeaseInvalidError, ClientClosedError, type IKeyValue, type IRequestOp, type ICompare, type Watcher } from 'etcd3';
import {
  StoreError,
  type DeleteResult,
  type GrantLeaseOptions,
  type KeyValue,
  type Lease,
  type PutOptions,
  type PutResult,
  type Store,
  type Watch,
  type WatchEvent,
  type WatchHandlers,
  type WatchOptions,
} from './types.ts';

export interface EtcdStoreOptions {
  /** Client URLs, e.g. ["http://127.0.0.1:2379"]. */
  endpoints: string[];
  /** Prepended to every key (default ""). */
  prefix?: string;
  /** Per-call deadline in ms (default 5000). */
  callTimeoutMs?: number;
}

export interface EtcdStore extends Store {
  /** Compact etcd's history before `revision` (watching older fails with `compacted`). */
  compact(revision: number): Promise<void>;
}

/** End of the key range that starts with `prefix` (etcd's prefix range rule). */
function rangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // everything
}

function toStoreError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  if (err instanceof EtcdLeaseInvalidError) return new StoreError('lease_not_found', `${what}: lease has expired or was revoked`, { cause: err });
  if (err instanceof ClientClosedError) return new StoreError('closed', `${what}: store is closed`, { cause: err });
  const msg = err instanceof Error ? err.message : String(err);
  if (/requested lease not found/.test(msg)) return new StoreError('lease_not_found', `${what}: lease has expired or was revoked`, { cause: err });
  if (/compacted/.test(msg)) return new StoreError('compacted', `${what}: ${msg}`, { cause: err });
  return new StoreError('unavailable', `${what}: etcd: ${msg}`, { cause: err });
}

function checkKey(key: unknown): string {
  if (typeof key !== 'string' || key.length === 0) throw new StoreError('invalid', 'key must be a non-empty string');
  return key;
}

class EtcdBackend implements EtcdStore {
  readonly kind = 'etcd' as const;
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly callTimeoutMs: number;
  private readonly watchers = new Set<{ watcher: Watcher; fail: (err: StoreError) => void }>();
  private readonly leases = new Set<{ close(): void }>();
  private closed = false;

  constructor(opts: EtcdStoreOptions) {
    this.prefix = opts.prefix ?? '';
    this.callTimeoutMs = opts.callTimeoutMs ?? 5_000;
    this.client = new Etcd3({
      hosts: opts.endpoints,
      defaultCallOptions: () => ({ deadline: Date.now() + this.callTimeoutMs }),
    });
  }

  private full(key: string): Buffer {
    return Buffer.from(this.prefix + key, 'utf8');
  }

  private kv(kv: IKeyValue): KeyValue {
    return {
      key: kv.key.toString('utf8').slice(this.prefix.length),
      value: kv.value.toString('utf8'),
      createRevision: Number(kv.create_revision),
      modRevision: Number(kv.mod_revision),
      version: Number(kv.version),
    };
  }

  private ensureOpen(): void {
    if (this.closed) throw new StoreError('closed', 'store is closed');
  }

  async get(key: string): Promise<KeyValue | null> {
    this.ensureOpen();
    checkKey(key);
    try {
      const res = await this.client.kv.range({ key: this.full(key) });
      const kv = res.kvs[0];
      return kv ? this.kv(kv) : null;
    } catch (err) {
      throw toStoreError(err, `get ${key}`);
    }
  }

  async list(prefix: string): Promise<{ items: KeyValue[]; revision: number }> {
    this.ensureOpen();
    if (typeof prefix !== 'string') throw new StoreError('invalid', 'prefix must be a string');
    const full = this.full(prefix);
    // etcd spells "every key" as ["\0", "\0")
    const start = full.length === 0 ? Buffer.from([0]) : full;
    const end = full.length === 0 ? Buffer.from([0]) : rangeEnd(full);
    const items: KeyValue[] = [];
    let revision: number | undefined;
    let from = start;
    try {
      // Pages pinned to the first page's revision: one consistent snapshot.
      for (let page = 0; page < 100_000; page++) {
        const res = await this.client.kv.range({ key: from, range_end: end, limit: 1000, ...(revision === undefined ? {} : { revision }) });
        revision ??= Number(res.header.revision);
        for (const kv of res.kvs) items.push(this.kv(kv));
        const last = res.kvs[res.kvs.length - 1];
        if (!res.more || !last) break;
        from = Buffer.concat([last.key, Buffer.from([0])]);
      }
    } catch (err) {
      throw toStoreError(err, `list ${prefix}`);
    }
    return { items, revision: revision ?? 0 };
  }

  async put(key: string, value: string, opts: PutOptions = {}): Promise<PutResult> {
    this.ensureOpen();
    checkKey(key);
    if (typeof value !== 'string') throw new StoreError('invalid', 'value must be a string');
    const k = this.full(key);
    const compare: ICompare[] = [];
    if (opts.expectModRevision === 0) compare.push({ key: k, target: 'Version', result: 'Equal', version: 0 });
    else if (opts.expectModRevision !== undefined) compare.push({ key: k, target: 'Mod', result: 'Equal', mod_revision: opts.expectModRevision });
    if (opts.lease !== undefined && !/^\d+$/.test(opts.lease)) throw new StoreError('invalid', `lease: not a lease id: ${opts.lease}`);
    const putOp: IRequestOp = { request_put: { key: k, value: Buffer.from(value, 'utf8'), prev_kv: true, lease: opts.lease ?? 0 } };
    try {
      const res = await this.client.kv.txn({ compare, success: [putOp], failure: [{ request_range: { key: k } }] });
      if (!res.succeeded) {
        const cur = res.responses[0]?.response_range?.kvs[0];
        return { ok: false, reason: 'conflict', current: cur ? this.kv(cur) : null };
      }
      const revision = Number(res.header.revision);
      const prevRaw = res.responses[0]?.response_put?.prev_kv;
      const prev = prevRaw ? this.kv(prevRaw) : null;
      return { ok: true, revision, kv: { key, value, createRevision: prev?.createRevision ?? revision, modRevision: revision, version: (prev?.version ?? 0) + 1 } };
    } catch (err) {
      throw toStoreError(err, `put ${key}`);
    }
  }

  async delete(key: string, opts: { expectModRevision?: number } = {}): Promise<DeleteResult> {
    this.ensureOpen();
    checkKey(key);
    const k = this.full(key);
    const compare: ICompare[] = [{ key: k, target: 'Version', result: 'Greater', version: 0 }];
    if (opts.expectModRevision !== undefined) compare.push({ key: k, target: 'Mod', result: 'Equal', mod_revision: opts.expectModRevision });
    try {
      const res = await this.client.kv.txn({
        compare,
        success: [{ request_delete_range: { key: k, prev_kv: true } }],
        failure: [{ request_range: { key: k } }],
      });
      if (!res.succeeded) {
        const cur = res.responses[0]?.response_range?.kvs[0];
        return cur ? { ok: false, reason: 'conflict', current: this.kv(cur) } : { ok: false, reason: 'not_found', current: null };
      }
      const prev = res.responses[0]?.response_delete_range?.prev_kvs[0];
      if (!prev) return { ok: false, reason: 'not_found', current: null };
      return { ok: true, revision: Number(res.header.revision), prev: this.kv(prev) };
    } catch (err) {
      throw toStoreError(err, `delete ${key}`);
    }
  }

  watch(prefix: string, opts: WatchOptions, handlers: WatchHandlers): Watch {
    let done = false;
    const fail = (err: StoreError) => {
      if (done) return;
      done = true;
      queueMicrotask(() => handlers.onError?.(err));
    };
    if (this.closed) {
      fail(new StoreError('closed', 'store is closed'));
      return { cancel: () => void 0 };
    }
    // `next`: the first revision not yet delivered. The etcd3 client resumes
    // a broken stream from its own idea of the revision (the response header
    // + 1, which can skip events of a partially sent batch), so it is
    // overwritten after every response with ours.
    let next: number | null = opts.fromRevision ?? null;
    const builder = this.client.watch().prefix(this.full(prefix)).withPreviousKV();
    if (next !== null) builder.startRevision(String(next));
    const watcher = builder.watcher();
    const entry = { watcher, fail };
    this.watchers.add(entry);
    const sync = () => {
      if (next !== null) watcher.request.start_revision = String(next);
    };
    watcher.on('connected', (res) => {
      if (next === null) next = Number(res.header.revision) + 1;
      sync();
    });
    watcher.on('data', (res) => {
      if (done) return;
      const floor = next ?? 0;
      let max = -1;
      for (const e of res.events) {
        const revision = Number(e.kv.mod_revision);
        if (revision < floor) continue; // already delivered before a reconnect
        max = Math.max(max, revision);
        const prev = e.prev_kv ? this.kv(e.prev_kv) : null;
        const ev: WatchEvent =
          e.type === 'Put'
            ? { type: 'put', kv: this.kv(e.kv), prev, revision }
            : { type: 'delete', key: e.kv.key.toString('utf8').slice(this.prefix.length), prev, revision };
        handlers.onEvent(ev);
      }
      if (max >= 0) next = Math.max(floor, max + 1);
      else if (res.events.length === 0 && next === null) next = Number(res.header.revision) + 1;
      sync();
    });
    watcher.on('error', (err) => {
      this.watchers.delete(entry);
      if (done) return;
      // A cancelled watch is most often a compacted start revision; ask etcd.
      const probe = next;
      void (async () => {
        if (probe !== null && !this.closed) {
          try {
            await this.client.kv.range({ key: Buffer.from([0]), revision: probe, limit: 1, keys_only: true });
          } catch (perr) {
            const mapped = toStoreError(perr, 'watch');
            if (mapped.code === 'compacted') {
              fail(new StoreError('compacted', `watch ${prefix} from revision ${probe}: history is compacted; list again and watch from the list's revision`, { cause: err }));
              return;
            }
          }
        }
        fail(this.closed ? new StoreError('closed', 'store is closed') : toStoreError(err, `watch ${prefix}`));
      })();
    });
    return {
      cancel: () => {
        done = true;
        this.watchers.delete(entry);
        watcher.cancel().catch(() => undefined);
      },
    };
  }

  async revision(): Promise<number> {
    this.ensureOpen();
    try {
      const res = await this.client.kv.range({ key: this.full('/'), limit: 1, keys_only: true });
      return Number(res.header.revision);
    } catch (err) {
      throw toStoreError(err, 'revision');
    }
  }

  async grantLease(ttlSeconds: number, opts: GrantLeaseOptions = {}): Promise<Lease> {
    this.ensureOpen();
    if (!Number.isFinite(ttlSeconds) || ttlSeconds < 1) throw new StoreError('invalid', `ttlSeconds must be >= 1, got ${ttlSeconds}`);
    const ttl = Math.ceil(ttlSeconds);
    const auto = opts.autoKeepAlive !== false;
    const grantSentAt = Date.now();
    const lease = this.client.lease(ttl, { autoKeepAlive: auto });
    const lostCbs: Array<() => void> = [];
    let lost = false;
    let revoked = false;
    let deadline: NodeJS.Timeout | null = null;
    const markLost = () => {
      if (lost || revoked) return;
      lost = true;
      if (deadline) clearTimeout(deadline);
      if (watchdog) clearInterval(watchdog);
      this.leases.delete(handle);
      for (const cb of lostCbs) queueMicrotask(cb);
    };
    // Without automatic keep-alive nobody else notices the end: expect it
    // `ttl` after the last renewal.
    const arm = () => {
      if (auto) return;
      if (deadline) clearTimeout(deadline);
      deadline = setTimeout(markLost, ttl * 1000);
      deadline.unref();
    };
    const handle = {
      close: () => {
        revoked = true;
        if (deadline) clearTimeout(deadline);
        if (watchdog) clearInterval(watchdog);
        lease.release();
      },
    };
    lease.on('lost', () => markLost());
    // With automatic keep-alive, the etcd3 client reports a loss only 2 TTLs
    // after etcd stopped answering. Leaders need better: the lease is
    // certainly alive on the server until `ttl` after the *sending* of the
    // last keep-alive it confirmed, so report the loss then, not later.
    let watchdog: NodeJS.Timeout | null = null;
    if (auto) {
      const inFlight: number[] = [];
      let confirmedAt = grantSentAt;
      lease.on('keepaliveEstablished', () => inFlight.splice(0));
      lease.on('keepaliveFired', () => inFlight.push(Date.now()));
      lease.on('keepaliveSucceeded', () => {
        confirmedAt = inFlight.shift() ?? confirmedAt;
      });
      watchdog = setInterval(() => {
        if (Date.now() - confirmedAt < ttl * 1000) return;
        lease.release();
        markLost();
      }, 100);
      watchdog.unref();
    }
    let id: string;
    try {
      id = await lease.grant();
    } catch (err) {
      revoked = true;
      if (watchdog) clearInterval(watchdog);
      throw toStoreError(err, 'grant lease');
    }
    this.leases.add(handle);
    arm();
    return {
      id,
      keepAlive: async () => {
        this.ensureOpen();
        if (lost || revoked) throw new StoreError('lease_not_found', `lease ${id} has expired or was revoked`);
        try {
          await lease.keepaliveOnce();
          arm();
        } catch (err) {
          const mapped = toStoreError(err, `keep lease ${id} alive`);
          if (mapped.code === 'lease_not_found') markLost();
          throw mapped;
        }
      },
      revoke: async () => {
        if (revoked) return;
        revoked = true;
        if (deadline) clearTimeout(deadline);
        if (watchdog) clearInterval(watchdog);
        this.leases.delete(handle);
        try {
          await lease.revoke();
        } catch (err) {
          throw toStoreError(err, `revoke lease ${id}`);
        }
      },
      onLost: (cb) => {
        if (revoked) return;
        if (lost) queueMicrotask(cb);
        else lostCbs.push(cb);
      },
    };
  }

  async compact(revision: number): Promise<void> {
    this.ensureOpen();
    try {
      await this.client.kv.compact({ revision, physical: true });
    } catch (err) {
      const mapped = toStoreError(err, 'compact');
      if (mapped.code !== 'compacted') throw mapped; // already compacted further
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.leases) l.close();
    this.leases.clear();
    const cancels: Array<Promise<void>> = [];
    for (const { watcher, fail } of this.watchers) {
      fail(new StoreError('closed', 'store is closed'));
      cancels.push(watcher.cancel().catch(() => undefined));
    }
    this.watchers.clear();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(cancels), new Promise((r) => (timer = setTimeout(r, 1_000)))]);
    clearTimeout(timer);
    this.client.close();
  }
}

/** Connect to etcd and check that it answers (StoreError `unavailable` otherwise). */
export async function openEtcdStore(opts: EtcdStoreOptions): Promise<EtcdStore> {
  if (!Array.isArray(opts.endpoints) || opts.endpoints.length === 0 || !opts.endpoints.every((e) => typeof e === 'string' && e.length > 0)) {
    throw new StoreError('invalid', 'endpoints must be a non-empty list of URLs');
  }
  if (opts.prefix !== undefined && typeof opts.prefix !== 'string') throw new StoreError('invalid', 'prefix must be a string');
  const store = new EtcdBackend(opts);
  try {
    await store.revision();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}
