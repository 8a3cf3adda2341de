// Gateway translation: what a Trellis proxy in gateway mode (node metadata
// `trellis.kind: 'gateway'`, `trellis.gateway: NAME`) gets for its Gateway
// (Gateway API). See docs/gateways.md.
//
//  - one Envoy listener per Gateway listener port (`gateway|<port>`), bound
//    at `listenAddress` on the port the node maps it to (`portMap`, so an
//    unprivileged process can serve a Gateway's port 80 on 18080);
//  - HTTP listeners: one HCM with RDS `gateway|<port>`; virtual hosts from
//    the HTTPRoutes whose parentRefs name this Gateway (and, when given, the
//    listener's sectionName/port), by hostname (route hostnames within the
//    listener's hostname); rules translate exactly as for mesh routes;
//  - HTTPS listeners (tls.mode Terminate): one filter chain per listener,
//    matched by SNI (`filterChainMatch.serverNames` = the listener's
//    hostname) with a DownstreamTlsContext naming the operator's certificate
//    files: certificateRefs {kind: Secret, name} resolve to
//    `<certDir>/<namespace>/<name>/tls.crt|tls.key` on the gateway's host
//    (the Kubernetes TLS Secret layout); the control plane never sees keys;
//  - clusters and EDS: the mesh's, shared with the sidecars of the namespace.
//
// A Gateway of class `trellis-egress` is an egress gateway instead
// (translate/egress.ts `egressGatewayOwn`): mTLS-only listeners routing to
// the ExternalServices that name it, plus their origination clusters.
import type { GatewayListenerSpec, GatewayResource, HTTPRouteResource, MeshState, ParentRef, ProxyNode, ServiceResource } from './model.ts';
import { nsOf } from './model.ts';
import { routesFor, type RouteWarning } from './http-routes.ts';
import { hcm } from './filters.ts';
import { EGRESS_GATEWAY_CLASS, egressGatewayOwn } from './egress.ts';

export type { GatewayListenerSpec, GatewayResource };

export const DOWNSTREAM_TLS_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

/** The gateway-mode fields of a node's `metadata.trellis`. */
export interface GatewayNodeFields {
  gateway?: string;
  listenAddress?: string;
  portMap?: Record<string, number>;
  certDir?: string;
}

/** Reads the gateway fields from `metadata.trellis` (unknown shapes ignored). */
export function gatewayNodeFields(t: Record<string, unknown>): GatewayNodeFields {
  const out: GatewayNodeFields = {};
  if (typeof t.gateway === 'string' && t.gateway) out.gateway = t.gateway;
  if (typeof t.listenAddress === 'string' && t.listenAddress) out.listenAddress = t.listenAddress;
  if (typeof t.certDir === 'string' && t.certDir) out.certDir = t.certDir;
  if (t.portMap && typeof t.portMap === 'object' && !Array.isArray(t.portMap)) {
    const pm: Record<string, number> = {};
    for (const [k, v] of Object.entries(t.portMap as Record<string, unknown>)) if (typeof v === 'number' && Number.isInteger(v)) pm[k] = v;
    out.portMap = pm;
  }
  return out;
}

export interface GatewayBootstrapInput {
  gateway: string;
  namespace: string;
  xdsAddress: string;
  admin: { address: string; port: number };
  /** Address every listener binds (default 0.0.0.0). */
  listenAddress?: string;
  /** Gateway listener port -> the port actually bound. */
  portMap?: Record<number, number>;
  /** Where certificateRefs resolve: `<certDir>/<ns>/<name>/tls.crt|tls.key`. */
  certDir?: string;
  nodeId?: string;
  /** The gateway's locality (its xDS node), for locality-aware balancing. */
  locality?: { region?: string; zone?: string };
}

/** A bootstrap for `trellis proxy --config` serving one Gateway over ADS. */
export function gatewayBootstrap(i: GatewayBootstrapInput): object {
  const trellis: Record<string, unknown> = { kind: 'gateway', namespace: i.namespace, gateway: i.gateway };
  if (i.listenAddress) trellis.listenAddress = i.listenAddress;
  if (i.portMap) trellis.portMap = Object.fromEntries(Object.entries(i.portMap).map(([k, v]) => [String(k), v]));
  if (i.certDir) trellis.certDir = i.certDir;
  // Where the control plane scrapes metrics and taps, like a sidecar
  // (telemetry/proxy-nodes.ts); an ephemeral port (0) cannot be advertised.
  if (i.admin.port !== 0) trellis.admin = `${i.admin.address === '0.0.0.0' ? '127.0.0.1' : i.admin.address}:${i.admin.port}`;
  return {
    node: {
      id: i.nodeId ?? `${i.namespace}/gateway-${i.gateway}`,
      cluster: i.gateway,
      ...(i.locality ? { locality: { region: i.locality.region ?? '', zone: i.locality.zone ?? '', subZone: '' } } : {}),
      metadata: { trellis },
    },
    admin: { address: { socketAddress: { address: i.admin.address, portValue: i.admin.port } } },
    dynamicResources: { ads: { address: i.xdsAddress } },
  };
}

