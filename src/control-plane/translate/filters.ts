// The network filters every translator builds listeners from: the HTTP
// connection manager (routes by RDS name or inline) with the router, and
// tcp_proxy (one cluster or weighted).
export const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
export const TCP_PROXY_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

export const HCM_NAME = 'envoy.filters.network.http_connection_manager';

/** A filter chain whose first filter is an HTTP connection manager, with
 * `update` applied to its typed config; any other chain unchanged. */
export function withHcmConfig<C extends { filters: { name: string; typedConfig?: object }[] }>(chain: C, update: (config: Record<string, unknown>) => object): C {
  const f = chain.filters[0];
  if (!f || f.name !== HCM_NAME || !f.typedConfig) return chain;
  return { ...chain, filters: [{ ...f, typedConfig: update(f.typedConfig as Record<string, unknown>) }, ...chain.filters.slice(1)] };
}

export function hcm(statPrefix: string, rds: { routeConfigName: string } | { routeConfig: object }): object {
  return {
    name: HCM_NAME,
    typedConfig: {
      '@type': HCM_TYPE,
      statPrefix,
      codecType: 'AUTO',
      ...('routeConfigName' in rds ? { rds: { configSource: { ads: {} }, routeConfigName: rds.routeConfigName } } : { routeConfig: rds.routeConfig }),
      httpFilters: [{ name: 'envoy.filters.http.router', typedConfig: { '@type': ROUTER_TYPE } }],
    },
  };
}

export function tcpProxy(statPrefix: string, clusters: { name: string; weight: number }[]): object {
  return {
    name: 'envoy.filters.network.tcp_proxy',
    typedConfig: {
      '@type': TCP_PROXY_TYPE,
      statPrefix,
      ...(clusters.length === 1 ? { cluster: clusters[0]!.name } : { weightedClusters: { clusters } }),
    },
  };
}
