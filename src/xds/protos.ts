// The Envoy / xDS protobuf types Trellis speaks, in one protobufjs Root.
//
// The types are read from `envoy-protos.json`, a descriptor generated from the
// Envoy API protos that ship inside @grpc/grpc-js-xds (deps/: envoy-api, xds,
// googleapis, protoc-gen-validate; all Apache-2.0) by `protos-build.ts`. The
// JSON is committed so the control plane and the proxy do not need the
// (dev-only) grpc-js-xds package at run time; protos.test.ts checks that it
// matches a fresh build.
//
// Field names keep their proto spelling (snake_case, `keepCase`); codec.ts maps
// them to and from proto3-JSON's lowerCamelCase.
import protobuf from 'protobufjs';
import { readFileSync } from 'node:fs';

export const TYPE_PREFIX = 'type.googleapis.com/';

/** The resource types the ADS server serves, by their xDS type URL. */
export const TypeUrl = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;
export type ResourceTypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];
export const RESOURCE_TYPE_URLS: readonly ResourceTypeUrl[] = Object.values(TypeUrl);

/** Extension types referenced from resources (typed_config / typed_extension_protocol_options). */
export const ExtensionType = {
  httpConnectionManager: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  router: 'envoy.extensions.filters.http.router.v3.Router',
  tcpProxy: 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  networkRbac: 'envoy.extensions.filters.network.rbac.v3.RBAC',
  httpProtocolOptions: 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  typedStruct: 'xds.type.v3.TypedStruct',
  upstreamTlsContext: 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  downstreamTlsContext: 'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  openTelemetryConfig: 'envoy.config.trace.v3.OpenTelemetryConfig',
  stdoutAccessLog: 'envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
} as const;

/** The .proto files (relative to the include dirs) the descriptor is built from. */
export const PROTO_FILES: readonly string[] = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/status/v3/csds.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/config/trace/v3/opentelemetry.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/jwt_authn/v3/config.proto',
  'envoy/extensions/filters/http/wasm/v3/wasm.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'envoy/extensions/load_balancing_policies/random/v3/random.proto',
  'envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto',
  'envoy/extensions/load_balancing_policies/pick_first/v3/pick_first.proto',
  'envoy/extensions/load_balancing_policies/wrr_locality/v3/wrr_locality.proto',
  'envoy/extensions/load_balancing_policies/client_side_weighted_round_robin/v3/client_side_weighted_round_robin.proto',
  'xds/type/v3/typed_struct.proto',
  'udpa/type/v1/typed_struct.proto',
  'google/protobuf/any.proto',
  'google/protobuf/duration.proto',
  'google/protobuf/timestamp.proto',
  'google/protobuf/struct.proto',
  'google/protobuf/wrappers.proto',
  'google/protobuf/empty.proto',
];

export const DESCRIPTOR_URL = new URL('./envoy-protos.json', import.meta.url);

let cached: protobuf.Root | undefined;

/** The shared Root (loaded once, lazily). */
export function xdsRoot(): protobuf.Root {
  if (cached === undefined) {
    const json = JSON.parse(readFileSync(DESCRIPTOR_URL, 'utf8')) as protobuf.INamespace;
    cached = protobuf.Root.fromJSON(json);
    cached.resolveAll();
  }
  return cached;
}

/** The message type for a fully qualified name, or undefined if it is not loaded. */
export function findType(fullName: string): protobuf.Type | undefined {
  try {
    return xdsRoot().lookupType(fullName.startsWith('.') ? fullName : `.${fullName}`);
  } catch {
    return undefined;
  }
}

/** The message type for a type URL ("type.googleapis.com/pkg.Name"; any prefix up to the last "/"). */
export function typeForUrl(typeUrl: string): protobuf.Type | undefined {
  const slash = typeUrl.lastIndexOf('/');
  if (slash < 0) return undefined;
  return findType(typeUrl.slice(slash + 1));
}

export function requireType(fullName: string): protobuf.Type {
  const t = findType(fullName);
  if (t === undefined) throw new Error(`xds: protobuf type ${fullName} is not loaded`);
  return t;
}