/** Does `ref` (from a route in `routeNs`) name this Gateway listener? */
export function attachesToGateway(ref: ParentRef, routeNs: string, gw: GatewayResource, l: GatewayListenerSpec): boolean {
  if ((ref.kind ?? 'Gateway') !== 'Gateway' || (ref.group ?? GATEWAY_GROUP) !== GATEWAY_GROUP) return false;
  if (ref.name !== gw.metadata.name || (ref.namespace ?? routeNs) !== nsOf(gw.metadata)) return false;
  if (ref.sectionName !== undefined && ref.sectionName !== l.name) return false;
  return ref.port === undefined || ref.port === l.port;
}

/** Host names matching both the listener's hostname and the route's (Gateway API intersection). */
export function hostIntersection(listenerHost: string | undefined, routeHosts: readonly string[]): string[] {
  const lh = listenerHost?.toLowerCase();
  if (routeHosts.length === 0) return [lh ?? '*'];
  if (!lh) return routeHosts.map((h) => h.toLowerCase());
  const out: string[] = [];
  for (const raw of routeHosts) {
    const h = raw.toLowerCase();
    if (h === lh) out.push(h);
    else if (lh.startsWith('*.') && !h.startsWith('*.') && h.endsWith(lh.slice(1))) out.push(h);
    else if (h.startsWith('*.') && !lh.startsWith('*.') && lh.endsWith(h.slice(1))) out.push(lh);
    else if (h.startsWith('*.') && lh.startsWith('*.') && (h.endsWith(lh.slice(1)) || lh.endsWith(h.slice(1)))) out.push(h.length >= lh.length ? h : lh);
  }
  return out;
}

/** `host` also with any port, for Host headers like `host:18080`. */
function domainsFor(host: string): string[] {
  return host === '*' ? ['*'] : [host, `${host}:*`];
}

const isHttp = (p: string): boolean => p === 'HTTP' || p === 'HTTPS';

/** The RouteConfiguration for one Gateway port: every listener on it that
 * speaks HTTP(S), its attached HTTPRoutes grouped into virtual hosts. */
function routeConfigFor(state: MeshState, gw: GatewayResource, listeners: GatewayListenerSpec[], name: string, warnings: RouteWarning[]): object {
  const gwNs = nsOf(gw.metadata);
  // Routes by the host names they serve on this port.
  const byHost = new Map<string, HTTPRouteResource[]>();
  for (const r of state.httpRoutes) {
    const routeNs = nsOf(r.metadata);
    for (const l of listeners) {
      if (!(r.spec.parentRefs ?? []).some((p) => attachesToGateway(p, routeNs, gw, l))) continue;
      if (routeNs !== gwNs) {
        warnings.push({ route: `HTTPRoute ${routeNs}/${r.metadata.name}`, message: `Gateway ${gwNs}/${gw.metadata.name} allows routes from its own namespace only` });
        continue;
      }
      for (const h of hostIntersection(l.hostname, r.spec.hostnames ?? [])) {
        const list = byHost.get(h) ?? [];
        if (!list.includes(r)) list.push(r);
        byHost.set(h, list);
      }
    }
  }
  const virtualHosts: object[] = [];
  for (const [host, routes] of [...byHost.entries()].sort(([a], [b]) => (a === '*' ? 1 : b === '*' ? -1 : a.localeCompare(b)))) {
    // The mesh's rule translation, reused: the routes re-parented onto a
    // stand-in Service for this virtual host (backends resolve as usual).
    const standIn: ServiceResource = { metadata: { name: `gateway.${gw.metadata.name}`, namespace: gwNs }, spec: { ports: [{ port: 1 }] } };
    const parent: ParentRef = { kind: 'Service', name: standIn.metadata.name, namespace: gwNs, port: 1 };
    const view: MeshState = {
      ...state,
      httpRoutes: routes.map((r) => ({ ...r, spec: { ...r.spec, parentRefs: [parent] } })),
      grpcRoutes: [],
    };
    virtualHosts.push({ name: `${name}|${host}`, domains: domainsFor(host), routes: routesFor(view, standIn, 1, warnings) ?? [] });
  }
  return { name, virtualHosts };
}

