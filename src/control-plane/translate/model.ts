// What translation reads: the declarative config (Gateway API routes, Trellis
// Services and policies) and the registry (workloads and service VIPs), as
// one immutable value. Field names follow the Gateway API and the Trellis
// kinds exactly, so the validated resources from src/api are assignable here.

import type { MeshTlsInput } from './mtls.ts';
import type { SecurityPolicies } from './authz.ts';
import type { PolicyResource } from './policies.ts';
import type { TelemetrySpec } from '../../api/telemetry.ts';
import type { PathNormalizationSpec } from '../../api/path-normalization.ts';
import type { PluginSpec } from '../../api/plugin.ts';
import type { SidecarSpec } from '../../api/sidecar.ts';

export interface Meta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  creationTimestamp?: string;
}

export type PortProtocol = 'http' | 'http2' | 'grpc' | 'tcp';

export interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: PortProtocol;
}

export interface ServiceResource {
  metadata: Meta;
  spec: { selector?: Record<string, string>; ports: ServicePort[] };
}

export interface ParentRef {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  port?: number;
  sectionName?: string;
}

export interface BackendRef {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  port?: number;
  weight?: number;
}

export interface HeaderModifier {
  set?: { name: string; value: string }[];
  add?: { name: string; value: string }[];
  remove?: string[];
}

export interface PathModifier {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}

export interface HTTPRouteFilter {
  type: 'RequestHeaderModifier' | 'ResponseHeaderModifier' | 'RequestMirror' | 'RequestRedirect' | 'URLRewrite' | 'ExtensionRef';
  requestHeaderModifier?: HeaderModifier;
  responseHeaderModifier?: HeaderModifier;
  requestMirror?: { backendRef: BackendRef; percent?: number; fraction?: { numerator: number; denominator?: number } };
  requestRedirect?: { scheme?: string; hostname?: string; path?: PathModifier; port?: number; statusCode?: number };
  urlRewrite?: { hostname?: string; path?: PathModifier };
}

export interface StringMatchSpec {
  type?: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}

export interface HTTPRouteMatch {
  path?: { type?: 'Exact' | 'PathPrefix' | 'RegularExpression'; value?: string };
  headers?: StringMatchSpec[];
  queryParams?: StringMatchSpec[];
  method?: string;
}

export interface HTTPRouteRule {
  name?: string;
  matches?: HTTPRouteMatch[];
  filters?: HTTPRouteFilter[];
  backendRefs?: (BackendRef & { filters?: HTTPRouteFilter[] })[];
  timeouts?: { request?: string; backendRequest?: string };
}

export interface HTTPRouteResource {
  metadata: Meta;
  spec: { parentRefs?: ParentRef[]; hostnames?: string[]; rules?: HTTPRouteRule[] };
}

export interface GRPCRouteMatch {
  method?: { type?: 'Exact' | 'RegularExpression'; service?: string; method?: string };
  headers?: StringMatchSpec[];
}

export interface GRPCRouteRule {
  name?: string;
  matches?: GRPCRouteMatch[];
  filters?: HTTPRouteFilter[];
  backendRefs?: BackendRef[];
}

export interface GRPCRouteResource {
  metadata: Meta;
  spec: { parentRefs?: ParentRef[]; hostnames?: string[]; rules?: GRPCRouteRule[] };
}

export interface TCPRouteResource {
  metadata: Meta;
  spec: { parentRefs?: ParentRef[]; rules?: { backendRefs?: BackendRef[] }[] };
}

/** A registered workload instance (from the registry). */
export interface WorkloadInstance {
  name: string;
  namespace: string;
  serviceAccount?: string;
  address: string;
  /** `proxyPort`: where this workload's sidecar accepts inbound traffic for
   * `port` (explicit mode); absent for unmeshed workloads and for
   * transparent capture, where peers dial the app port itself. */
  ports: { port: number; protocol?: PortProtocol; name?: string; proxyPort?: number }[];
  labels?: Record<string, string>;
  locality?: { region?: string; zone?: string; subZone?: string };
  /** Health from the registry (heartbeat / health checks); default healthy. */
  healthy?: boolean;
}

/** A Gateway (Gateway API), as gateway translation reads it (translate/gateway.ts). */
export interface GatewayListenerSpec {
  name: string;
  hostname?: string;
  port: number;
  protocol: string;
  tls?: { mode?: 'Terminate' | 'Passthrough'; certificateRefs?: { group?: string; kind?: string; name: string; namespace?: string }[] };
}

export interface GatewayResource {
  metadata: Meta;
  spec: { gatewayClassName: string; listeners: GatewayListenerSpec[] };
}

/** An ExternalService (src/api/external-service.ts), as egress translation reads it. */
export interface ExternalServiceResource {
  metadata: Meta;
  spec: {
    hosts: string[];
    ports: { name?: string; port: number; targetPort?: number; protocol?: 'http' | 'tcp' }[];
    endpoints?: { address: string; port?: number }[];
    tls?: { mode: 'ORIGINATE'; sni?: string; caFile?: string };
    /** Through a dedicated egress gateway (translate/egress.ts). */
    egressGateway?: { name: string; namespace?: string };
  };
}

