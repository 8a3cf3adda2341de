// The proxy's normalized configuration: what the bootstrap file and xDS both
// become after validation (config/envoy.ts reads Envoy v3 resources in their
// proto3-JSON shape: Listener, RouteConfiguration, Cluster,
// ClusterLoadAssignment). Immutable once built: a new config replaces the old
// one whole (proxy.ts), nothing is patched in place.
//
// Durations are milliseconds; absent optional fields mean "not configured".

import type { RbacSpec } from './envoy-rbac.ts';
import type { JwtAuthnSpec } from './envoy-jwt.ts';
import type { PathNormalization } from '../http/path-normalize.ts';
import type { PluginSpec } from './envoy-wasm.ts';

export interface ProxyConfig {
  /** Opaque version (xDS version_info, or a hash of the bootstrap file). */
  readonly version: string;
  readonly listeners: readonly ListenerSpec[];
  readonly routeConfigs: ReadonlyMap<string, RouteConfigSpec>;
  readonly clusters: ReadonlyMap<string, ClusterSpec>;
  /** ClusterLoadAssignment by cluster name. */
  readonly endpoints: ReadonlyMap<string, readonly LocalityEndpoints[]>;
}

export type Direction = 'inbound' | 'outbound' | 'gateway';
export type ProtocolHint = 'auto' | 'http1' | 'http2' | 'opaque';

export interface ListenerSpec {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly direction: Direction;
  /** Transparent capture: read SO_ORIGINAL_DST and match chains on it. */
  readonly useOriginalDst: boolean;
  /** First match wins, most specific first (as Envoy orders them). */
  readonly filterChains: readonly FilterChainSpec[];
}

export interface FilterChainMatch {
  /** Destination port (the original destination under transparent capture). */
  readonly destinationPort?: number;
  readonly prefixRanges?: readonly { address: string; prefixLen: number }[];
  readonly transportProtocol?: 'tls' | 'raw_buffer';
  readonly serverNames?: readonly string[];
  readonly applicationProtocols?: readonly string[];
}

export interface FilterChainSpec {
  readonly name: string;
  readonly match: FilterChainMatch;
  /** Protocol detection override for this chain: "opaque" never waits for
   * client bytes (server-first protocols such as MySQL and SMTP). */
  readonly protocol: ProtocolHint;
  /** Exactly one of http / tcp. */
  readonly http?: HttpConnectionManagerSpec;
  readonly tcp?: TcpProxySpec;
  /** Network RBAC filters written before the terminal filter, in order:
   * decided once per connection, after TLS termination (stack.ts). */
  readonly networkRbac?: readonly { readonly name: string; readonly rbac: RbacSpec }[];
  /** Kept verbatim (validated as objects) for the mTLS work: `transportSocket`. */
  readonly extensions?: Readonly<Record<string, unknown>>;
}

export interface HttpConnectionManagerSpec {
  readonly statPrefix: string;
  /** RDS name, resolved against ProxyConfig.routeConfigs at request time. */
  readonly routeConfigName: string;
  /** Append to X-Forwarded-For / set X-Forwarded-Proto / Via, as Envoy does. */
  readonly via?: string;
  readonly requestTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  /** commonHttpProtocolOptions.maxHeadersCount: header fields per request
   * head (HTTP/1) or header list (HTTP/2); absent: 100, as Envoy. */
  readonly maxHeadersCount?: number;
  /** HTTP filters the proxy honours before the router, in order
   * (envoy-rbac.ts, envoy-jwt.ts); other filters are ignored with a warning. */
  readonly httpFilters?: readonly HttpFilterSpec[];
  /** Spans for this listener's requests (envoy-tracing.ts); the proxy's own
   * tracing settings, if any, when absent. */
  readonly tracing?: TracingSpec;
  /** Log every request of this listener to the access log sink
   * (envoy-access-log.ts), whatever the runtime switch says. */
  readonly accessLog?: boolean;
  /** normalizePath / mergeSlashes / pathWithEscapedSlashesAction; absent:
   * DEFAULT_PATH_NORMALIZATION (http/path-normalize.ts). */
  readonly pathNormalization?: PathNormalization;
}

export interface TracingSpec {
  /** OTLP/HTTP traces endpoint. */
  readonly collectorUrl: string;
  /** Probability of sampling a new trace, 0..1. */
  readonly samplingRate: number;
  /** Resource service.name; the proxy's workload when absent. */
  readonly serviceName?: string;
}

export type HttpFilterSpec =
  | { readonly name: string; readonly kind: 'rbac'; readonly rbac: RbacSpec }
  | { readonly name: string; readonly kind: 'jwt_authn'; readonly jwt: JwtAuthnSpec }
  | { readonly name: string; readonly kind: 'plugin'; readonly plugin: PluginSpec };

export interface TcpProxySpec {
  readonly statPrefix: string;
  readonly clusters: readonly WeightedCluster[];
  readonly idleTimeoutMs?: number;
}

export interface RouteConfigSpec {
  readonly name: string;
  readonly virtualHosts: readonly VirtualHostSpec[];
  /** RouteConfiguration-level mutations, applied after the virtual host's. */
  readonly requestHeaders?: HeaderMutation;
  readonly responseHeaders?: HeaderMutation;
}

export interface VirtualHostSpec {
  readonly name: string;
  /** "*" , exact "host", "host:port", "*.suffix" or "prefix.*" as Envoy. */
  readonly domains: readonly string[];
  readonly routes: readonly RouteSpec[];
  /** Virtual-host-level mutations, applied after the route's. */
  readonly requestHeaders?: HeaderMutation;
  readonly responseHeaders?: HeaderMutation;
}

