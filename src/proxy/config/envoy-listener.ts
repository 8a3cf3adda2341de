// listener.v3.Listener (+ the two terminal network filters it may hold:
// http_connection_manager and tcp_proxy) -> ListenerSpec.
import { isIP } from 'node:net';
import type {
  Direction,
  FilterChainMatch,
  FilterChainSpec,
  HttpConnectionManagerSpec,
  HttpFilterSpec,
  ListenerSpec,
  ProtocolHint,
  RouteConfigSpec,
  TcpProxySpec,
} from './types.ts';
import { FieldReader } from './field-reader.ts';
import type { Issues } from './field-error.ts';
import { anyType, keepObject, parseAddress, parseTrellisMetadata } from './envoy-common.ts';
import { readRouteConfiguration, parseWeightedClusters } from './envoy-route.ts';
import { readRbac, RBAC_TYPE, RBAC_FILTER_NAME, NETWORK_RBAC_TYPE, NETWORK_RBAC_FILTER_NAME, type RbacSpec } from './envoy-rbac.ts';
import { readJwtAuthn, JWT_AUTHN_TYPE, JWT_AUTHN_FILTER_NAME } from './envoy-jwt.ts';
import { readWasmFilter, WASM_FILTER_TYPE, WASM_FILTER_NAME } from './envoy-wasm.ts';
import { readHcmTracing } from './envoy-tracing.ts';
import { readHcmAccessLog } from './envoy-access-log.ts';
import { DEFAULT_PATH_NORMALIZATION, type EscapedSlashesAction, type PathNormalization } from '../http/path-normalize.ts';

export const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const TCP_PROXY_TYPE = 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
export const ROUTER_TYPE = 'envoy.extensions.filters.http.router.v3.Router';
export const ROUTER_NAME = 'envoy.filters.http.router';

export interface ParsedListener {
  readonly spec: ListenerSpec;
  /** Route configurations written inline in an HCM, under generated names. */
  readonly inlineRoutes: readonly RouteConfigSpec[];
}

/** The name an inline HCM routeConfig is registered under. */
export function inlineRouteName(listener: string, chain: string): string {
  return `inline/${listener}/${chain}`;
}

const DIRECTIONS: Record<string, Direction | 'unspecified'> = { UNSPECIFIED: 'unspecified', INBOUND: 'inbound', OUTBOUND: 'outbound' };
const DIRECTION_NUMBERS = ['UNSPECIFIED', 'INBOUND', 'OUTBOUND'];

export function readListener(json: unknown, path: string, issues: Issues): ParsedListener | undefined {
  const r = FieldReader.of(json, path, issues);
  if (!r) return undefined;
  const before = issues.errors.length;
  const name = r.str('name', { required: true }) ?? '';
  if (name) issues.resource = { path, name };
  const addr = parseAddress(r.obj('address', { required: true }));
  let direction: Direction = 'outbound';
  const td = r.enumOf('trafficDirection', DIRECTIONS, DIRECTION_NUMBERS);
  if (td === 'inbound' || td === 'outbound') direction = td;
  const meta = parseTrellisMetadata(r.obj('metadata'));
  if (meta) {
    const metaPath = `${r.at('metadata')}.filterMetadata.trellis`;
    for (const [k, v] of Object.entries(meta)) {
      if (k !== 'direction') issues.error(`${metaPath}.${k}`, 'unknown Trellis listener metadata (supported: direction)');
      else if (v === 'gateway' || v === 'inbound' || v === 'outbound') direction = v;
      else issues.error(`${metaPath}.direction`, `must be "gateway", "inbound" or "outbound" (got ${JSON.stringify(v)})`);
    }
  }
  const useOriginalDst = r.bool('useOriginalDst') ?? false;

  const inlineRoutes: RouteConfigSpec[] = [];
  const chains: FilterChainSpec[] = [];
  const names = new Set<string>();
  for (const [i, c] of r.objList('filterChains').entries()) {
    const chain = parseFilterChain(c, name, `chain-${i}`, inlineRoutes);
    if (!chain) continue;
    if (names.has(chain.name)) c.error('name', `duplicate filter chain name "${chain.name}"`);
    names.add(chain.name);
    chains.push(chain);
  }
  sortBySpecificity(chains);
  const dc = r.obj('defaultFilterChain');
  if (dc) {
    if (dc.has('filterChainMatch')) dc.error('filterChainMatch', 'not allowed on the default filter chain');
    const chain = parseFilterChain(dc, name, 'default', inlineRoutes);
    if (chain) chains.push(chain);
  }
  if (chains.length === 0 && issues.errors.length === before) r.error('filterChains', 'at least one filter chain (or a defaultFilterChain) is required');

  r.ignore('statPrefix', 'listenerFilters', 'listenerFiltersTimeout', 'continueOnListenerFiltersTimeout', 'perConnectionBufferLimitBytes', 'accessLog', 'drainType', 'socketOptions', 'transparent', 'freebind', 'reusePort', 'enableReusePort', 'tcpBacklogSize', 'tcpFastOpenQueueLength', 'connectionBalanceConfig', 'bindToPort', 'maxConnectionsToAcceptPerSocketEvent', 'ignoreGlobalConnLimit');
  r.done();
  if (issues.errors.length > before || !addr) return undefined;
  return { spec: { name, address: addr.address, port: addr.port, direction, useOriginalDst, filterChains: chains }, inlineRoutes };
}

