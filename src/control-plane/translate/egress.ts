// Egress translation (docs/gateways.md): what sidecars may call outside the
// mesh. Every ExternalService host/port becomes a virtual host in the
// sidecars' outbound route configuration and a cluster of its own
// (`external|<host>|<port>`: STATIC when the resource lists endpoints, else
// STRICT_DNS on the host), with TLS origination when `tls.mode: ORIGINATE`
// (UpstreamTlsContext with the SNI and the CA file; the proxy side is
// src/proxy/egress-tls.ts).
//
// Egress policy: registry only. A last, catch-all virtual host answers any
// other host with 403 and `x-trellis-proxy-error: EGRESS_DENIED`, so an app
// (or a compromised dependency) cannot reach undeclared destinations through
// its sidecar, and the refusal says why.
//
// Egress gateway: an ExternalService with `egressGateway: {name, namespace?}`
// is not originated by sidecars. Their virtual host for it routes to
// `egress-gateway|<ns>|<name>` (a STATIC cluster of the workloads labelled
// `trellis.dev/gateway: NAME`, registered by `trellis gateway`, dialled on
// their proxyPort with mesh mTLS, SANs = their SPIFFE IDs), keeping the
// Host; only the gateway holds the `external|` cluster with TLS origination.
// The gateway (a Gateway of class `trellis-egress`) gets, per listener, one
// mTLS-only chain routing by Host to its declared destinations, then the
// deny-all. A missing gateway denies the host (fail closed), with a warning.
import type { ExternalServiceResource, GatewayResource, MeshState, ProxyNode } from './model.ts';
import { keyOf, nsOf } from './model.ts';
import type { RouteWarning } from './http-routes.ts';
import { downstreamTlsSocket, spiffeIdOf, upstreamTlsSocket } from './mtls.ts';
import { hcm } from './filters.ts';

export const EGRESS_GATEWAY_CLASS = 'trellis-egress';
/** The registry label `trellis gateway` puts on its workload: the Gateway's name. */
export const GATEWAY_LABEL = 'trellis.dev/gateway';

export function egressGatewayClusterName(namespace: string, name: string): string {
  return `egress-gateway|${namespace}|${name}`;
}

/** The Gateway key ("ns/name") an ExternalService goes through, if any. */
function gatewayKeyOf(es: ExternalServiceResource): string | undefined {
  const g = es.spec.egressGateway;
  return g ? `${g.namespace ?? nsOf(es.metadata)}/${g.name}` : undefined;
}

/** The egress Gateway an ExternalService names, or why not. */
export function resolveEgressGateway(state: MeshState, es: ExternalServiceResource): { ok: true; gateway: GatewayResource } | { ok: false; message: string } {
  const key = gatewayKeyOf(es);
  const gw = (state.gateways ?? []).find((g) => keyOf(g.metadata) === key);
  if (!gw) return { ok: false, message: `egressGateway ${key}: no such Gateway; traffic to its hosts is denied` };
  if (gw.spec.gatewayClassName !== EGRESS_GATEWAY_CLASS) {
    return { ok: false, message: `egressGateway ${key}: gatewayClassName is ${JSON.stringify(gw.spec.gatewayClassName)}, not ${EGRESS_GATEWAY_CLASS}; traffic to its hosts is denied` };
  }
  return { ok: true, gateway: gw };
}

/** Which ExternalServices a translation covers: those sidecars originate
 * themselves (`direct`), or those a given egress Gateway ("ns/name") serves. */
export type EgressScope = { via: 'direct' } | { via: 'gateway'; gateway: string };
const DIRECT: EgressScope = { via: 'direct' };

function inScope(es: ExternalServiceResource, scope: EgressScope): boolean {
  const key = gatewayKeyOf(es);
  return scope.via === 'direct' ? key === undefined : key === scope.gateway;
}

export const EGRESS_DENIED = 'EGRESS_DENIED';
export const UPSTREAM_TLS_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

export function externalClusterName(host: string, port: number): string {
  return `external|${host}|${port}`;
}

function sorted(state: MeshState): ExternalServiceResource[] {
  return [...(state.externalServices ?? [])].sort((a, b) => keyOf(a.metadata).localeCompare(keyOf(b.metadata)));
}

/** One cluster per declared host and port (of the ExternalServices in `scope`). */
export function egressClusters(state: MeshState, scope: EgressScope = DIRECT): object[] {
  const out: object[] = [];
  const seen = new Set<string>();
  for (const es of sorted(state)) {
    if (!inScope(es, scope)) continue;
    for (const host of es.spec.hosts) {
      for (const p of es.spec.ports) {
        const name = externalClusterName(host, p.port);
        if (seen.has(name)) continue;
        seen.add(name);
        const target = p.targetPort ?? p.port;
        const endpoints = es.spec.endpoints ?? [{ address: host }];
        const tls = es.spec.tls && (p.protocol ?? 'http') === 'http' ? es.spec.tls : undefined;
        out.push({
          name,
          type: es.spec.endpoints ? 'STATIC' : 'STRICT_DNS',
          connectTimeout: '5s',
          lbPolicy: 'ROUND_ROBIN',
          loadAssignment: {
            clusterName: name,
            endpoints: [{ lbEndpoints: endpoints.map((e) => ({ endpoint: { address: { socketAddress: { address: e.address, portValue: e.port ?? target } } } })) }],
          },
          ...(tls ? {
            transportSocket: {
              name: 'envoy.transport_sockets.tls',
              typedConfig: {
                '@type': UPSTREAM_TLS_TYPE,
                sni: tls.sni ?? host,
                commonTlsContext: {
                  alpnProtocols: ['http/1.1'],
                  ...(tls.caFile ? { validationContext: { trustedCa: { filename: tls.caFile } } } : {}),
                },
              },
            },
          } : {}),
        });
      }
    }
  }
  return out;
}

