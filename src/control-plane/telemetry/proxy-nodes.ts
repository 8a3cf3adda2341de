// The proxies connected over xDS, by node id, with what their node metadata
// says about them (workload, namespace, kind, admin address). The scraper
// takes its targets from here (`trellis.admin: "host:port"`), the live tap
// fans in from the same addresses, and the dashboard shows the rest.
import type { XdsServer } from '../../xds/server.ts';
import type { XdsNode } from '../../xds/cache.ts';
import { adminAddressOf, selfIdentity } from '../../proxy/telemetry/identity.ts';
import type { ScrapeTarget } from './scraper.ts';

export interface ProxyNodeInfo {
  readonly nodeId: string;
  readonly workload: string;
  readonly namespace: string;
  /** `sidecar`, `gateway`, ... from `trellis.kind`, else "unknown". */
  readonly kind: string;
  /** `host:port` of the admin listener, when advertised. */
  readonly admin: string | undefined;
}

export interface ProxyNodes {
  list(): ProxyNodeInfo[];
  get(nodeId: string): ProxyNodeInfo | undefined;
  /** Scrape targets: every connected proxy that advertises an admin address. */
  targets(): ScrapeTarget[];
  stop(): void;
}

export function infoOf(node: Pick<XdsNode, 'id' | 'cluster' | 'metadata'>): ProxyNodeInfo {
  const who = selfIdentity(node);
  const t = node.metadata['trellis'];
  const kind = t !== null && typeof t === 'object' && !Array.isArray(t) && typeof (t as Record<string, unknown>)['kind'] === 'string' ? String((t as Record<string, unknown>)['kind']) : 'unknown';
  return { nodeId: node.id, workload: who.workload, namespace: who.namespace, kind, admin: adminAddressOf(node) };
}

export function trackProxyNodes(xds: Pick<XdsServer, 'on'>): ProxyNodes {
  const byStream = new Map<number, ProxyNodeInfo>();
  const off = xds.on((e) => {
    if (e.kind === 'connect') byStream.set(e.streamId, infoOf(e.node));
    else if (e.kind === 'disconnect') byStream.delete(e.streamId);
  });
  const byNode = (): Map<string, ProxyNodeInfo> => {
    const m = new Map<string, ProxyNodeInfo>();
    for (const [, info] of [...byStream].sort((a, b) => a[0] - b[0])) m.set(info.nodeId, info); // newest stream wins
    return m;
  };
  return {
    list: () => [...byNode().values()],
    get: (id) => byNode().get(id),
    targets() {
      const seen = new Set<string>();
      for (const info of byNode().values()) if (info.admin) seen.add(info.admin);
      return [...seen].sort().map((address) => ({ address }));
    },
    stop: () => off(),
  };
}
