// Upstream state that outlives a config version: connection pools and the
// endpoints' load counters. A new config's clusters acquire what they need
// before the old config is retired, so an unchanged endpoint keeps its pool
// (and its warm connections, and its in-flight requests) and its latency
// estimate across the swap; whatever nobody references any more is closed
// gracefully (in-flight requests finish) or dropped.
//
// One pool per (protocol, host, port, pool settings, TLS options object).
// Pools are created on first use, so acquiring is a map lookup and building a
// config that never serves an endpoint opens nothing. Load counters are kept
// per (scope, endpoint) where the scope is the cluster name.
import { ProxyError } from './errors.ts';
import { createEndpointLoad } from './balancer/load.ts';
import type { EndpointLoad } from './balancer/types.ts';
import type { PoolOptions, PoolStats, UpstreamPool } from './upstream/types.ts';

export type PoolProtocol = 'http1' | 'http2';
export type CreatePool = (protocol: PoolProtocol, opts: PoolOptions) => UpstreamPool;

export interface PoolLease {
  readonly key: string;
  readonly protocol: PoolProtocol;
  /** The shared pool, created on first call. */
  pool(): UpstreamPool;
  /** Null until the pool was created. */
  stats(): PoolStats | null;
  /** Drop this reference (idempotent); the last one closes the pool. */
  release(): void;
}

export interface LoadLease {
  readonly load: EndpointLoad;
  release(): void;
}

export interface PoolInfo {
  readonly key: string;
  readonly protocol: PoolProtocol;
  readonly host: string;
  readonly port: number;
  readonly refs: number;
  readonly stats: PoolStats | null;
}

export interface PoolRegistry {
  acquire(protocol: PoolProtocol, opts: PoolOptions): PoolLease;
  acquireLoad(scope: string, endpointKey: string): LoadLease;
  list(): PoolInfo[];
  /** Pools still closing after their last reference went away. */
  closing(): number;
  /** Resolves when every pool dropped so far has finished closing. */
  settled(): Promise<void>;
  /** Shutdown: close every pool gracefully, referenced or not. */
  close(): Promise<void>;
  /** Shutdown after the drain deadline: destroy every pool now. */
  destroy(): void;
}

interface PoolEntry {
  readonly key: string;
  readonly protocol: PoolProtocol;
  readonly opts: PoolOptions;
  refs: number;
  pool: UpstreamPool | null;
}

const tlsIds = new WeakMap<object, number>();
let nextTlsId = 1;

/** Pools are shared only between identical settings; TLS options are
 * compared by object identity (the mTLS work hands out one per identity). */
export function poolKey(protocol: PoolProtocol, o: PoolOptions): string {
  let tls = 0;
  if (o.tls) {
    tls = tlsIds.get(o.tls) ?? 0;
    if (tls === 0) tlsIds.set(o.tls, (tls = nextTlsId++));
  }
  return `${protocol}|${o.host}|${o.port}|c${o.maxConnections}|p${o.maxPendingRequests}|s${o.maxConcurrentStreams}` +
    `|i${o.idleTimeoutMs}|t${o.connectTimeoutMs}|r${o.maxRequestsPerConnection}|tls${tls}`;
}

/** Answers every request with an error: what a lease released before its
 * pool was ever created hands to a straggling request. */
function releasedPool(key: string): UpstreamPool {
  return {
    dispatch: (_req, handler) => handler.onError(new ProxyError('NO_HEALTHY_UPSTREAM', `pool ${key} was released with its config`)),
    stats: () => ({ connections: 0, active: 0, pending: 0 }),
    close: async () => {},
    destroy: () => {},
  };
}

export function createPoolRegistry(createPool: CreatePool): PoolRegistry {
  const pools = new Map<string, PoolEntry>();
  const loads = new Map<string, { load: EndpointLoad; refs: number }>();
  const closingSet = new Set<Promise<void>>();
  const closingPools = new Set<UpstreamPool>();

  const closeDropped = (pool: UpstreamPool): void => {
    closingPools.add(pool);
    const p = Promise.resolve()
      .then(() => pool.close())
      .catch(() => {}) // a pool that fails to close cleanly has nothing left to tell us
      .finally(() => {
        closingSet.delete(p);
        closingPools.delete(pool);
      });
    closingSet.add(p);
  };

  const materialize = (e: PoolEntry): UpstreamPool => (e.pool ??= createPool(e.protocol, e.opts));

  return {
    acquire(protocol, opts) {
      const key = poolKey(protocol, opts);
      let entry = pools.get(key);
      if (!entry) pools.set(key, (entry = { key, protocol, opts: { ...opts }, refs: 0, pool: null }));
      entry.refs++;
      const mine = entry;
      let released = false;
      return {
        key,
        protocol,
        pool() {
          if (!released) return materialize(mine);
          // A straggler after release: the live entry if a newer config holds
          // the same pool, else the (closing) pool this lease had, else a stub.
          const live = pools.get(key);
          if (live) return materialize(live);
          return mine.pool ?? releasedPool(key);
        },
        stats: () => mine.pool?.stats() ?? null,
        release() {
          if (released) return;
          released = true;
          if (--mine.refs > 0) return;
          if (pools.get(key) === mine) pools.delete(key);
          if (mine.pool) closeDropped(mine.pool);
        },
      };
    },

    acquireLoad(scope, endpointKey) {
      const key = `${scope}|${endpointKey}`;
      let entry = loads.get(key);
      if (!entry) loads.set(key, (entry = { load: createEndpointLoad(0), refs: 0 }));
      entry.refs++;
      const mine = entry;
      let released = false;
      return {
        load: mine.load,
        release() {
          if (released) return;
          released = true;
          if (--mine.refs === 0 && loads.get(key) === mine) loads.delete(key);
        },
      };
    },

    list() {
      return [...pools.values()].map((e) => ({
        key: e.key,
        protocol: e.protocol,
        host: e.opts.host,
        port: e.opts.port,
        refs: e.refs,
        stats: e.pool?.stats() ?? null,
      }));
    },

    closing: () => closingSet.size,

    async settled() {
      while (closingSet.size > 0) await Promise.all([...closingSet]);
    },

    async close() {
      const all = [...pools.values()];
      pools.clear();
      for (const e of all) if (e.pool) closeDropped(e.pool);
      await this.settled();
    },

    destroy() {
      const all = [...pools.values()];
      pools.clear();
      for (const e of all) e.pool?.destroy();
      for (const pool of closingPools) pool.destroy();
    },
  };
}
