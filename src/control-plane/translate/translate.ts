// translate(state, node) -> the Envoy v3 resources one proxy needs. Pure: the
// same input always yields the same output (sorted, no clocks, no
// randomness), so snapshot versions are content hashes and unchanged proxies
// are not pushed.
//
// What each kind of node gets:
//  - sidecar: an outbound listener (explicit mode: the HTTP_PROXY target,
//    routing by Host across every service's HTTP ports; RDS "outbound"),
//    local listeners for declared upstreams (gRPC/TCP, Consul-style), and an
//    inbound listener per port of its own workload forwarding to the app on
//    loopback; clusters and EDS for every service port.
//  - proxyless (grpc-js-xds and other gRPC xDS clients): an API listener per
//    gRPC/HTTP service port, named `<name>.<ns>.svc:<port>` (the `xds:///`
//    target), with its own RouteConfiguration; clusters and EDS; traffic
//    policies; all rewritten per client kind into what gRPC reads
//    (translate/proxyless.ts).
import type { MeshState, ProxyNode, ServiceResource, TCPRouteResource } from './model.ts';
import { DEFAULT_CLUSTER_DOMAIN, keyOf, nsOf } from './model.ts';
import { gatewayOwn } from './gateway.ts';
import { egressClusters, egressGatewayClusters, egressVirtualHosts, unknownPortVirtualHosts } from './egress.ts';
import { attaches, connectRoute, defaultRoutes, routesFor, type RouteWarning } from './http-routes.ts';
import {
  buildLoadAssignments, findService, http2ProtocolOptions, inboundAppCluster, inboundClusterName, isHttpLike, nodeWorkload, portProtocol, serviceClusterName, serviceDomains,
} from './services.ts';
import { transparentOwn } from './transparent.ts';
import { egressFilter, sidecarFor } from './scope.ts';
import { applyMeshTls } from './mtls.ts';
import { applySecurity } from './authz.ts';
import { applyTelemetry } from './telemetry.ts';
import { applyPathNormalization } from './path-normalization.ts';
import { applyPlugins } from './plugins.ts';
import { applyPolicies } from './policies.ts';
import { forGrpcClient } from './proxyless.ts';
import { hcm, tcpProxy } from './filters.ts';

export const HTTP_OPTIONS_TYPE = 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

export const OUTBOUND_ROUTE_NAME = 'outbound';

export interface TranslatedResources {
  listeners: object[];
  routes: object[];
  clusters: object[];
  endpoints: object[];
  secrets?: object[];
  warnings: RouteWarning[];
}

const socketAddress = (address: string, port: number): object => ({ socketAddress: { address, portValue: port } });

/** Parts of a translation that depend only on the mesh state (and the
 * caller's namespace), computed once per state and shared by every proxy's
 * snapshot as the same objects, so the xDS encoder packs them once.
 * Translated objects are never mutated after they are returned. */
const shared = new WeakMap<MeshState, Map<string, { value: unknown; warnings: RouteWarning[] }>>();

function memo<T>(state: MeshState, key: string, warnings: RouteWarning[], compute: (w: RouteWarning[]) => T): T {
  let m = shared.get(state);
  if (!m) {
    m = new Map();
    shared.set(state, m);
  }
  let hit = m.get(key);
  if (!hit) {
    const w: RouteWarning[] = [];
    hit = { value: compute(w), warnings: w };
    m.set(key, hit);
  }
  warnings.push(...hit.warnings);
  return hit.value as T;
}

function edsCluster(name: string, h2: boolean, proxyless: boolean): object {
  return {
    name,
    type: 'EDS',
    edsClusterConfig: { edsConfig: { ads: {}, resourceApiVersion: 'V3' }, serviceName: name },
    connectTimeout: '5s',
    // Proxyless gRPC clients take round robin explicitly; Trellis proxies
    // default to peak-EWMA when no policy is set (see docs/load-balancing.md).
    ...(proxyless ? { lbPolicy: 'ROUND_ROBIN' } : {}),
    ...(h2 ? { typedExtensionProtocolOptions: http2ProtocolOptions() } : {}),
  };
}