function parseFilterChain(r: FieldReader, listener: string, defaultName: string, inlineRoutes: RouteConfigSpec[]): FilterChainSpec | undefined {
  const before = r.issues.errors.length;
  const name = r.str('name', { nonEmpty: true }) ?? defaultName;
  const mr = r.obj('filterChainMatch');
  const match = mr ? parseFilterChainMatch(mr) : {};
  const filters = r.objList('filters', { required: true, nonEmpty: true });
  let http: HttpConnectionManagerSpec | undefined;
  let tcp: TcpProxySpec | undefined;
  let protocol: ProtocolHint = 'auto';
  // Network RBAC filters, then exactly one terminal filter (http_connection_manager or tcp_proxy).
  const networkRbac: { name: string; rbac: RbacSpec }[] = [];
  const f = filters[filters.length - 1];
  for (const nf of filters.slice(0, -1)) {
    const fname = nf.str('name', { required: true }) ?? '';
    const tc = nf.obj('typedConfig', { required: true });
    nf.done();
    if (!tc) continue;
    const type = anyType(tc);
    if (type === NETWORK_RBAC_TYPE) {
      const rbac = readRbac(tc, { network: true });
      if (rbac) networkRbac.push({ name: fname, rbac });
    } else {
      tc.error('@type', `unsupported network filter "${type}" before the terminal filter (supported: ${NETWORK_RBAC_TYPE}; then exactly one ${HCM_TYPE} or ${TCP_PROXY_TYPE})`);
    }
  }
  if (f) {
    f.str('name', { required: true });
    const tc = f.obj('typedConfig', { required: true });
    f.done();
    if (tc) {
      const type = anyType(tc);
      if (type === HCM_TYPE) {
        const parsed = parseHcm(tc, inlineRouteName(listener, name), inlineRoutes);
        if (parsed) ({ http, protocol } = parsed);
      } else if (type === TCP_PROXY_TYPE) {
        tcp = parseTcpProxy(tc);
        // A TCP chain never waits for client bytes (server-first protocols
        // such as MySQL or SMTP work) unless its match needs to look at them.
        protocol = match.transportProtocol !== undefined || match.serverNames !== undefined || match.applicationProtocols !== undefined ? 'auto' : 'opaque';
      } else if (type !== undefined) {
        tc.error('@type', `unsupported network filter "${type}" as the last filter (supported: ${HCM_TYPE}, ${TCP_PROXY_TYPE})`);
      }
    }
  }
  if (http && networkRbac.length > 0) r.error('filters', `${NETWORK_RBAC_FILTER_NAME} is supported before ${TCP_PROXY_TYPE} only (HTTP chains use ${RBAC_FILTER_NAME} inside the connection manager)`);
  const extensions: Record<string, unknown> = {};
  keepObject(r, 'transportSocket', extensions);
  r.ignore('metadata', 'transportSocketConnectTimeout', 'useProxyProto');
  r.done();
  if (r.issues.errors.length > before || (!http && !tcp)) return undefined;
  return {
    name,
    match,
    protocol,
    ...(http ? { http } : {}),
    ...(tcp ? { tcp } : {}),
    ...(networkRbac.length > 0 ? { networkRbac } : {}),
    ...(Object.keys(extensions).length > 0 ? { extensions } : {}),
  };
}