const DENIED_REASON = 'the destination is neither a mesh Service nor a declared ExternalService; declare it with an ExternalService (docs/gateways.md)';
const DENIED_BODY = `egress denied: %REQ(:authority)%: ${DENIED_REASON}\n`;

function deniedRoute(name: string, body = DENIED_BODY, reason = DENIED_REASON): object {
  return {
    name,
    match: { prefix: '/' },
    directResponse: { status: 403, body: { inlineString: body } },
    responseHeadersToAdd: [
      { header: { key: 'x-trellis-proxy-error', value: EGRESS_DENIED }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { header: { key: 'x-trellis-proxy-error-reason', value: reason }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
    ],
  };
}

export const NO_SUCH_PORT = 'NO_SUCH_PORT';

/** A known Service on a port it does not have (`reviews:9999`): one virtual
 * host per service, as seen from `callerNs`, whose domains are its names on
 * any port (`reviews:*`; the exact service:port hosts match first) and its
 * bare names when it has no port 80. They answer 404 naming the service and
 * its ports, instead of the deny-all's "egress denied". Put them after the
 * service virtual hosts and before the egress ones. */
export function unknownPortVirtualHosts(state: MeshState, callerNs: string): object[] {
  const out: object[] = [];
  for (const svc of [...state.services].sort((a, b) => keyOf(a.metadata).localeCompare(keyOf(b.metadata)))) {
    const ns = nsOf(svc.metadata);
    const n = svc.metadata.name;
    const hosts = [`${n}.${ns}.svc.cluster.local`, `${n}.${ns}.svc`, `${n}.${ns}`, ...(ns === callerNs ? [n] : [])];
    const vip = state.vips.get(keyOf(svc.metadata));
    if (vip) hosts.push(vip);
    const ports = svc.spec.ports.map((p) => `${p.port}${p.name ? ` (${p.name})` : ''}`).join(', ');
    const reason = `service ${n} in namespace ${ns} has no such port; its ports are ${ports}`;
    const answer = (name: string): object => ({
      name,
      match: { prefix: '/' },
      directResponse: { status: 404, body: { inlineString: `%REQ(:authority)%: ${reason}\n` } },
      responseHeadersToAdd: [
        { header: { key: 'x-trellis-proxy-error', value: NO_SUCH_PORT }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
        { header: { key: 'x-trellis-proxy-error-reason', value: reason }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      ],
    });
    out.push({
      name: `no-such-port|${ns}/${n}`,
      domains: [...hosts.map((h) => `${h}:*`), ...(svc.spec.ports.some((p) => p.port === 80) ? [] : hosts)],
      routes: [answer(`no-such-port/${ns}/${n}`), { ...answer(`no-such-port-connect/${ns}/${n}`), match: { connectMatcher: {} } }],
    });
  }
  return out;
}

/** Virtual hosts for declared HTTP destinations, then the deny-all one.
 * Sidecars (`direct`, the default) route gatewayed destinations to their
 * egress gateway (or deny them when it is unknown); an egress gateway
 * routes only the destinations that name it. */
export function egressVirtualHosts(state: MeshState, warnings: RouteWarning[], scope: EgressScope = DIRECT): object[] {
  const vhosts: object[] = [];
  const claimed = new Map<string, string>();
  for (const es of sorted(state)) {
    const viaGateway = scope.via === 'direct' && gatewayKeyOf(es) !== undefined;
    if (!viaGateway && !inScope(es, scope)) continue;
    const gw = viaGateway ? resolveEgressGateway(state, es) : undefined;
    if (gw && !gw.ok) warnings.push({ route: `ExternalService ${keyOf(es.metadata)}`, message: gw.message });
    for (const host of es.spec.hosts) {
      for (const p of es.spec.ports) {
        if ((p.protocol ?? 'http') !== 'http') continue;
        const domains = p.port === 80 ? [host, `${host}:80`] : [`${host}:${p.port}`];
        const taken = domains.filter((d) => claimed.has(d));
        if (taken.length > 0) {
          warnings.push({ route: `ExternalService ${keyOf(es.metadata)}`, message: `${taken.join(', ')} already declared by ExternalService ${claimed.get(taken[0]!)}` });
          continue;
        }
        for (const d of domains) claimed.set(d, keyOf(es.metadata));
        const cluster = externalClusterName(host, p.port);
        if (gw) {
          // Sidecar side of a gatewayed destination: to the gateway, Host kept.
          vhosts.push({
            name: cluster,
            domains,
            routes: [gw.ok
              ? { name: `egress/${keyOf(es.metadata)}`, match: { prefix: '/' }, route: { cluster: egressGatewayClusterName(nsOf(gw.gateway.metadata), gw.gateway.metadata.name), timeout: '0s' } }
              : deniedRoute(`egress/${keyOf(es.metadata)}`, `egress denied: ${gw.message}\n`, gw.message)],
          });
          continue;
        }
        vhosts.push({
          name: cluster,
          domains,
          routes: [{
            name: `egress/${keyOf(es.metadata)}`,
            match: { prefix: '/' },
            // The destination sees its own name (the app may have used a short form).
            route: { cluster, timeout: '0s', ...(es.spec.tls ? { hostRewriteLiteral: es.spec.tls.sni ?? host } : {}) },
          }],
        });
      }
    }
  }
  // CONNECT to an undeclared host:port (HTTPS_PROXY-style clients) is refused the same way.
  vhosts.push({ name: 'egress-denied', domains: ['*'], routes: [deniedRoute('egress-denied'), { ...deniedRoute('egress-denied-connect'), match: { connectMatcher: {} } }] });
  return vhosts;
}

/** Sidecars' clusters for the egress gateways that ExternalServices name:
 * STATIC, the registered gateway workloads (label `trellis.dev/gateway`) at
 * the proxyPort of the Gateway's first listener port, mesh mTLS to their
 * SPIFFE IDs when the mesh has mTLS. */
export function egressGatewayClusters(state: MeshState): object[] {
  const out: object[] = [];
  const seen = new Set<string>();
  for (const es of sorted(state)) {
    if (!es.spec.egressGateway) continue;
    const r = resolveEgressGateway(state, es);
    if (!r.ok) continue;
    const ns = nsOf(r.gateway.metadata);
    const name = egressGatewayClusterName(ns, r.gateway.metadata.name);
    if (seen.has(name)) continue;
    seen.add(name);
    const port = r.gateway.spec.listeners[0]?.port;
    const members = state.workloads
      .filter((w) => w.namespace === ns && w.labels?.[GATEWAY_LABEL] === r.gateway.metadata.name && w.healthy !== false)
      .map((w) => ({ w, p: w.ports.find((p) => p.port === port && p.proxyPort !== undefined) }))
      .filter((x) => x.p !== undefined)
      .sort((a, b) => `${a.w.address}:${a.p!.proxyPort}`.localeCompare(`${b.w.address}:${b.p!.proxyPort}`));
    const sans = [...new Set(members.map((x) => spiffeIdOf(state.meshTls?.trustDomain ?? '', x.w)))].sort();
    out.push({
      name,
      type: 'STATIC',
      connectTimeout: '5s',
      lbPolicy: 'ROUND_ROBIN',
      loadAssignment: {
        clusterName: name,
        endpoints: [{ lbEndpoints: members.map((x) => ({ endpoint: { address: { socketAddress: { address: x.w.address, portValue: x.p!.proxyPort } } } })) }],
      },
      ...(state.meshTls ? { transportSocket: upstreamTlsSocket(sans, ['http/1.1']) } : {}),
    });
  }
  return out;
}

/** An egress gateway node's own resources: per Gateway listener port, a
 * listener `gateway|<port>` whose one chain accepts mesh mTLS only and
 * routes by Host (RDS `egress-gateway|<port>`) to the destinations naming
 * this Gateway; their `external|` clusters with TLS origination. */
export function egressGatewayOwn(state: MeshState, gw: GatewayResource, node: ProxyNode, warnings: RouteWarning[]): { listeners: object[]; routes: object[]; clusters: object[] } {
  const key = keyOf(gw.metadata);
  if (!state.meshTls) {
    warnings.push({ route: `Gateway ${key}`, message: 'an egress gateway accepts mesh mTLS only, and the mesh has no mTLS: no listeners' });
    return { listeners: [], routes: [], clusters: [] };
  }
  const scope: EgressScope = { via: 'gateway', gateway: key };
  const listeners: object[] = [];
  const routes: object[] = [];
  for (const port of [...new Set(gw.spec.listeners.map((l) => l.port))].sort((a, b) => a - b)) {
    const name = `gateway|${port}`;
    const rc = `egress-gateway|${port}`;
    routes.push({ name: rc, virtualHosts: egressVirtualHosts(state, port === gw.spec.listeners[0]?.port ? warnings : [], scope) });
    listeners.push({
      name,
      address: { socketAddress: { address: node.listenAddress ?? '0.0.0.0', portValue: node.portMap?.[String(port)] ?? port } },
      trafficDirection: 'INBOUND',
      metadata: { filterMetadata: { trellis: { direction: 'gateway' } } },
      // No plaintext chain: a caller without a mesh identity finds no chain.
      filterChains: [{
        name: `${name}-mtls`,
        filterChainMatch: { transportProtocol: 'tls' },
        filters: [hcm(name, { routeConfigName: rc })],
        transportSocket: downstreamTlsSocket(),
      }],
    });
  }
  return { listeners, routes, clusters: egressClusters(state, scope) };
}