function sortedServices(state: MeshState): ServiceResource[] {
  return [...state.services].sort((a, b) => keyOf(a.metadata).localeCompare(keyOf(b.metadata)));
}

/** Virtual hosts for every HTTP-like service port, as seen from `callerNs`. */
function outboundVirtualHosts(state: MeshState, callerNs: string, warnings: RouteWarning[], filter?: (svc: ServiceResource, port: number) => boolean): object[] {
  const vhosts: object[] = [];
  for (const svc of sortedServices(state)) {
    const ns = nsOf(svc.metadata);
    for (const sp of svc.spec.ports) {
      if (!isHttpLike(portProtocol(sp))) continue;
      if (filter && !filter(svc, sp.port)) continue;
      vhosts.push({
        name: serviceClusterName(ns, svc.metadata.name, sp.port),
        domains: serviceDomains(svc, sp.port, callerNs, state.vips.get(keyOf(svc.metadata)), state.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN),
        routes: [...(routesFor(state, svc, sp.port, warnings) ?? defaultRoutes(svc, sp.port)), connectRoute(svc, sp.port)],
      });
    }
  }
  return vhosts;
}

function tcpBackends(state: MeshState, svc: ServiceResource, port: number, warnings: RouteWarning[]): { name: string; weight: number }[] {
  const routes = state.tcpRoutes.filter((r: TCPRouteResource) => (r.spec.parentRefs ?? []).some((p) => attaches(p, nsOf(r.metadata), svc, port)));
  const out: { name: string; weight: number }[] = [];
  for (const r of routes) {
    for (const rule of r.spec.rules ?? []) {
      for (const b of rule.backendRefs ?? []) {
        const ns = b.namespace ?? nsOf(r.metadata);
        const target = findService(state, ns, b.name);
        const bport = b.port ?? target?.spec.ports[0]?.port;
        if (!target || bport === undefined) {
          warnings.push({ route: `TCPRoute ${keyOf(r.metadata)}`, message: `backendRef ${ns}/${b.name}: service not found` });
          continue;
        }
        if ((b.weight ?? 1) > 0) out.push({ name: serviceClusterName(ns, b.name, bport), weight: b.weight ?? 1 });
      }
    }
  }
  return out.length > 0 ? out : [{ name: serviceClusterName(nsOf(svc.metadata), svc.metadata.name, port), weight: 1 }];
}

/** Every `cluster` named inside route objects (route.cluster, weighted clusters, mirrors). */
function clusterRefs(objs: readonly object[]): Set<string> {
  const out = new Set<string>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if ((k === 'cluster' || (k === 'name' && 'weight' in v)) && typeof x === 'string') out.add(x);
        else walk(x);
      }
    }
  };
  walk(objs);
  return out;
}

/** The service a service cluster or virtual host (`name.ns.svc:port`, or
 * the `no-such-port|ns/name` answer, egress.ts) belongs to. */
function serviceOfCluster(name: string): { namespace: string; name: string } | undefined {
  const m = /^([^.]+)\.([^.]+)\.svc:\d+$/.exec(name);
  if (m !== null) return { namespace: m[2]!, name: m[1]! };
  const u = /^no-such-port\|([^/]+)\/(.+)$/.exec(name);
  return u === null ? undefined : { namespace: u[1]!, name: u[2]! };
}

function allServiceClusters(state: MeshState, proxyless: boolean): object[] {
  const clusters: object[] = [];
  for (const svc of sortedServices(state)) {
    for (const sp of svc.spec.ports) {
      const proto = portProtocol(sp);
      if (proxyless && proto === 'tcp') continue;
      clusters.push(edsCluster(serviceClusterName(nsOf(svc.metadata), svc.metadata.name, sp.port), proto === 'grpc' || proto === 'http2', proxyless));
    }
  }
  return clusters;
}

interface Resources {
  listeners: object[];
  routes: object[];
  clusters: object[];
  endpoints: object[];
  /** SDS: the mesh trust bundle when mTLS is on (mtls.ts). */
  secrets?: object[];
}

