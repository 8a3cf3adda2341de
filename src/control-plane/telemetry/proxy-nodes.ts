// The proxies connected over xDS, by node id, with what their node metadata
// says about them (workload, namespace, kind, admin address). The scraper
// takes its targets from here (`trellis.metrics: "host:port"`, mTLS, for a
// proxy on another host, else `trellis.admin: "host:port"`), the live tap
// fans in from the same addresses (with each proxy's `trellis.adminToken`),
// and the dashboard shows the rest.
//
// The advertised admin (and metrics) address is a caller's claim, and the control plane
// connects to it: accepted only where its host is the registered address of
// the workload the node names, or the address its xDS stream comes from (a
// proxy on the control plane's host, gateways, node proxies). Anything else
// would let a fake node make the control plane fetch any host:port (SSRF);
// it is dropped and logged.
import type { XdsServer } from '../../xds/server.ts';
import type { XdsNode } from '../../xds/cache.ts';
import { adminAddressOf, adminTokenOf, metricsAddressOf, selfIdentity } from '../../proxy/telemetry/identity.ts';
import type { ScrapeTarget } from './scraper.ts';

export interface ProxyNodeInfo {
  readonly nodeId: string;
  readonly workload: string;
  readonly namespace: string;
  /** `sidecar`, `gateway`, ... from `trellis.kind`, else "unknown". */
  readonly kind: string;
  /** `host:port` of the admin listener, when advertised. */
  readonly admin: string | undefined;
  /** `host:port` of the mTLS metrics listener (proxy/metrics-listener.ts), when advertised. */
  readonly metrics?: string | undefined;
}

export interface ProxyNodes {
  list(): ProxyNodeInfo[];
  get(nodeId: string): ProxyNodeInfo | undefined;
  /** Scrape targets: every connected proxy that advertises an admin address. */
  targets(): ScrapeTarget[];
  /** The admin token the proxy at `address` advertised (for its /tap). */
  adminToken(address: string): string | undefined;
  stop(): void;
}

export function infoOf(node: Pick<XdsNode, 'id' | 'cluster' | 'metadata'>): ProxyNodeInfo {
  const who = selfIdentity(node);
  const t = node.metadata['trellis'];
  const kind = t !== null && typeof t === 'object' && !Array.isArray(t) && typeof (t as Record<string, unknown>)['kind'] === 'string' ? String((t as Record<string, unknown>)['kind']) : 'unknown';
  const metrics = metricsAddressOf(node);
  return { nodeId: node.id, workload: who.workload, namespace: who.namespace, kind, admin: adminAddressOf(node), ...(metrics === undefined ? {} : { metrics }) };
}

export interface ProxyNodesOptions {
  /** The registered address of workload namespace/name, if there is one. */
  readonly workloadAddress?: (namespace: string, workload: string) => string | undefined;
  readonly log?: (msg: string) => void;
}

function hostOf(address: string): string {
  const h = address.slice(0, address.lastIndexOf(':'));
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

/** Why the advertised admin address is refused, or null when it is accepted. */
export function adminAddressRefusal(admin: string, info: Pick<ProxyNodeInfo, 'namespace' | 'workload'>, peer: string, workloadAddress: ProxyNodesOptions['workloadAddress']): string | null {
  const host = hostOf(admin);
  if (peer !== '' && host === peer) return null;
  const registered = workloadAddress?.(info.namespace, info.workload);
  if (registered !== undefined && host === registered) return null;
  return `its host is neither the address the xDS stream comes from (${peer || 'unknown'}) nor ${registered !== undefined ? `the registered address ${registered} of workload ${info.namespace}/${info.workload}` : 'a registered workload\'s address'}`;
}

export function trackProxyNodes(xds: Pick<XdsServer, 'on'>, opts: ProxyNodesOptions = {}): ProxyNodes {
  const byStream = new Map<number, ProxyNodeInfo>();
  const tokens = new Map<number, string>();
  const off = xds.on((e) => {
    if (e.kind === 'connect') {
      let info = infoOf(e.node);
      if (info.admin !== undefined) {
        const why = adminAddressRefusal(info.admin, info, e.peer, opts.workloadAddress);
        if (why !== null) {
          opts.log?.(`proxy ${info.nodeId}: advertised admin address ${info.admin} ignored: ${why}`);
          info = { ...info, admin: undefined };
        }
      }
      if (info.metrics !== undefined) {
        const why = adminAddressRefusal(info.metrics, info, e.peer, opts.workloadAddress);
        if (why !== null) {
          opts.log?.(`proxy ${info.nodeId}: advertised metrics address ${info.metrics} ignored: ${why}`);
          info = { ...info, metrics: undefined };
        }
      }
      byStream.set(e.streamId, info);
      const token = adminTokenOf(e.node);
      if (token !== undefined && info.admin !== undefined) tokens.set(e.streamId, token);
      else tokens.delete(e.streamId);
    } else if (e.kind === 'disconnect') {
      byStream.delete(e.streamId);
      tokens.delete(e.streamId);
    }
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
      // The mTLS metrics listener where there is one (a proxy on another
      // host), else the admin listener (a proxy on this host's loopback).
      const seen = new Map<string, ScrapeTarget>();
      for (const info of byNode().values()) {
        if (info.metrics) seen.set(info.metrics, { address: info.metrics, tls: { namespace: info.namespace } });
        else if (info.admin) seen.set(info.admin, { address: info.admin });
      }
      return [...seen.values()].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    },
    adminToken(address) {
      let out: string | undefined;
      for (const [id, info] of [...byStream].sort((a, b) => a[0] - b[0])) if (info.admin === address) out = tokens.get(id); // newest stream wins
      return out;
    },
    stop: () => off(),
  };
}
