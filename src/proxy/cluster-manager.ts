// The clusters of one config version. Building one is cheap (pool and load
// leases are map lookups, pickers are built on first use) and never touches
// the manager it replaces: the proxy builds the new manager, swaps it in,
// then retire()s the old one, whose in-flight requests finish on pools the
// new manager already holds (or, for dropped endpoints, on pools that close
// gracefully once they are done).
import type { ClusterSpec, EndpointSpec, NodeInfo, ProxyConfig } from './config/types.ts';
import type { Endpoint } from './balancer/types.ts';
import { createCluster } from './cluster.ts';
import type { Cluster, ClusterSnapshot, RequestOutcome } from './cluster.ts';
import type { PoolRegistry } from './pool-registry.ts';
import type { ConnectionOptions } from 'node:tls';

export interface ClusterManagerDeps {
  readonly node: NodeInfo;
  readonly pools: PoolRegistry;
  /** Uniform in [0, 1); Math.random by default. */
  readonly random?: () => number;
  /** Monotonic milliseconds; performance.now by default. */
  readonly now?: () => number;
  readonly tls?: (cluster: ClusterSpec, endpoint: EndpointSpec) => ConnectionOptions | undefined;
  readonly observe?: (cluster: string, endpoint: Endpoint, outcome: RequestOutcome) => void;
}

export interface ClusterManager {
  readonly version: string;
  get(name: string): Cluster | undefined;
  /** Per-cluster endpoints with health, load and pool stats (admin, metrics). */
  clusters(): ClusterSnapshot[];
  /** Release pools and load counters; idempotent. Call after the swap. */
  retire(): void;
}

export function createClusterManager(config: ProxyConfig, deps: ClusterManagerDeps): ClusterManager {
  const clusterDeps = {
    node: deps.node,
    pools: deps.pools,
    random: deps.random ?? Math.random,
    now: deps.now ?? (() => performance.now()),
    ...(deps.tls ? { tls: deps.tls } : {}),
    ...(deps.observe ? { observe: deps.observe } : {}),
  };
  const clusters = new Map<string, Cluster>();
  try {
    for (const [name, spec] of config.clusters) {
      clusters.set(name, createCluster(spec, config.endpoints.get(name) ?? [], clusterDeps));
    }
  } catch (err) {
    for (const c of clusters.values()) c.retire();
    throw err;
  }
  let retired = false;
  return {
    version: config.version,
    get: (name) => clusters.get(name),
    clusters: () => [...clusters.values()].map((c) => c.snapshot()),
    retire() {
      if (retired) return;
      retired = true;
      for (const c of clusters.values()) c.retire();
    },
  };
}
