// Gateway API kinds (gateway.networking.k8s.io): HTTPRoute, GRPCRoute and
// Gateway at v1, TCPRoute at v1alpha2. Field names, enums and limits follow
// the upstream CRDs (v1.2). In the mesh profile (GAMMA) a parentRef to a
// Service attaches the route to that service's traffic.
import { Type, type Static } from '@sinclair/typebox';
import {
  Closed, StringEnum, StringMap, Duration, PortNumber, ObjectName, Namespace, Group, KindName, SectionName,
  Hostname, PreciseHostname, HeaderName,
} from './schema-common.ts';

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

export const ParentReference = Closed({
  group: Type.Optional(Type.String({ ...Group, default: GATEWAY_GROUP })),
  kind: Type.Optional(Type.String({ ...KindName, default: 'Gateway' })),
  namespace: Type.Optional(Namespace),
  name: ObjectName,
  sectionName: Type.Optional(SectionName),
  port: Type.Optional(PortNumber),
});
export type ParentReference = Static<typeof ParentReference>;

/** A reference to a backend; `group: ""` (core) and `kind: Service` by default. */
export const BackendObjectReference = {
  group: Type.Optional(Type.String({ ...Group, default: '' })),
  kind: Type.Optional(Type.String({ ...KindName, default: 'Service' })),
  name: ObjectName,
  namespace: Type.Optional(Namespace),
  port: Type.Optional(PortNumber),
};
export const BackendRef = Closed({
  ...BackendObjectReference,
  weight: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, default: 1 })),
});
export type BackendRef = Static<typeof BackendRef>;

const HTTPHeader = Closed({ name: HeaderName, value: Type.String({ minLength: 1, maxLength: 4096 }) });
export const HTTPHeaderFilter = Closed({
  set: Type.Optional(Type.Array(HTTPHeader, { maxItems: 16 })),
  add: Type.Optional(Type.Array(HTTPHeader, { maxItems: 16 })),
  remove: Type.Optional(Type.Array(HeaderName, { maxItems: 16 })),
});
export type HTTPHeaderFilter = Static<typeof HTTPHeaderFilter>;

export const HTTPRequestMirrorFilter = Closed({
  backendRef: Closed(BackendObjectReference),
  /** Percentage of requests to mirror (0..100); default: all. */
  percent: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
  fraction: Type.Optional(Closed({
    numerator: Type.Integer({ minimum: 0 }),
    denominator: Type.Optional(Type.Integer({ minimum: 1, default: 100 })),
  })),
});

export const HTTPPathModifier = Closed({
  type: StringEnum(['ReplaceFullPath', 'ReplacePrefixMatch'] as const),
  replaceFullPath: Type.Optional(Type.String({ maxLength: 1024 })),
  replacePrefixMatch: Type.Optional(Type.String({ maxLength: 1024 })),
});
export type HTTPPathModifier = Static<typeof HTTPPathModifier>;

export const HTTPRequestRedirectFilter = Closed({
  scheme: Type.Optional(StringEnum(['http', 'https'] as const)),
  hostname: Type.Optional(PreciseHostname),
  path: Type.Optional(HTTPPathModifier),
  port: Type.Optional(PortNumber),
  statusCode: Type.Optional(Type.Integer({ enum: [301, 302, 303, 307, 308], default: 302 })),
});

export const HTTPURLRewriteFilter = Closed({
  hostname: Type.Optional(PreciseHostname),
  path: Type.Optional(HTTPPathModifier),
});

const LocalObjectReference = Closed({ group: Group, kind: KindName, name: ObjectName });

export const HTTP_FILTER_TYPES = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'RequestRedirect', 'URLRewrite', 'ExtensionRef'] as const;
export const HTTPRouteFilter = Closed({
  type: StringEnum(HTTP_FILTER_TYPES),
  requestHeaderModifier: Type.Optional(HTTPHeaderFilter),
  responseHeaderModifier: Type.Optional(HTTPHeaderFilter),
  requestMirror: Type.Optional(HTTPRequestMirrorFilter),
  requestRedirect: Type.Optional(HTTPRequestRedirectFilter),
  urlRewrite: Type.Optional(HTTPURLRewriteFilter),
  extensionRef: Type.Optional(LocalObjectReference),
});
export type HTTPRouteFilter = Static<typeof HTTPRouteFilter>;

const pathMatchProps = {
  type: Type.Optional(StringEnum(['Exact', 'PathPrefix', 'RegularExpression'] as const, { default: 'PathPrefix' })),
  value: Type.Optional(Type.String({ maxLength: 1024, default: '/' })),
};
export const HTTPPathMatch = Closed(pathMatchProps, { default: { type: 'PathPrefix', value: '/' } });
const ValueMatch = (types: readonly ['Exact', 'RegularExpression']) => Closed({
  type: Type.Optional(StringEnum(types, { default: 'Exact' })),
  name: HeaderName,
  value: Type.String({ minLength: 1, maxLength: 4096 }),
});
export const HTTPHeaderMatch = ValueMatch(['Exact', 'RegularExpression'] as const);
export const HTTPMethod = StringEnum(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const);

export const HTTPRouteMatch = Closed({
  path: Type.Optional(HTTPPathMatch),
  headers: Type.Optional(Type.Array(HTTPHeaderMatch, { maxItems: 16 })),
  queryParams: Type.Optional(Type.Array(HTTPHeaderMatch, { maxItems: 16 })),
  method: Type.Optional(HTTPMethod),
});
export type HTTPRouteMatch = Static<typeof HTTPRouteMatch>;