function certPaths(certDir: string, gwNs: string, ref: { name: string; namespace?: string }): { cert: string; key: string } {
  const dir = `${certDir.replace(/\/+$/, '')}/${ref.namespace ?? gwNs}/${ref.name}`;
  return { cert: `${dir}/tls.crt`, key: `${dir}/tls.key` };
}

/** The gateway node's own listeners and routes (mesh clusters are shared;
 * an egress gateway adds its `external|` clusters). */
export function gatewayOwn(state: MeshState, node: ProxyNode, warnings: RouteWarning[]): { listeners: object[]; routes: object[]; clusters: object[] } {
  const gw = (state.gateways ?? []).find((g) => g.metadata.name === node.gateway && nsOf(g.metadata) === node.namespace);
  if (!gw) {
    warnings.push({ route: `node ${node.id}`, message: `Gateway ${node.namespace}/${node.gateway ?? '?'} not found` });
    return { listeners: [], routes: [], clusters: [] };
  }
  if (gw.spec.gatewayClassName === EGRESS_GATEWAY_CLASS) return egressGatewayOwn(state, gw, node, warnings);
  const gwNs = nsOf(gw.metadata);
  const byPort = new Map<number, GatewayListenerSpec[]>();
  for (const l of gw.spec.listeners) byPort.set(l.port, [...(byPort.get(l.port) ?? []), l]);
  const listeners: object[] = [];
  const routes: object[] = [];
  for (const [port, ls] of [...byPort.entries()].sort(([a], [b]) => a - b)) {
    const name = `gateway|${port}`;
    const bind = node.portMap?.[String(port)] ?? port;
    const address = { socketAddress: { address: node.listenAddress ?? '0.0.0.0', portValue: bind } };
    const http = ls.filter((l) => isHttp(l.protocol));
    for (const l of ls.filter((x) => !isHttp(x.protocol))) {
      warnings.push({ route: `Gateway ${gwNs}/${gw.metadata.name}`, message: `listener ${l.name}: protocol ${l.protocol} is not supported by Trellis gateways (HTTP, HTTPS)` });
    }
    if (http.length === 0) continue;
    routes.push(routeConfigFor(state, gw, http, name, warnings));
    const chains: object[] = [];
    for (const l of http.filter((x) => x.protocol === 'HTTPS')) {
      if ((l.tls?.mode ?? 'Terminate') !== 'Terminate') {
        warnings.push({ route: `Gateway ${gwNs}/${gw.metadata.name}`, message: `listener ${l.name}: tls.mode Passthrough needs a TLSRoute (not supported)` });
        continue;
      }
      const refs = l.tls?.certificateRefs ?? [];
      if (refs.length === 0 || !node.certDir) {
        warnings.push({ route: `Gateway ${gwNs}/${gw.metadata.name}`, message: `listener ${l.name}: HTTPS needs tls.certificateRefs and a gateway started with a certificate directory` });
        continue;
      }
      chains.push({
        name: `${name}|${l.name}`,
        filterChainMatch: { transportProtocol: 'tls', ...(l.hostname ? { serverNames: [l.hostname.toLowerCase()] } : {}) },
        filters: [hcm(`${name}|${l.name}`, { routeConfigName: name })],
        transportSocket: {
          name: 'envoy.transport_sockets.tls',
          typedConfig: {
            '@type': DOWNSTREAM_TLS_TYPE,
            commonTlsContext: {
              alpnProtocols: ['h2', 'http/1.1'],
              tlsCertificates: refs.map((r) => {
                const p = certPaths(node.certDir!, gwNs, r);
                return { certificateChain: { filename: p.cert }, privateKey: { filename: p.key } };
              }),
            },
          },
        },
      });
    }
    if (http.some((x) => x.protocol === 'HTTP')) chains.push({ name: `${name}|http`, filters: [hcm(name, { routeConfigName: name })] });
    if (chains.length === 0) continue;
    // Direction "gateway": telemetry labels it like a caller (destination
    // service from the cluster, x-trellis-peer stamped), not like the inbound
    // side of a workload, which it is not.
    listeners.push({ name, address, trafficDirection: 'INBOUND', metadata: { filterMetadata: { trellis: { direction: 'gateway' } } }, filterChains: chains });
  }
  return { listeners, routes, clusters: [] };
}
