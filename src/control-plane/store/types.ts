// The control plane's one storage interface: a revisioned key/value store
// with watch-from-revision, in etcd's model. Backends: sqlite.ts (embedded,
// node:sqlite in a data directory, the default) and etcd.ts (several control
// plane replicas sharing a real etcd). Both pass store-conformance.ts.
//
// Keys are strings like "/trellis/resources/HTTPRoute/default/reviews";
// values are UTF-8 JSON text. Revisions are a single store-wide counter that
// increases with every write (etcd's revision), so a watcher can resume from
// exactly where it left off.

export interface KeyValue {
  key: string;
  value: string;
  /** Revision of the write that created the key. */
  createRevision: number;
  /** Revision of the last write to the key. */
  modRevision: number;
  /** Number of writes since creation (1 on create). */
  version: number;
}

export type PutResult =
  | { ok: true; revision: number; kv: KeyValue }
  | { ok: false; reason: 'conflict'; current: KeyValue | null };

export type DeleteResult =
  | { ok: true; revision: number; prev: KeyValue }
  | { ok: false; reason: 'not_found' | 'conflict'; current: KeyValue | null };

export interface PutOptions {
  /** Optimistic concurrency: 0 = the key must not exist; n = its modRevision must be n. */
  expectModRevision?: number;
  /** Attach to a lease (the key disappears when the lease expires). */
  lease?: string;
}

export type WatchEvent =
  | { type: 'put'; kv: KeyValue; prev: KeyValue | null; revision: number }
  | { type: 'delete'; key: string; prev: KeyValue | null; revision: number };

export interface WatchOptions {
  /** Deliver every event with revision >= fromRevision (history first), then live ones.
   * Without it the watch starts whenever the backend has set it up (etcd:
   * asynchronously): to miss nothing, list first and pass the list's revision + 1. */
  fromRevision?: number;
}

export interface Watch {
  cancel(): void;
}

export interface WatchHandlers {
  /** Events arrive in revision order, each exactly once. */
  onEvent(ev: WatchEvent): void;
  /** The watch ended: `compacted` when fromRevision is older than the kept
   * history (re-list and watch again), `closed` when the store closed. */
  onError?(err: StoreError): void;
}

export interface Lease {
  readonly id: string;
  /** Renew now (backends also keep it alive automatically until revoke).
   * Rejects with StoreError `lease_not_found` when the lease is gone. */
  keepAlive(): Promise<void>;
  revoke(): Promise<void>;
  /** Fires if the lease is lost (expired or revoked elsewhere). */
  onLost(cb: () => void): void;
}

export interface GrantLeaseOptions {
  /** Default true. */
  autoKeepAlive?: boolean;
}

export interface Store {
  readonly kind: 'sqlite' | 'etcd' | 'memory';
  get(key: string): Promise<KeyValue | null>;
  /** Every key starting with `prefix`, sorted by key, at one consistent revision. */
  list(prefix: string): Promise<{ items: KeyValue[]; revision: number }>;
  put(key: string, value: string, opts?: PutOptions): Promise<PutResult>;
  delete(key: string, opts?: { expectModRevision?: number }): Promise<DeleteResult>;
  watch(prefix: string, opts: WatchOptions, handlers: WatchHandlers): Watch;
  /** The store's current revision. */
  revision(): Promise<number>;
  /** A lease with a TTL in seconds, kept alive until revoked (unless
   * `autoKeepAlive: false`: then only `keepAlive()` renews it, for leases that
   * stand for someone else's heartbeat, like a registered workload's). */
  grantLease(ttlSeconds: number, opts?: GrantLeaseOptions): Promise<Lease>;
  close(): Promise<void>;
}

/** `lease_not_found`: put/keepAlive named a lease that expired or was revoked. */
export type StoreErrorCode = 'compacted' | 'closed' | 'unavailable' | 'invalid' | 'lease_not_found';

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'StoreError';
    this.code = code;
  }
}