/** A translation in two parts: `shared` depends only on the mesh state and
 * `sharedKey` (the same objects for every proxy with that key, so snapshots
 * can share their encoded form), `own` is this proxy's alone. */
export interface TranslationParts {
  sharedKey: string;
  shared: Resources;
  own: Resources;
  warnings: RouteWarning[];
}

/** Load assignments for every EDS cluster in `clusters`. */
function edsFor(state: MeshState, clusters: object[], warnings: RouteWarning[]): object[] {
  const cla = memo(state, 'cla', warnings, () => buildLoadAssignments(state));
  const endpoints: object[] = [];
  for (const c of clusters as { name: string; type?: string }[]) {
    if (c.type !== 'EDS') continue;
    endpoints.push(cla.get(c.name) ?? { clusterName: c.name, endpoints: [] });
  }
  return endpoints;
}

/** The shared part of a sidecar: every service, or with `scope` (a Sidecar
 * resource's egress, translate/scope.ts) only the services it declares. */
function sidecarShared(state: MeshState, namespace: string, warnings: RouteWarning[], scope?: { key: string; inScope: (namespace: string, name: string) => boolean }): Resources {
  if (scope) return scopedShared(state, namespace, warnings, scope);
  return memo(state, `sidecar|${namespace}`, warnings, (w) => {
    // Egress (translate/egress.ts): declared ExternalServices, then deny the rest.
    const clusters = [...allServiceClusters(state, false), ...egressClusters(state), ...egressGatewayClusters(state)];
    return {
      listeners: [],
      routes: [{ name: OUTBOUND_ROUTE_NAME, virtualHosts: [...outboundVirtualHosts(state, namespace, w), ...unknownPortVirtualHosts(state, namespace), ...egressVirtualHosts(state, w)] }],
      clusters,
      endpoints: edsFor(state, clusters, w),
    };
  });
}

/** A Sidecar's part: the namespace's whole part filtered, so its objects are
 * the same ones (encoded once for every scope). Kept: the declared services'
 * virtual hosts, their clusters and those their routes send to (a split to an
 * undeclared service), and everything that is not a service's (egress). */
function scopedShared(state: MeshState, namespace: string, warnings: RouteWarning[], scope: { key: string; inScope: (namespace: string, name: string) => boolean }): Resources {
  return memo(state, `sidecar-scoped|${namespace}|${scope.key}`, warnings, (w) => {
    const full = sidecarShared(state, namespace, w);
    const keep = (name: string): boolean => {
      const svc = serviceOfCluster(name);
      return svc === undefined || scope.inScope(svc.namespace, svc.name);
    };
    const outbound = full.routes[0] as { name: string; virtualHosts: { name: string }[] };
    const vhosts = outbound.virtualHosts.filter((v) => keep(v.name));
    const referenced = clusterRefs(vhosts);
    const clusters = full.clusters.filter((c) => referenced.has((c as { name: string }).name) || keep((c as { name: string }).name));
    const names = new Set(clusters.map((c) => (c as { name: string }).name));
    return {
      listeners: [],
      routes: [{ ...outbound, virtualHosts: vhosts }],
      clusters,
      endpoints: full.endpoints.filter((e) => names.has((e as { clusterName: string }).clusterName)),
    };
  });
}

/** The RouteConfiguration an on-demand proxy asks for when it first sees `host` on `routeConfig`. */
export const onDemandRouteName = (routeConfig: string, host: string): string => `${routeConfig}/${host.toLowerCase()}`;

/** An on-demand sidecar's shared part: the outbound route table holds only
 * the egress hosts; every mesh host is its own RouteConfiguration
 * (`outbound/<host>`, one virtual host), sent only to proxies that subscribe
 * to it. Clusters and endpoints are as for every sidecar (subscribed by name). */
