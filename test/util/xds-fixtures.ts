// Envoy v3 resources in proto3-JSON for xDS tests: an API listener (what
// proxyless gRPC resolves `xds:///<name>` to) or a port listener with an HTTP
// connection manager using RDS, a route with weighted clusters, EDS clusters
// and their ClusterLoadAssignments.
import type { SnapshotInput } from '../../src/xds/snapshot.ts';

export const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

export interface Backend {
  readonly cluster: string;
  readonly weight: number;
  readonly ports: readonly number[];
}

function hcm(routeName: string): Record<string, unknown> {
  return {
    '@type': HCM_TYPE,
    statPrefix: routeName,
    rds: { routeConfigName: routeName, configSource: { ads: {}, resourceApiVersion: 'V3' } },
    httpFilters: [{ name: 'envoy.filters.http.router', typedConfig: { '@type': ROUTER_TYPE } }],
  };
}

export function apiListener(name: string, routeName = `${name}-route`): Record<string, unknown> {
  return { name, apiListener: { apiListener: hcm(routeName) } };
}

export function portListener(name: string, port: number, routeName = `${name}-route`): Record<string, unknown> {
  return {
    name,
    address: { socketAddress: { address: '127.0.0.1', portValue: port } },
    filterChains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typedConfig: hcm(routeName) }] }],
  };
}

export function weightedRoute(name: string, domains: readonly string[], backends: readonly Backend[]): Record<string, unknown> {
  return {
    name,
    virtualHosts: [
      {
        name: `${name}-vh`,
        domains: [...domains],
        routes: [
          {
            match: { prefix: '/' },
            route:
              backends.length === 1
                ? { cluster: backends[0]!.cluster }
                : { weightedClusters: { clusters: backends.map((b) => ({ name: b.cluster, weight: b.weight })) } },
          },
        ],
      },
    ],
  };
}

export function edsCluster(name: string): Record<string, unknown> {
  return {
    name,
    type: 'EDS',
    edsClusterConfig: { edsConfig: { ads: {}, resourceApiVersion: 'V3' } },
    connectTimeout: '1s',
    lbPolicy: 'ROUND_ROBIN',
  };
}

export function loadAssignment(cluster: string, ports: readonly number[], zone = 'z1'): Record<string, unknown> {
  return {
    clusterName: cluster,
    endpoints: [
      {
        locality: { region: 'r1', zone, subZone: '' },
        loadBalancingWeight: 1,
        lbEndpoints: ports.map((port) => ({
          endpoint: { address: { socketAddress: { address: '127.0.0.1', portValue: port } } },
          healthStatus: 'HEALTHY',
        })),
      },
    ],
  };
}

/** A whole mesh view for one service name: API listener `name`, its route, clusters and endpoints. */
export function serviceSnapshotInput(name: string, backends: readonly Backend[], opts: { listenerPort?: number } = {}): SnapshotInput {
  const route = `${name}-route`;
  return {
    listeners: [opts.listenerPort === undefined ? apiListener(name, route) : portListener(name, opts.listenerPort, route)],
    routes: [weightedRoute(route, ['*'], backends)],
    clusters: backends.map((b) => edsCluster(b.cluster)),
    endpoints: backends.map((b) => loadAssignment(b.cluster, b.ports)),
  };
}
