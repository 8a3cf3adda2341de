// The embedded store: node:sqlite in a data directory (WAL, synchronous=FULL,
// so a write is on disk before its promise resolves). One process owns the
// directory (data-dir-lock.ts). Tables: `kv` (current values), `events` (the
// history watchers replay from; compacted by count and age), `leases`
// (expiry in wall-clock ms, checked on a timer), `meta` (revision counters).
// The same engine on ':memory:' is the memory store (memory.ts).
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { join } from 'node:path';
import { DATA_FILE_MODE, lockDataDir, type DataDirLock } from './data-dir-lock.ts';
import { closeSync, openSync } from 'node:fs';
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

export interface SqliteStoreOptions {
  /** Keep at least this many revisions of history (default 10000). */
  historyRevisions?: number;
  /** Drop history older than this (default 1 hour), never the last `historyRevisions / 10`. */
  historyMs?: number;
  /** How often lease expiry is checked (default 200 ms). */
  leaseCheckMs?: number;
  /** Told when the data directory or its files had modes more open than 0700 / 0600 (default: stderr). */
  warn?: (msg: string) => void;
}

export interface SqliteStore extends Store {
  /** Drop history before `revision`: watching from an older revision fails with `compacted`. */
  compact(revision: number): Promise<void>;
}

interface KvRow {
  key: string;
  value: string;
  create_rev: number;
  mod_rev: number;
  version: number;
  lease: number | null;
}

interface EventRow {
  revision: number;
  type: string;
  key: string;
  kv: string | null;
  prev: string | null;
}

interface Watcher {
  prefix: string;
  from: number;
  handlers: WatchHandlers;
  queue: WatchEvent[];
  scheduled: boolean;
  cancelled: boolean;
}

interface LocalLease {
  id: number;
  ttl: number;
  lostCbs: Array<() => void>;
  timer: NodeJS.Timeout | null;
  lost: boolean;
  revoked: boolean;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (
  key TEXT PRIMARY KEY, value TEXT NOT NULL, create_rev INTEGER NOT NULL,
  mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER);
CREATE INDEX IF NOT EXISTS kv_lease ON kv(lease) WHERE lease IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
  revision INTEGER NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, key TEXT NOT NULL,
  kv TEXT, prev TEXT, at INTEGER NOT NULL, PRIMARY KEY (revision, seq));
CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS leases_expiry ON leases(expires_at);
INSERT OR IGNORE INTO meta (k, v) VALUES ('revision', 1), ('compact', 0), ('lease_seq', 0);
`;

function rowToKv(r: KvRow): KeyValue {
  return { key: r.key, value: r.value, createRevision: r.create_rev, modRevision: r.mod_rev, version: r.version };
}

function checkKey(key: unknown, field = 'key'): string {
  if (typeof key !== 'string' || key.length === 0) throw new StoreError('invalid', `${field} must be a non-empty string`);
  return key;
}

/** Range end for a prefix scan in SQL (keys >= prefix AND keys < end). */
function prefixEnd(prefix: string): string | null {
  if (prefix.length === 0) return null;
  const last = prefix.charCodeAt(prefix.length - 1);
  return prefix.slice(0, -1) + String.fromCharCode(last + 1);
}

class SqliteEngine implements SqliteStore {
  readonly kind: 'sqlite' | 'memory';
  private readonly db: DatabaseSync;
  private readonly lock: DataDirLock | null;
  private readonly opts: Required<Omit<SqliteStoreOptions, 'warn'>>;
  private readonly watchers = new Set<Watcher>();
  private readonly leases = new Map<number, LocalLease>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private lastAgeCompaction = 0;

  constructor(path: string, kind: 'sqlite' | 'memory', lock: DataDirLock | null, opts: SqliteStoreOptions) {
    this.kind = kind;
    this.lock = lock;
    this.opts = {
      historyRevisions: opts.historyRevisions ?? 10_000,
      historyMs: opts.historyMs ?? 3_600_000,
      leaseCheckMs: opts.leaseCheckMs ?? 200,
    };
    this.db = new DatabaseSync(path);
    this.db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;');
    this.db.exec(SCHEMA);
    // Leases survive a restart with a fresh TTL (as etcd does on a leader
    // change); whoever held them must renew them or they expire.
    this.stmt('UPDATE leases SET expires_at = MAX(expires_at, ? + ttl * 1000)').run(Date.now());
    this.timer = setInterval(() => this.tick(), this.opts.leaseCheckMs);
    this.timer.unref();
  }

  // ---- helpers ----------------------------------------------------------

  private readonly statements = new Map<string, StatementSync>();

  private stmt(sql: string): StatementSync {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  private meta(k: string): number {
    const row = this.stmt('SELECT v FROM meta WHERE k = ?').get(k) as { v: number } | undefined;
    return row?.v ?? 0;
  }

  private setMeta(k: string, v: number): void {
    this.stmt('UPDATE meta SET v = ? WHERE k = ?').run(v, k);
  }

  private ensureOpen(): void {
    if (this.closed) throw new StoreError('closed', 'store is closed');
  }

  private getRow(key: string): KvRow | undefined {
    return this.stmt('SELECT * FROM kv WHERE key = ?').get(key) as KvRow | undefined;
  }

  /** Run `fn` in one IMMEDIATE transaction; roll back on throw. */
  private tx<T>(fn: () => T): T {
    try {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const out = fn();
        this.db.exec('COMMIT');
        return out;
      } catch (err) {
        if (this.db.isTransaction) this.db.exec('ROLLBACK');
        throw err;
      }
    } catch (err) {
      // sqlite's own failures (disk full, I/O error) are the store being unavailable.
      if (err instanceof StoreError) throw err;
      throw new StoreError('unavailable', `sqlite: ${(err as Error).message}`, { cause: err });
    }
  }

  private appendEvents(events: WatchEvent[]): void {
    const ins = this.stmt('INSERT INTO events (revision, seq, type, key, kv, prev, at) VALUES (?, ?, ?, ?, ?, ?, ?)');
    const now = Date.now();
    events.forEach((ev, seq) => {
      if (ev.type === 'put') ins.run(ev.revision, seq, 'put', ev.kv.key, JSON.stringify(ev.kv), ev.prev ? JSON.stringify(ev.prev) : null, now);
      else ins.run(ev.revision, seq, 'delete', ev.key, null, ev.prev ? JSON.stringify(ev.prev) : null, now);
    });
  }

  private publish(events: WatchEvent[]): void {
    for (const w of this.watchers) {
      let added = false;
      for (const ev of events) {
        const key = ev.type === 'put' ? ev.kv.key : ev.key;
        if (ev.revision >= w.from && key.startsWith(w.prefix)) {
          w.queue.push(ev);
          added = true;
        }
      }
      if (added) this.schedule(w);
    }
    const rev = events[0]?.revision ?? 0;
    const compact = this.meta('compact');
    if (rev - compact > this.opts.historyRevisions * 1.1) this.compactSync(rev - this.opts.historyRevisions);
  }

  private schedule(w: Watcher): void {
    if (w.scheduled) return;
    w.scheduled = true;
    queueMicrotask(() => {
      w.scheduled = false;
      while (!w.cancelled && w.queue.length > 0) {
        const ev = w.queue.shift() as WatchEvent;
        try {
          w.handlers.onEvent(ev);
        } catch (err) {
          queueMicrotask(() => {
            throw err;
          });
        }
      }
    });
  }

  private failWatcher(w: Watcher, err: StoreError): void {
    if (w.cancelled) return;
    w.cancelled = true;
    this.watchers.delete(w);
    queueMicrotask(() => w.handlers.onError?.(err));
  }

  private compactSync(revision: number): void {
    const current = this.meta('revision');
    const target = Math.min(revision, current);
    if (target <= this.meta('compact')) return;
    this.tx(() => {
      this.stmt('DELETE FROM events WHERE revision < ?').run(target);
      this.setMeta('compact', target);
    });
  }

  private revokeSync(id: number): WatchEvent[] {
    const events = this.tx(() => {
      const rows = this.stmt('SELECT * FROM kv WHERE lease = ? ORDER BY key').all(id) as unknown as KvRow[];
      this.stmt('DELETE FROM leases WHERE id = ?').run(id);
      if (rows.length === 0) return [];
      const rev = this.meta('revision') + 1;
      this.stmt('DELETE FROM kv WHERE lease = ?').run(id);
      const evs: WatchEvent[] = rows.map((r) => ({ type: 'delete', key: r.key, prev: rowToKv(r), revision: rev }));
      this.appendEvents(evs);
      this.setMeta('revision', rev);
      return evs;
    });
    if (events.length > 0) this.publish(events);
    return events;
  }

  private tick(): void {
    if (this.closed) return;
    try {
      this.expireAndCompact();
    } catch {
      // A transient sqlite failure (disk full...): the next tick tries again,
      // and the writes that hit the same failure report it to their callers.
    }
  }

  private expireAndCompact(): void {
    const now = Date.now();
    const expired = this.stmt('SELECT id FROM leases WHERE expires_at <= ?').all(now) as Array<{ id: number }>;
    for (const { id } of expired) {
      this.revokeSync(id);
      this.loseLocal(id);
    }
    if (now - this.lastAgeCompaction > Math.min(5_000, this.opts.historyMs)) {
      this.lastAgeCompaction = now;
      const keepFloor = this.meta('revision') - Math.floor(this.opts.historyRevisions / 10);
      const old = this.stmt('SELECT MAX(revision) AS r FROM events WHERE at < ?').get(now - this.opts.historyMs) as { r: number | null };
      if (old.r !== null) this.compactSync(Math.min(old.r + 1, keepFloor));
    }
  }

  private loseLocal(id: number): void {
    const l = this.leases.get(id);
    if (!l) return;
    this.leases.delete(id);
    if (l.timer) clearInterval(l.timer);
    if (l.lost || l.revoked) return;
    l.lost = true;
    for (const cb of l.lostCbs) queueMicrotask(cb);
  }

  private leaseAlive(id: number): boolean {
    const row = this.stmt('SELECT expires_at FROM leases WHERE id = ?').get(id) as { expires_at: number } | undefined;
    return row !== undefined && row.expires_at > Date.now();
  }

  private renew(id: number): void {
    this.ensureOpen();
    if (!this.leaseAlive(id)) {
      this.loseLocal(id);
      throw new StoreError('lease_not_found', `lease ${id} has expired or was revoked`);
    }
    this.stmt('UPDATE leases SET expires_at = ? + ttl * 1000 WHERE id = ?').run(Date.now(), id);
  }

  // ---- Store ------------------------------------------------------------

  async get(key: string): Promise<KeyValue | null> {
    this.ensureOpen();
    const row = this.getRow(checkKey(key));
    return row ? rowToKv(row) : null;
  }

  async list(prefix: string): Promise<{ items: KeyValue[]; revision: number }> {
    this.ensureOpen();
    if (typeof prefix !== 'string') throw new StoreError('invalid', 'prefix must be a string');
    const end = prefixEnd(prefix);
    const rows = (
      end === null
        ? this.stmt('SELECT * FROM kv ORDER BY key').all()
        : this.stmt('SELECT * FROM kv WHERE key >= ? AND key < ? ORDER BY key').all(prefix, end)
    ) as unknown as KvRow[];
    // sqlite's TEXT order is byte order (BINARY collation), as etcd's.
    return { items: rows.filter((r) => r.key.startsWith(prefix)).map(rowToKv), revision: this.meta('revision') };
  }

  async put(key: string, value: string, opts: PutOptions = {}): Promise<PutResult> {
    this.ensureOpen();
    checkKey(key);
    if (typeof value !== 'string') throw new StoreError('invalid', 'value must be a string');
    let leaseId: number | null = null;
    if (opts.lease !== undefined) {
      leaseId = Number(opts.lease);
      if (!Number.isSafeInteger(leaseId)) throw new StoreError('invalid', `lease: not a lease id: ${opts.lease}`);
    }
    const result = this.tx((): { res: PutResult; ev: WatchEvent | null } => {
      const row = this.getRow(key);
      const prev = row ? rowToKv(row) : null;
      const expect = opts.expectModRevision;
      if (expect !== undefined && (expect === 0 ? row !== undefined : row?.mod_rev !== expect)) {
        return { res: { ok: false, reason: 'conflict', current: prev }, ev: null };
      }
      if (leaseId !== null && !this.leaseAlive(leaseId)) {
        throw new StoreError('lease_not_found', `lease ${opts.lease} has expired or was revoked`);
      }
      const rev = this.meta('revision') + 1;
      const kv: KeyValue = { key, value, createRevision: prev?.createRevision ?? rev, modRevision: rev, version: (prev?.version ?? 0) + 1 };
      this.db
        .prepare('INSERT OR REPLACE INTO kv (key, value, create_rev, mod_rev, version, lease) VALUES (?, ?, ?, ?, ?, ?)')
        .run(key, value, kv.createRevision, rev, kv.version, leaseId);
      const ev: WatchEvent = { type: 'put', kv, prev, revision: rev };
      this.appendEvents([ev]);
      this.setMeta('revision', rev);
      return { res: { ok: true, revision: rev, kv }, ev };
    });
    if (result.ev) this.publish([result.ev]);
    return result.res;
  }

  async delete(key: string, opts: { expectModRevision?: number } = {}): Promise<DeleteResult> {
    this.ensureOpen();
    checkKey(key);
    const result = this.tx((): { res: DeleteResult; ev: WatchEvent | null } => {
      const row = this.getRow(key);
      if (!row) return { res: { ok: false, reason: 'not_found', current: null }, ev: null };
      const prev = rowToKv(row);
      if (opts.expectModRevision !== undefined && row.mod_rev !== opts.expectModRevision) {
        return { res: { ok: false, reason: 'conflict', current: prev }, ev: null };
      }
      const rev = this.meta('revision') + 1;
      this.stmt('DELETE FROM kv WHERE key = ?').run(key);
      const ev: WatchEvent = { type: 'delete', key, prev, revision: rev };
      this.appendEvents([ev]);
      this.setMeta('revision', rev);
      return { res: { ok: true, revision: rev, prev }, ev };
    });
    if (result.ev) this.publish([result.ev]);
    return result.res;
  }

  watch(prefix: string, opts: WatchOptions, handlers: WatchHandlers): Watch {
    const current = this.closed ? 0 : this.meta('revision');
    const w: Watcher = { prefix, from: opts.fromRevision ?? current + 1, handlers, queue: [], scheduled: false, cancelled: false };
    const watch: Watch = {
      cancel: () => {
        w.cancelled = true;
        this.watchers.delete(w);
      },
    };
    if (this.closed) {
      this.failWatcher(w, new StoreError('closed', 'store is closed'));
      return watch;
    }
    if (w.from <= current) {
      const compact = this.meta('compact');
      if (w.from < compact) {
        this.failWatcher(w, new StoreError('compacted', `revision ${w.from} is compacted (oldest kept: ${compact}); list again and watch from the list's revision`));
        return watch;
      }
      // History replay, then live events: both happen in this same
      // synchronous turn, so nothing can slip in between.
      const rows = this.stmt('SELECT revision, type, key, kv, prev FROM events WHERE revision >= ? ORDER BY revision, seq').all(w.from) as unknown as EventRow[];
      for (const r of rows) {
        if (!r.key.startsWith(prefix)) continue;
        const prev = r.prev === null ? null : (JSON.parse(r.prev) as KeyValue);
        w.queue.push(
          r.type === 'put'
            ? { type: 'put', kv: JSON.parse(r.kv as string) as KeyValue, prev, revision: r.revision }
            : { type: 'delete', key: r.key, prev, revision: r.revision },
        );
      }
      if (w.queue.length > 0) this.schedule(w);
    }
    this.watchers.add(w);
    return watch;
  }

  async revision(): Promise<number> {
    this.ensureOpen();
    return this.meta('revision');
  }

  async grantLease(ttlSeconds: number, opts: GrantLeaseOptions = {}): Promise<Lease> {
    this.ensureOpen();
    if (!Number.isFinite(ttlSeconds) || ttlSeconds < 1) throw new StoreError('invalid', `ttlSeconds must be >= 1, got ${ttlSeconds}`);
    const ttl = Math.ceil(ttlSeconds);
    const id = this.tx(() => {
      const next = this.meta('lease_seq') + 1;
      this.setMeta('lease_seq', next);
      this.stmt('INSERT INTO leases (id, ttl, expires_at) VALUES (?, ?, ?)').run(next, ttl, Date.now() + ttl * 1000);
      return next;
    });
    const local: LocalLease = { id, ttl, lostCbs: [], timer: null, lost: false, revoked: false };
    this.leases.set(id, local);
    if (opts.autoKeepAlive !== false) {
      local.timer = setInterval(() => {
        if (this.closed) return;
        try {
          this.renew(id);
        } catch {
          // lost: renew() already told the listeners
        }
      }, (ttl * 1000) / 3);
      local.timer.unref();
    }
    return {
      id: String(id),
      keepAlive: async () => this.renew(id),
      revoke: async () => {
        this.ensureOpen();
        local.revoked = true; // revoked by its holder: not "lost"
        if (local.timer) clearInterval(local.timer);
        this.leases.delete(id);
        this.revokeSync(id);
      },
      onLost: (cb) => {
        if (local.revoked) return;
        if (local.lost) queueMicrotask(cb);
        else local.lostCbs.push(cb);
      },
    };
  }

  async compact(revision: number): Promise<void> {
    this.ensureOpen();
    this.compactSync(revision);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    for (const l of this.leases.values()) if (l.timer) clearInterval(l.timer);
    this.leases.clear();
    for (const w of [...this.watchers]) this.failWatcher(w, new StoreError('closed', 'store is closed'));
    this.db.close();
    this.lock?.release();
  }
}

/** Open (creating if needed) the store in `dir`. Throws StoreError `unavailable` if another process holds it. */
export async function openSqliteStore(dir: string, opts: SqliteStoreOptions = {}): Promise<SqliteStore> {
  if (typeof dir !== 'string' || dir.length === 0) throw new StoreError('invalid', 'dir must be a non-empty path');
  const lock = lockDataDir(dir, opts.warn);
  try {
    // Created 0600 before SQLite opens it: SQLite gives its -wal and -shm
    // files the database file's mode.
    closeSync(openSync(join(dir, 'trellis.db'), 'a', DATA_FILE_MODE));
    return new SqliteEngine(join(dir, 'trellis.db'), 'sqlite', lock, opts);
  } catch (err) {
    lock.release();
    throw err;
  }
}

/** The same engine on an in-memory database: fast, nothing survives close. */
export function openInMemorySqlite(opts: SqliteStoreOptions = {}): SqliteStore {
  return new SqliteEngine(':memory:', 'memory', null, opts);
}