export type StringMatch =
  | { readonly kind: 'exact'; readonly value: string; readonly ignoreCase?: boolean }
  | {
      readonly kind: 'prefix';
      readonly value: string;
      readonly ignoreCase?: boolean;
      /** Paths only (Envoy's pathSeparatedPrefix): the prefix must be followed
       * by "/" or the end of the path. */
      readonly separated?: boolean;
    }
  | { readonly kind: 'suffix'; readonly value: string; readonly ignoreCase?: boolean }
  | { readonly kind: 'contains'; readonly value: string; readonly ignoreCase?: boolean }
  | { readonly kind: 'regex'; readonly value: string; readonly regex: RegExp }
  | { readonly kind: 'present'; readonly present: boolean };

export interface HeaderMatchSpec {
  readonly name: string;
  readonly match: StringMatch;
  readonly invert?: boolean;
}

export interface RouteMatchSpec {
  /** Path match applied to the path without the query string. */
  readonly path?: StringMatch;
  readonly headers: readonly HeaderMatchSpec[];
  readonly queryParams: readonly { readonly name: string; readonly match: StringMatch }[];
  /** ':method' is matched as a header in Envoy; kept explicit here. */
  readonly method?: string;
  readonly grpc?: boolean;
  /** Envoy `connectMatcher`: matches CONNECT requests, and only those (no
   * other route matches a CONNECT). */
  readonly connect?: boolean;
}

export interface WeightedCluster {
  readonly name: string;
  readonly weight: number;
}

export interface HashPolicySpec {
  readonly kind: 'header' | 'cookie' | 'source_ip' | 'query_parameter';
  readonly name?: string;
  readonly terminal?: boolean;
}

export type RouteActionSpec =
  | {
      readonly kind: 'route';
      readonly clusters: readonly WeightedCluster[];
      readonly timeoutMs?: number;
      readonly hashPolicy: readonly HashPolicySpec[];
      readonly prefixRewrite?: string;
      readonly regexRewrite?: { readonly regex: RegExp; readonly substitution: string };
      readonly hostRewrite?: string;
      /** Resilience and mirroring knobs are added by the policy work (issue 4). */
      readonly extensions?: Readonly<Record<string, unknown>>;
    }
  | { readonly kind: 'redirect'; readonly status: number; readonly scheme?: string; readonly host?: string; readonly path?: string; readonly prefixRewrite?: string; readonly port?: number; readonly stripQuery?: boolean }
  | { readonly kind: 'direct_response'; readonly status: number; readonly body?: string };

/** Envoy's HeaderValueOption.HeaderAppendAction, lower-cased. */
export type HeaderAppendAction = 'append_if_exists_or_add' | 'add_if_absent' | 'overwrite_if_exists_or_add' | 'overwrite_if_exists';

export interface HeaderMutation {
  /** `append` is true for append_if_exists_or_add; `action` (when present)
   * is authoritative and also covers add_if_absent / overwrite_if_exists. */
  readonly add: readonly { readonly name: string; readonly value: string; readonly append: boolean; readonly action?: HeaderAppendAction }[];
  readonly remove: readonly string[];
}

export interface RouteSpec {
  readonly name: string;
  readonly match: RouteMatchSpec;
  readonly action: RouteActionSpec;
  readonly requestHeaders: HeaderMutation;
  readonly responseHeaders: HeaderMutation;
}

export type LbPolicy =
  | 'peak_ewma'
  | 'round_robin'
  | 'weighted_round_robin'
  | 'random'
  | 'least_request'
  | 'ring_hash';

export type UpstreamProtocol = 'http1' | 'http2' | 'downstream';

export interface CircuitBreakerSpec {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
}

export interface ClusterSpec {
  readonly name: string;
  readonly lbPolicy: LbPolicy;
  /** "downstream": use the protocol the request arrived with. */
  readonly protocol: UpstreamProtocol;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxRequestsPerConnection: number;
  readonly circuitBreakers: CircuitBreakerSpec;
  /** Ring hash size bounds. */
  readonly ringHash?: { readonly minRingSize: number; readonly maxRingSize: number };
  /** Locality-aware routing: prefer the proxy's own zone, fail over by priority. */
  readonly localityAware: boolean;
  /** How endpoints arrive: inline (static) or by EDS under `edsServiceName`
   * (defaults to the cluster name). */
  readonly discovery?: 'static' | 'eds';
  readonly edsServiceName?: string;
  /** Outlier detection, health checks, TLS origination: policy work (issues 4, 5). */
  readonly extensions?: Readonly<Record<string, unknown>>;
}

export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subZone: string;
}

export type HealthStatus = 'healthy' | 'unhealthy' | 'draining' | 'unknown';

export interface EndpointSpec {
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly health: HealthStatus;
  /** Free-form labels (e.g. version) from the registry, for logs/metrics. */
  readonly labels?: Readonly<Record<string, string>>;
}

export interface LocalityEndpoints {
  readonly locality: Locality;
  /** 0 is the highest priority; higher numbers are failover tiers. */
  readonly priority: number;
  readonly weight: number;
  readonly endpoints: readonly EndpointSpec[];
}

/** Who this proxy is (from the bootstrap `node` or the xDS Node). */
export interface NodeInfo {
  readonly id: string;
  readonly cluster: string;
  readonly locality: Locality;
  readonly metadata: Readonly<Record<string, unknown>>;
}