export interface PluginResource {
  kind: 'Plugin';
  metadata: Meta;
  spec: PluginSpec;
}

export interface SidecarResource {
  kind: 'Sidecar';
  metadata: Meta;
  spec: SidecarSpec;
}

export interface TelemetryResource {
  kind: 'Telemetry';
  metadata: Meta;
  spec: TelemetrySpec;
}

export interface PathNormalizationResource {
  kind: 'PathNormalization';
  metadata: Meta;
  spec: PathNormalizationSpec;
}

export interface MeshState {
  services: readonly ServiceResource[];
  httpRoutes: readonly HTTPRouteResource[];
  grpcRoutes: readonly GRPCRouteResource[];
  tcpRoutes: readonly TCPRouteResource[];
  workloads: readonly WorkloadInstance[];
  /** Service virtual IPs, keyed "namespace/name". */
  vips: ReadonlyMap<string, string>;
  /** Gateways (served by proxies in gateway mode, translate/gateway.ts). */
  gateways?: readonly GatewayResource[];
  /** Declared external destinations (translate/egress.ts). */
  externalServices?: readonly ExternalServiceResource[];
  /** Automatic mTLS (trust domain, bundle, MeshTLS policies); off when absent. */
  meshTls?: MeshTlsInput;
  /** AuthorizationPolicy and RequestAuthentication resources (translate/authz.ts). */
  security?: SecurityPolicies;
  /** Traffic policies (TimeoutPolicy, RetryPolicy, ...: translate/policies.ts). */
  policies?: readonly PolicyResource[];
  /** DNS suffix of service names, `<name>.<ns>.svc.<clusterDomain>` (default DEFAULT_CLUSTER_DOMAIN). */
  clusterDomain?: string;
  /** Telemetry resources: tracing settings per workload (translate/telemetry.ts). */
  telemetry?: readonly TelemetryResource[];
  /** PathNormalization resources (translate/path-normalization.ts); the safe default when none applies. */
  pathNormalization?: readonly PathNormalizationResource[];
  /** Plugin resources: HTTP filters for the selected workloads' proxies (translate/plugins.ts). */
  plugins?: readonly PluginResource[];
  /** Sidecar resources: the services each workload's proxy calls (translate/scope.ts). */
  sidecars?: readonly SidecarResource[];
  /** "namespace/workload" of workloads whose sidecar is connected now (set by the control plane when a global rate limit needs it). */
  connectedSidecars?: ReadonlySet<string>;
}

export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

export type NodeKind = 'sidecar' | 'gateway' | 'proxyless' | 'node-proxy';

/** Which gRPC xDS client a proxyless node is (its user agent); `grpc` when unknown. */
export type GrpcClientKind = 'grpc-go' | 'grpc-core' | 'grpc-js' | 'grpc-java' | 'grpc';

/** Who is asking: read from the xDS Node (id, metadata.trellis). */
export interface ProxyNode {
  id: string;
  kind: NodeKind;
  /** Proxyless nodes: the gRPC implementation, which decides what it is sent (translate/proxyless.ts). */
  client?: GrpcClientKind;
  namespace: string;
  /** The workload this sidecar serves (sidecar kind). */
  workload?: string;
  locality?: { region?: string; zone?: string; subZone?: string };
  /** Explicit-mode outbound listener (HTTP_PROXY target). Default 127.0.0.1:15001. */
  outbound?: { address: string; port: number };
  /** Address the inbound listeners bind. Default 0.0.0.0. */
  inboundAddress?: string;
  /** On-demand discovery (sidecar): the outbound route table starts with
   * only the egress hosts; each mesh host is a RouteConfiguration of its own,
   * `outbound/<host>`, that the proxy subscribes to (delta xDS) the first
   * time it sees the host (translate.ts, docs/xds.md). */
  onDemand?: boolean;
  /** Consul-style local listeners for upstream services (gRPC, TCP). */
  upstreams?: { service: string; namespace?: string; port: number; localPort: number; localAddress?: string }[];
  /** Transparent capture (iptables REDIRECT in the workload's network
   * namespace): see translate/transparent.ts. */
  capture?: 'transparent';
  /** Transparent capture: the inbound listener's port (REDIRECT target). */
  inboundPort?: number;
  /** Gateway mode (translate/gateway.ts): the Gateway served, where its
   * listeners bind (Gateway port -> bound port), where certificates live. */
  gateway?: string;
  listenAddress?: string;
  portMap?: Record<string, number>;
  certDir?: string;
}

export function nsOf(m: Meta): string {
  return m.namespace ?? 'default';
}

export function keyOf(m: Meta): string {
  return `${nsOf(m)}/${m.name}`;
}