function sidecarOnDemandShared(state: MeshState, namespace: string, warnings: RouteWarning[]): Resources {
  return memo(state, `sidecar-od|${namespace}`, warnings, (w) => {
    const full = sidecarShared(state, namespace, []);
    const perHost = new Map<string, object>();
    for (const vh of outboundVirtualHosts(state, namespace, w) as { domains: string[] }[]) {
      for (const d of vh.domains) {
        const name = onDemandRouteName(OUTBOUND_ROUTE_NAME, d);
        if (!perHost.has(name)) perHost.set(name, { name, virtualHosts: [vh] });
      }
    }
    return {
      ...full,
      routes: [{ name: OUTBOUND_ROUTE_NAME, virtualHosts: egressVirtualHosts(state, w) }, ...[...perHost.values()]],
    };
  });
}

function sidecarOwn(state: MeshState, node: ProxyNode, warnings: RouteWarning[]): Resources {
  const listeners: object[] = [];
  const routes: object[] = [];
  const clusters: object[] = [];

  // Outbound: the explicit-mode HTTP proxy every app call goes through (RDS "outbound", shared).
  const ob = node.outbound ?? { address: '127.0.0.1', port: 15001 };
  listeners.push({
    name: 'outbound',
    address: socketAddress(ob.address, ob.port),
    trafficDirection: 'OUTBOUND',
    filterChains: [{ name: 'outbound-http', filters: [hcm('outbound', { routeConfigName: OUTBOUND_ROUTE_NAME })] }],
  });

  // Declared upstreams: a local port per upstream service for gRPC and TCP clients.
  for (const up of node.upstreams ?? []) {
    const ns = up.namespace ?? node.namespace;
    const svc = findService(state, ns, up.service);
    const sp = svc?.spec.ports.find((p) => p.port === up.port);
    const name = `upstream|${up.localPort}`;
    const address = socketAddress(up.localAddress ?? '127.0.0.1', up.localPort);
    if (!svc || !sp) {
      warnings.push({ route: `node ${node.id}`, message: `upstream ${ns}/${up.service}:${up.port}: no such service port` });
      continue;
    }
    if (isHttpLike(portProtocol(sp))) {
      const rcName = `upstream|${up.localPort}`;
      routes.push({
        name: rcName,
        virtualHosts: [{ name: serviceClusterName(ns, svc.metadata.name, sp.port), domains: ['*'], routes: routesFor(state, svc, sp.port, warnings) ?? defaultRoutes(svc, sp.port) }],
      });
      listeners.push({ name, address, trafficDirection: 'OUTBOUND', filterChains: [{ name, filters: [hcm(name, { routeConfigName: rcName })] }] });
    } else {
      listeners.push({ name, address, trafficDirection: 'OUTBOUND', filterChains: [{ name, filters: [tcpProxy(name, tcpBackends(state, svc, sp.port, warnings))] }] });
    }
  }

  // Inbound: one listener per port of this sidecar's own workload.
  const me = nodeWorkload(state, node);
  for (const p of me?.ports ?? []) {
    if (p.proxyPort === undefined) continue;
    const proto = p.protocol ?? 'http';
    const cluster = inboundClusterName(p.port);
    clusters.push(inboundAppCluster(p.port, proto));
    const name = `inbound|${p.port}`;
    const address = socketAddress(node.inboundAddress ?? '0.0.0.0', p.proxyPort);
    const filter = isHttpLike(proto)
      ? hcm(name, { routeConfig: { name, virtualHosts: [{ name, domains: ['*'], routes: [{ name: 'inbound', match: { prefix: '/' }, route: { cluster, timeout: '0s' } }] }] } })
      : tcpProxy(name, [{ name: cluster, weight: 1 }]);
    listeners.push({ name, address, trafficDirection: 'INBOUND', filterChains: [{ name, filters: [filter] }] });
  }
  return { listeners, routes, clusters, endpoints: [] };
}

