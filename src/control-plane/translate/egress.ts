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
import type { ExternalServiceResource, MeshState } from './model.ts';
import { keyOf } from './model.ts';
import type { RouteWarning } from './http-routes.ts';

export const EGRESS_DENIED = 'EGRESS_DENIED';
export const UPSTREAM_TLS_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

export function externalClusterName(host: string, port: number): string {
  return `external|${host}|${port}`;
}

function sorted(state: MeshState): ExternalServiceResource[] {
  return [...(state.externalServices ?? [])].sort((a, b) => keyOf(a.metadata).localeCompare(keyOf(b.metadata)));
}

/** One cluster per declared host and port. */
export function egressClusters(state: MeshState): object[] {
  const out: object[] = [];
  const seen = new Set<string>();
  for (const es of sorted(state)) {
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

/** Virtual hosts for declared HTTP destinations, then the deny-all one. */
export function egressVirtualHosts(state: MeshState, warnings: RouteWarning[]): object[] {
  const vhosts: object[] = [];
  const claimed = new Map<string, string>();
  for (const es of sorted(state)) {
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
  vhosts.push({
    name: 'egress-denied',
    domains: ['*'],
    routes: [{
      name: 'egress-denied',
      match: { prefix: '/' },
      directResponse: { status: 403, body: { inlineString: 'egress denied: the destination is neither a mesh Service nor a declared ExternalService\n' } },
      responseHeadersToAdd: [{ header: { key: 'x-trellis-proxy-error', value: EGRESS_DENIED }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
    }],
  });
  return vhosts;
}
