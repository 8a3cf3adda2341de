// A fast in-process store for unit tests of code built on the Store
// interface: the sqlite engine on an in-memory database, so it has exactly
// the embedded store's semantics (revisions, leases, watch, compaction) and
// passes the same conformance suite, minus durability.
import { openInMemorySqlite, type SqliteStore, type SqliteStoreOptions } from './sqlite.ts';

export function openMemoryStore(opts: SqliteStoreOptions = {}): SqliteStore {
  return openInMemorySqlite(opts);
}