function proxylessResources(state: MeshState, warnings: RouteWarning[]): Resources {
  const listeners: object[] = [];
  const routes: object[] = [];
  for (const svc of sortedServices(state)) {
    const ns = nsOf(svc.metadata);
    for (const sp of svc.spec.ports) {
      if (!isHttpLike(portProtocol(sp))) continue;
      const target = `${svc.metadata.name}.${ns}.svc:${sp.port}`;
      routes.push({
        name: target,
        virtualHosts: [{ name: target, domains: ['*'], routes: routesFor(state, svc, sp.port, warnings) ?? defaultRoutes(svc, sp.port) }],
      });
      listeners.push({
        name: target,
        apiListener: { apiListener: (hcm(target, { routeConfigName: target }) as { typedConfig: object }).typedConfig },
      });
    }
  }
  const clusters = allServiceClusters(state, true);
  return { listeners, routes, clusters, endpoints: edsFor(state, clusters, warnings) };
}

export function translateParts(state: MeshState, node: ProxyNode): TranslationParts {
  const warnings: RouteWarning[] = [];
  if (node.kind === 'proxyless') {
    // Routes, clusters and traffic policies as for a proxy, then rewritten
    // into what this gRPC client kind reads (translate/proxyless.ts).
    const client = node.client ?? 'grpc';
    const sharedKey = `proxyless|${client}`;
    const shared = memo(state, sharedKey, warnings, (w) => {
      const none = { listeners: [], routes: [], clusters: [], endpoints: [] };
      const base = memo(state, 'proxyless', w, (bw) => proxylessResources(state, bw));
      const withPolicies = applyPolicies({ sharedKey: 'proxyless', shared: base, own: none, warnings: [] }, state, node);
      w.push(...withPolicies.warnings);
      const adapted = forGrpcClient(state, withPolicies.shared, client);
      w.push(...adapted.warnings);
      return adapted.resources;
    });
    return { sharedKey, shared, own: { listeners: [], routes: [], clusters: [], endpoints: [] }, warnings };
  }
  // Declared dependencies (a Sidecar resource) scope the shared part; without
  // one, an on-demand node gets per-host route configurations; else everything.
  const declared = node.kind === 'sidecar' ? sidecarFor(state, node) : undefined;
  const onDemand = declared === undefined && node.onDemand === true && node.kind === 'sidecar';
  const scope = declared ? { key: `${nsOf(declared.metadata)}/${declared.metadata.name}`, inScope: egressFilter(declared) } : undefined;
  const shared = onDemand ? sidecarOnDemandShared(state, node.namespace, warnings) : sidecarShared(state, node.namespace, warnings, scope);
  const sharedKey = onDemand ? `sidecar-od|${node.namespace}` : scope ? `sidecar-scoped|${node.namespace}|${scope.key}` : `sidecar|${node.namespace}`;
  // Gateways (translate/gateway.ts) share the namespace's clusters and EDS; listeners and routes (and an egress gateway's external clusters) are their own.
  const own = node.kind === 'gateway' ? { ...gatewayOwn(state, node, warnings), endpoints: [] }
    : node.capture === 'transparent' ? transparentOwn(state, node, warnings, OUTBOUND_ROUTE_NAME) : sidecarOwn(state, node, warnings);
  // Traffic policies (translate/policies.ts) before mTLS and authorization wrap the result; tracing, then path normalization (translate/telemetry.ts, path-normalization.ts), then plugins (translate/plugins.ts: placed by phase among the authorization filters).
  const parts = applyPolicies({ sharedKey, shared, own, warnings }, state, node);
  const secured = applySecurity(state.meshTls ? applyMeshTls(parts, state, node) : parts, state, node, state.security);
  return applyPlugins(applyPathNormalization(applyTelemetry(secured, state, node), state, node), state, node);
}

export function translate(state: MeshState, node: ProxyNode): TranslatedResources {
  const { shared, own, warnings } = translateParts(state, node);
  return {
    listeners: [...shared.listeners, ...own.listeners],
    routes: [...shared.routes, ...own.routes],
    clusters: [...shared.clusters, ...own.clusters],
    endpoints: [...shared.endpoints, ...own.endpoints],
    ...(shared.secrets ? { secrets: shared.secrets } : {}),
    warnings,
  };
}