function parseFilterChainMatch(r: FieldReader): FilterChainMatch {
  const destinationPort = r.uint('destinationPort', { min: 1, max: 65535 });
  const prefixRanges: { address: string; prefixLen: number }[] = [];
  for (const c of r.objList('prefixRanges')) {
    const address = c.str('addressPrefix', { required: true });
    const family = address === undefined ? 0 : isIP(address);
    if (address !== undefined && family === 0) c.error('addressPrefix', `must be an IPv4 or IPv6 address (got ${JSON.stringify(address)})`);
    const prefixLen = c.uint('prefixLen', { max: family === 6 ? 128 : 32 }) ?? 0;
    c.done();
    if (address !== undefined && family !== 0) prefixRanges.push({ address, prefixLen });
  }
  const tp = r.str('transportProtocol');
  let transportProtocol: FilterChainMatch['transportProtocol'];
  if (tp === 'tls' || tp === 'raw_buffer') transportProtocol = tp;
  else if (tp !== undefined && tp !== '') r.error('transportProtocol', `must be tls or raw_buffer (got ${JSON.stringify(tp)})`);
  const serverNames = r.strList('serverNames').map((s) => s.toLowerCase());
  const applicationProtocols = r.strList('applicationProtocols');
  r.done();
  return {
    ...(destinationPort !== undefined ? { destinationPort } : {}),
    ...(prefixRanges.length > 0 ? { prefixRanges } : {}),
    ...(transportProtocol !== undefined ? { transportProtocol } : {}),
    ...(serverNames.length > 0 ? { serverNames } : {}),
    ...(applicationProtocols.length > 0 ? { applicationProtocols } : {}),
  };
}

/** Envoy picks the most specific chain (destination port, then destination
 * IP, then server name, transport protocol, application protocols); the
 * proxy takes the first match, so order chains by that specificity. Ties
 * keep their written order. */
function sortBySpecificity(chains: FilterChainSpec[]): void {
  const key = (c: FilterChainSpec): number[] => [
    c.match.destinationPort !== undefined ? 1 : 0,
    c.match.prefixRanges ? Math.max(...c.match.prefixRanges.map((p) => p.prefixLen)) + 1 : 0,
    c.match.serverNames ? (c.match.serverNames.some((s) => s.startsWith('*')) ? 1 : 2) : 0,
    c.match.transportProtocol !== undefined ? 1 : 0,
    c.match.applicationProtocols ? 1 : 0,
  ];
  const keys = new Map(chains.map((c) => [c, key(c)]));
  chains.sort((a, b) => {
    const ka = keys.get(a)!;
    const kb = keys.get(b)!;
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return kb[i]! - ka[i]!;
    return 0;
  });
}

const CODECS: Record<string, ProtocolHint | 'http3'> = { AUTO: 'auto', HTTP1: 'http1', HTTP2: 'http2', HTTP3: 'http3' };
const CODEC_NUMBERS = ['AUTO', 'HTTP1', 'HTTP2', 'HTTP3'];