export const HTTPBackendRef = Closed({
  ...BackendRef.properties,
  filters: Type.Optional(Type.Array(HTTPRouteFilter, { maxItems: 16 })),
});
export type HTTPBackendRef = Static<typeof HTTPBackendRef>;

export const HTTPRouteTimeouts = Closed({
  /** Whole request, from the first byte received to the last byte of the response. */
  request: Type.Optional(Duration),
  /** One attempt to a backend (retries each get their own). */
  backendRequest: Type.Optional(Duration),
});

export const HTTPRouteRule = Closed({
  name: Type.Optional(SectionName),
  matches: Type.Optional(Type.Array(HTTPRouteMatch, { maxItems: 64 })),
  filters: Type.Optional(Type.Array(HTTPRouteFilter, { maxItems: 16 })),
  backendRefs: Type.Optional(Type.Array(HTTPBackendRef, { maxItems: 16 })),
  timeouts: Type.Optional(HTTPRouteTimeouts),
});
export type HTTPRouteRule = Static<typeof HTTPRouteRule>;

const CommonRouteSpec = {
  parentRefs: Type.Optional(Type.Array(ParentReference, { maxItems: 32 })),
};

export const HTTPRouteSpec = Closed({
  ...CommonRouteSpec,
  hostnames: Type.Optional(Type.Array(Hostname, { maxItems: 16 })),
  rules: Type.Optional(Type.Array(HTTPRouteRule, { maxItems: 16, default: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }] }] })),
});
export type HTTPRouteSpec = Static<typeof HTTPRouteSpec>;

// GRPCRoute
export const GRPCMethodMatch = Closed({
  type: Type.Optional(StringEnum(['Exact', 'RegularExpression'] as const, { default: 'Exact' })),
  service: Type.Optional(Type.String({ maxLength: 1024 })),
  method: Type.Optional(Type.String({ maxLength: 1024 })),
});
export const GRPCRouteMatch = Closed({
  method: Type.Optional(GRPCMethodMatch),
  headers: Type.Optional(Type.Array(HTTPHeaderMatch, { maxItems: 16 })),
});
export const GRPC_FILTER_TYPES = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'ExtensionRef'] as const;
export const GRPCRouteFilter = Closed({
  type: StringEnum(GRPC_FILTER_TYPES),
  requestHeaderModifier: Type.Optional(HTTPHeaderFilter),
  responseHeaderModifier: Type.Optional(HTTPHeaderFilter),
  requestMirror: Type.Optional(HTTPRequestMirrorFilter),
  extensionRef: Type.Optional(LocalObjectReference),
});
export const GRPCBackendRef = Closed({
  ...BackendRef.properties,
  filters: Type.Optional(Type.Array(GRPCRouteFilter, { maxItems: 16 })),
});
export const GRPCRouteRule = Closed({
  name: Type.Optional(SectionName),
  matches: Type.Optional(Type.Array(GRPCRouteMatch, { maxItems: 64 })),
  filters: Type.Optional(Type.Array(GRPCRouteFilter, { maxItems: 16 })),
  backendRefs: Type.Optional(Type.Array(GRPCBackendRef, { maxItems: 16 })),
});
export const GRPCRouteSpec = Closed({
  ...CommonRouteSpec,
  hostnames: Type.Optional(Type.Array(Hostname, { maxItems: 16 })),
  rules: Type.Optional(Type.Array(GRPCRouteRule, { maxItems: 16 })),
});
export type GRPCRouteSpec = Static<typeof GRPCRouteSpec>;

// TCPRoute (v1alpha2)
export const TCPRouteRule = Closed({
  name: Type.Optional(SectionName),
  backendRefs: Type.Array(BackendRef, { minItems: 1, maxItems: 16 }),
});
export const TCPRouteSpec = Closed({
  ...CommonRouteSpec,
  rules: Type.Array(TCPRouteRule, { minItems: 1, maxItems: 16 }),
});
export type TCPRouteSpec = Static<typeof TCPRouteSpec>;

// Gateway
export const GatewayListener = Closed({
  name: SectionName,
  hostname: Type.Optional(Hostname),
  port: PortNumber,
  protocol: Type.String({ minLength: 1, maxLength: 255, pattern: '^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\\/[A-Za-z0-9]+$' }),
  tls: Type.Optional(Closed({
    mode: Type.Optional(StringEnum(['Terminate', 'Passthrough'] as const, { default: 'Terminate' })),
    certificateRefs: Type.Optional(Type.Array(Closed({
      group: Type.Optional(Type.String({ ...Group, default: '' })),
      kind: Type.Optional(Type.String({ ...KindName, default: 'Secret' })),
      name: ObjectName,
      namespace: Type.Optional(Namespace),
    }), { maxItems: 64 })),
    options: Type.Optional(StringMap()),
  })),
  allowedRoutes: Type.Optional(Closed({
    namespaces: Type.Optional(Closed({
      from: Type.Optional(StringEnum(['All', 'Same', 'Selector'] as const, { default: 'Same' })),
      selector: Type.Optional(Closed({ matchLabels: Type.Optional(StringMap()) })),
    })),
    kinds: Type.Optional(Type.Array(Closed({ group: Type.Optional(Group), kind: KindName }), { maxItems: 8 })),
  })),
});
export const GatewaySpec = Closed({
  gatewayClassName: ObjectName,
  listeners: Type.Array(GatewayListener, { minItems: 1, maxItems: 64 }),
  addresses: Type.Optional(Type.Array(Closed({
    type: Type.Optional(Type.String({ minLength: 1, maxLength: 253, default: 'IPAddress' })),
    value: Type.String({ minLength: 1, maxLength: 253 }),
  }), { maxItems: 16 })),
});
export type GatewaySpec = Static<typeof GatewaySpec>;
