// The per-proxy part of a sidecar under transparent capture (node metadata
// `trellis.capture: 'transparent'`): iptables REDIRECTs the app's outbound
// TCP to `outbound.port` and inbound TCP to `inboundPort`, and the proxy
// recovers where each connection was going (SO_ORIGINAL_DST). So:
//
//  - "outbound" (useOriginalDst): a filter chain per HTTP-like service port
//    matched by destination port, routing by Host over the shared "outbound"
//    RouteConfiguration (names, VIPs); a chain per TCP service port matched
//    by destination port and the service's VIP/32. A destination no chain
//    matches is closed (no passthrough yet).
//  - "inbound" (useOriginalDst): a chain per port of the workload, matched by
//    destination port, forwarding to the app on 127.0.0.1:<port> (the
//    proxy's own uid is exempt from capture, so this does not loop).
// Peers dial the workload's pod address on the app port itself (no proxyPort).
import type { MeshState, ProxyNode, ServiceResource } from './model.ts';
import { keyOf, nsOf } from './model.ts';
import { findService, inboundAppCluster, inboundClusterName, isHttpLike, nodeWorkload, portProtocol, serviceClusterName } from './services.ts';
import type { RouteWarning } from './http-routes.ts';
import { hcm, tcpProxy } from './filters.ts';

export const DEFAULT_INBOUND_CAPTURE_PORT = 15006;

const addr = (address: string, port: number): object => ({ socketAddress: { address, portValue: port } });

export interface OwnResources {
  listeners: object[];
  routes: object[];
  clusters: object[];
  endpoints: object[];
}

export function transparentOwn(state: MeshState, node: ProxyNode, warnings: RouteWarning[], outboundRouteName = 'outbound'): OwnResources {
  const listeners: object[] = [];
  const clusters: object[] = [];
  const ob = node.outbound ?? { address: '127.0.0.1', port: 15001 };

  const services = [...state.services].sort((a: ServiceResource, b: ServiceResource) => keyOf(a.metadata).localeCompare(keyOf(b.metadata)));
  const httpPorts = new Set<number>();
  const chains: object[] = [];
  for (const svc of services) {
    const ns = nsOf(svc.metadata);
    const vip = state.vips.get(keyOf(svc.metadata));
    for (const sp of svc.spec.ports) {
      if (isHttpLike(portProtocol(sp))) {
        httpPorts.add(sp.port);
        continue;
      }
      const cluster = serviceClusterName(ns, svc.metadata.name, sp.port);
      if (!vip) {
        warnings.push({ route: `node ${node.id}`, message: `TCP service ${ns}/${svc.metadata.name}:${sp.port} has no VIP: not reachable under transparent capture` });
        continue;
      }
      chains.push({
        name: `tcp|${cluster}`,
        filterChainMatch: { destinationPort: sp.port, prefixRanges: [{ addressPrefix: vip, prefixLen: 32 }] },
        filters: [tcpProxy(`outbound|${cluster}`, [{ name: cluster, weight: 1 }])],
      });
    }
  }
  for (const port of [...httpPorts].sort((a, b) => a - b)) {
    chains.push({ name: `http|${port}`, filterChainMatch: { destinationPort: port }, filters: [hcm(`outbound|${port}`, { routeConfigName: outboundRouteName })] });
  }
  listeners.push({
    name: 'outbound',
    address: addr(ob.address, ob.port),
    trafficDirection: 'OUTBOUND',
    useOriginalDst: true,
    filterChains: chains,
  });

  const me = nodeWorkload(state, node);
  const inChains: object[] = [];
  for (const p of me?.ports ?? []) {
    const proto = p.protocol ?? 'http';
    const cluster = inboundClusterName(p.port);
    clusters.push(inboundAppCluster(p.port, proto));
    const name = `inbound|${p.port}`;
    const filter = isHttpLike(proto)
      ? hcm(name, { routeConfig: { name, virtualHosts: [{ name, domains: ['*'], routes: [{ name: 'inbound', match: { prefix: '/' }, route: { cluster, timeout: '0s' } }] }] } })
      : tcpProxy(name, [{ name: cluster, weight: 1 }]);
    inChains.push({ name, filterChainMatch: { destinationPort: p.port }, filters: [filter] });
  }
  listeners.push({
    name: 'inbound',
    address: addr(node.inboundAddress ?? '0.0.0.0', node.inboundPort ?? DEFAULT_INBOUND_CAPTURE_PORT),
    trafficDirection: 'INBOUND',
    useOriginalDst: true,
    filterChains: inChains,
  });

  // Declared upstreams still work in transparent mode (same as explicit).
  for (const up of node.upstreams ?? []) {
    const ns = up.namespace ?? node.namespace;
    const svc = findService(state, ns, up.service);
    if (!svc) warnings.push({ route: `node ${node.id}`, message: `upstream ${ns}/${up.service}: no such service (ignored under transparent capture)` });
  }
  return { listeners, routes: [], clusters, endpoints: [] };
}