function parseHcm(r: FieldReader, inlineName: string, inlineRoutes: RouteConfigSpec[]): { http: HttpConnectionManagerSpec; protocol: ProtocolHint } | undefined {
  const statPrefix = r.str('statPrefix', { required: true }) ?? '';
  let protocol: ProtocolHint = 'auto';
  const codec = r.enumOf('codecType', CODECS, CODEC_NUMBERS);
  if (codec === 'http3') r.error('codecType', 'HTTP3 is not supported');
  else if (codec !== undefined) protocol = codec;
  let routeConfigName: string | undefined;
  const which = r.oneOf(['rds', 'routeConfig'], { required: true });
  if (which === 'rds') {
    const rds = r.obj('rds');
    if (rds) {
      routeConfigName = rds.str('routeConfigName', { required: true });
      rds.ignore('configSource');
      rds.done();
    }
  } else if (which === 'routeConfig') {
    const rc = readRouteConfiguration(r.raw('routeConfig'), r.at('routeConfig'), r.issues, { name: inlineName });
    if (rc) {
      inlineRoutes.push(rc);
      routeConfigName = inlineName;
    }
  }
  const requestTimeoutMs = r.duration('requestTimeout');
  let idleTimeoutMs: number | undefined;
  let maxHeadersCount: number | undefined;
  const common = r.obj('commonHttpProtocolOptions');
  if (common) {
    idleTimeoutMs = common.duration('idleTimeout');
    maxHeadersCount = common.uint('maxHeadersCount', { min: 1, max: 10_000 });
    common.ignore('headersWithUnderscoresAction', 'maxConnectionDuration', 'maxStreamDuration', 'maxRequestsPerConnection');
    common.done();
  }
  const via = r.str('via', { nonEmpty: true });
  const pathNormalization = readPathNormalization(r);
  const filters = r.objList('httpFilters');
  const httpFilters: HttpFilterSpec[] = [];
  filters.forEach((f, i) => {
    const name = f.str('name', { required: true });
    // The typedConfig of a filter is not read (only its @type), so its
    // fields are never reported as unknown -- except the filters the proxy
    // honours (RBAC, JWT authentication, Wasm/TypeScript plugins), which are read strictly.
    const tc = f.obj('typedConfig');
    const type = tc ? anyType(tc) : undefined;
    const honoured = tc && name !== undefined ? readHonouredFilter(name, type, tc) : 'other';
    if (honoured !== 'other' && honoured !== 'invalid') httpFilters.push(honoured);
    const optional = f.bool('isOptional') === true;
    f.ignore('disabled', 'configDiscovery');
    f.done();
    const isRouter = name === ROUTER_NAME || type === ROUTER_TYPE;
    const last = i === filters.length - 1;
    if (isRouter && !last) f.error('name', 'the router must be the last HTTP filter');
    if (!isRouter && name !== undefined && honoured === 'other') {
      // Fail closed, as Envoy does: a filter the proxy cannot run (an authz
      // or a limit, perhaps) rejects the listener, unless marked optional.
      const perRoute = type !== undefined ? PER_ROUTE_FILTERS[type] : undefined;
      const placeholder = perRoute !== undefined && Object.keys(f.raw('typedConfig') as object).every((k) => k === '@type' || k === 'statPrefix');
      if (placeholder) {
        // Enables the routes' typedPerFilterConfig (which the proxy honours), as Envoy requires.
      } else if (optional) {
        f.warn('name', `HTTP filter "${name}" is skipped (isOptional; recognised: ${RECOGNISED})`);
      } else if (perRoute !== undefined) {
        f.error('typedConfig', `${perRoute} with filter-level settings is not applied by the Trellis proxy: put them in the routes' typedPerFilterConfig, or mark the filter isOptional: true to have it skipped`);
      } else {
        f.error('name', `HTTP filter "${name}"${type !== undefined ? ` (${type})` : ''} is not supported by the Trellis proxy (recognised: ${RECOGNISED}); the listener is refused rather than served without it; mark it isOptional: true to have it skipped`);
      }
    }
    if (!isRouter && last) r.error('httpFilters', `the last HTTP filter must be the router (${ROUTER_NAME})`);
  });
  const tracingReader = r.obj('tracing');
  const tracing = tracingReader ? readHcmTracing(tracingReader) : undefined;
  const accessLog = readHcmAccessLog(r.objList('accessLog'));
  r.ignore(
    'useRemoteAddress', 'xffNumTrustedHops', 'skipXffAppend', 'generateRequestId', 'preserveExternalRequestId',
    'alwaysSetRequestIdInResponse', 'serverName', 'serverHeaderTransformation', 'streamIdleTimeout',
    'drainTimeout', 'delayedCloseTimeout', 'requestHeadersTimeout', 'upgradeConfigs', 'forwardClientCertDetails', 'setCurrentClientCertDetails',
    'httpProtocolOptions', 'http2ProtocolOptions', 'stripMatchingHostPort', 'stripAnyHostPort',
    'internalAddressConfig', 'maxRequestHeadersKb', 'addUserAgent', 'localReplyConfig', 'requestIdExtension',
  );
  r.done();
  if (routeConfigName === undefined) return undefined;
  return {
    http: {
      statPrefix,
      routeConfigName,
      ...(via !== undefined ? { via } : {}),
      ...(requestTimeoutMs !== undefined && requestTimeoutMs > 0 ? { requestTimeoutMs } : {}),
      ...(idleTimeoutMs !== undefined && idleTimeoutMs > 0 ? { idleTimeoutMs } : {}),
      ...(maxHeadersCount !== undefined ? { maxHeadersCount } : {}),
      ...(httpFilters.length > 0 ? { httpFilters } : {}),
      ...(tracing ? { tracing } : {}),
      ...(accessLog ? { accessLog } : {}),
      ...(pathNormalization ? { pathNormalization } : {}),
    },
    protocol,
  };
}

