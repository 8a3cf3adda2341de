// A minimal endpoint picker over ProxyConfig.endpoints: the opaque TCP
// proxy's fallback for a cluster the cluster manager does not hold (the
// manager's `Cluster.pickTcp()` is used first: balancers, outlier detection
// and health live there). Round-robin over the endpoints of the
// best priority tier that has any usable endpoint (healthy or unknown
// health); weights are ignored.
import type { ProxyConfig } from './config/types.ts';

export interface TcpTarget {
  readonly address: string;
  readonly port: number;
  /** The endpoint's `trellis` metadata labels (transport socket matches). */
  readonly labels?: Readonly<Record<string, string>>;
}

export type PickEndpoint = (cluster: string) => TcpTarget | undefined;

export function createStaticPicker(config: ProxyConfig): PickEndpoint {
  const tiers = new Map<string, TcpTarget[]>();
  for (const [cluster, localities] of config.endpoints) {
    const byPriority = new Map<number, TcpTarget[]>();
    for (const loc of localities) {
      for (const ep of loc.endpoints) {
        if (ep.health !== 'healthy' && ep.health !== 'unknown') continue;
        let list = byPriority.get(loc.priority);
        if (!list) byPriority.set(loc.priority, (list = []));
        list.push({ address: ep.address, port: ep.port, ...(ep.labels ? { labels: ep.labels } : {}) });
      }
    }
    const best = [...byPriority.keys()].sort((a, b) => a - b)[0];
    if (best !== undefined) tiers.set(cluster, byPriority.get(best)!);
  }
  const next = new Map<string, number>();
  return (cluster) => {
    const list = tiers.get(cluster);
    if (!list || list.length === 0) return undefined;
    const i = next.get(cluster) ?? 0;
    next.set(cluster, (i + 1) % list.length);
    return list[i % list.length];
  };
}