const ESCAPED_SLASHES: Record<string, EscapedSlashesAction> = {
  IMPLEMENTATION_SPECIFIC_DEFAULT: DEFAULT_PATH_NORMALIZATION.escapedSlashes,
  KEEP_UNCHANGED: 'keep',
  REJECT_REQUEST: 'reject',
  UNESCAPE_AND_REDIRECT: 'unescape-and-redirect',
  UNESCAPE_AND_FORWARD: 'unescape-and-forward',
};
const ESCAPED_SLASHES_NUMBERS = ['IMPLEMENTATION_SPECIFIC_DEFAULT', 'KEEP_UNCHANGED', 'REJECT_REQUEST', 'UNESCAPE_AND_REDIRECT', 'UNESCAPE_AND_FORWARD'];

/** normalizePath (BoolValue: absent is on here), mergeSlashes, and
 * pathWithEscapedSlashesAction (unspecified is reject here); undefined when
 * none is written (the layer then uses DEFAULT_PATH_NORMALIZATION). */
function readPathNormalization(r: FieldReader): PathNormalization | undefined {
  if (!r.has('normalizePath') && !r.has('mergeSlashes') && !r.has('pathWithEscapedSlashesAction')) return undefined;
  const d = DEFAULT_PATH_NORMALIZATION;
  return {
    normalize: r.bool('normalizePath') ?? d.normalize,
    mergeSlashes: r.bool('mergeSlashes') ?? d.mergeSlashes,
    escapedSlashes: r.enumOf('pathWithEscapedSlashesAction', ESCAPED_SLASHES, ESCAPED_SLASHES_NUMBERS) ?? d.escapedSlashes,
  };
}

/** Filters whose work the proxy does from the routes' typedPerFilterConfig:
 * listed in httpFilters without settings (as Envoy requires), they are fine. */
const PER_ROUTE_FILTERS: Record<string, string> = {
  'envoy.extensions.filters.http.fault.v3.HTTPFault': 'envoy.filters.http.fault',
  'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit': 'envoy.filters.http.local_ratelimit',
};
const RECOGNISED = `${ROUTER_NAME}, ${RBAC_FILTER_NAME}, ${JWT_AUTHN_FILTER_NAME}, ${WASM_FILTER_NAME}; ${Object.values(PER_ROUTE_FILTERS).join(', ')} without filter-level settings`;

/** RBAC, JWT authentication and plugin (Wasm) configs, read strictly; 'other' for the rest. */
function readHonouredFilter(name: string, type: string | undefined, tc: FieldReader): HttpFilterSpec | 'invalid' | 'other' {
  if (type === RBAC_TYPE) {
    const rbac = readRbac(tc);
    return rbac ? { name, kind: 'rbac', rbac } : 'invalid';
  }
  if (type === JWT_AUTHN_TYPE) {
    const jwt = readJwtAuthn(tc);
    return jwt ? { name, kind: 'jwt_authn', jwt } : 'invalid';
  }
  if (type === WASM_FILTER_TYPE) {
    const plugin = readWasmFilter(tc, name);
    return plugin ? { name, kind: 'plugin', plugin } : 'invalid';
  }
  return 'other';
}

function parseTcpProxy(r: FieldReader): TcpProxySpec | undefined {
  const statPrefix = r.str('statPrefix', { required: true }) ?? '';
  let clusters: TcpProxySpec['clusters'] | undefined;
  const which = r.oneOf(['cluster', 'weightedClusters'], { required: true });
  if (which === 'cluster') {
    const c = r.str('cluster', { required: true });
    if (c !== undefined) clusters = [{ name: c, weight: 1 }];
  } else if (which === 'weightedClusters') {
    const w = r.obj('weightedClusters');
    if (w) clusters = parseWeightedClusters(w, 'clusters');
  }
  const idleTimeoutMs = r.duration('idleTimeout');
  r.ignore('accessLog', 'accessLogFlushInterval', 'accessLogOptions', 'flushAccessLogOnConnected', 'maxConnectAttempts', 'downstreamIdleTimeout', 'upstreamIdleTimeout', 'maxDownstreamConnectionDuration');
  r.done();
  if (!clusters) return undefined;
  return idleTimeoutMs !== undefined && idleTimeoutMs > 0 ? { statPrefix, clusters, idleTimeoutMs } : { statPrefix, clusters };
}
