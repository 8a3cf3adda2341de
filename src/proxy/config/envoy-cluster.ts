// cluster.v3.Cluster -> ClusterSpec (+ its inline loadAssignment).
import type { CircuitBreakerSpec, ClusterSpec, LbPolicy, LocalityEndpoints, UpstreamProtocol } from './types.ts';
import { FieldReader } from './field-reader.ts';
import type { Issues } from './field-error.ts';
import { anyType, keepObject, keepObjectList, parseTrellisMetadata } from './envoy-common.ts';
import { readClusterLoadAssignment } from './envoy-endpoint.ts';

export interface ParsedCluster {
  readonly spec: ClusterSpec;
  /** Inline endpoints (STATIC / STRICT_DNS clusters). */
  readonly inlineEndpoints?: readonly LocalityEndpoints[];
}

export const DEFAULT_CIRCUIT_BREAKERS: CircuitBreakerSpec = { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 };
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
export const DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS = 60_000;
export const DEFAULT_LB_POLICY: LbPolicy = 'peak_ewma';
export const DEFAULT_RING_HASH = { minRingSize: 1024, maxRingSize: 8 * 1024 * 1024 } as const;

const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

const ENVOY_LB: Record<string, LbPolicy> = {
  ROUND_ROBIN: 'round_robin',
  LEAST_REQUEST: 'least_request',
  RING_HASH: 'ring_hash',
  RANDOM: 'random',
  MAGLEV: 'ring_hash',
};
const ENVOY_LB_NUMBERS = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RING_HASH', 'RANDOM', '', 'MAGLEV'];
const TRELLIS_LB: Record<string, LbPolicy> = {
  peak_ewma: 'peak_ewma',
  round_robin: 'round_robin',
  weighted_round_robin: 'weighted_round_robin',
  random: 'random',
  least_request: 'least_request',
  ring_hash: 'ring_hash',
  maglev: 'ring_hash',
  ...ENVOY_LB,
  PEAK_EWMA: 'peak_ewma',
  WEIGHTED_ROUND_ROBIN: 'weighted_round_robin',
};

type Discovery = 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'EDS' | 'ORIGINAL_DST';
const DISCOVERY: Record<string, Discovery> = { STATIC: 'STATIC', STRICT_DNS: 'STRICT_DNS', LOGICAL_DNS: 'LOGICAL_DNS', EDS: 'EDS', ORIGINAL_DST: 'ORIGINAL_DST' };
const DISCOVERY_NUMBERS = ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS', 'ORIGINAL_DST'];

export function readCluster(json: unknown, path: string, issues: Issues): ParsedCluster | undefined {
  const r = FieldReader.of(json, path, issues);
  if (!r) return undefined;
  const before = issues.errors.length;
  const name = r.str('name', { required: true }) ?? '';
  if (name) issues.resource = { path, name };

  const type = r.enumOf('type', DISCOVERY, DISCOVERY_NUMBERS) ?? 'STATIC';
  let discovery: 'static' | 'eds' = 'static';
  let edsServiceName: string | undefined;
  if (type === 'EDS') {
    discovery = 'eds';
    const eds = r.obj('edsClusterConfig');
    if (eds) {
      edsServiceName = eds.str('serviceName') || undefined;
      eds.ignore('edsConfig');
      eds.done();
    }
  } else {
    if (r.has('edsClusterConfig')) r.error('edsClusterConfig', 'only valid with type: EDS');
    if (type === 'STRICT_DNS' || type === 'LOGICAL_DNS') {
      r.warn('type', `${type} is treated as STATIC: the endpoint host names are resolved on each connect, not watched`);
    } else if (type === 'ORIGINAL_DST') {
      r.error('type', 'ORIGINAL_DST clusters are not supported');
    }
  }

  const connectTimeoutMs = r.duration('connectTimeout') ?? DEFAULT_CONNECT_TIMEOUT_MS;

  // Load balancing: metadata.filterMetadata.trellis.lbPolicy wins over lbPolicy.
  let lbPolicy = r.enumOf('lbPolicy', ENVOY_LB, ENVOY_LB_NUMBERS);
  const meta = parseTrellisMetadata(r.obj('metadata'));
  if (meta) {
    for (const k of Object.keys(meta)) {
      if (k !== 'lbPolicy' && k !== 'retryBudget') r.issues.error(`${r.at('metadata')}.filterMetadata.trellis.${k}`, 'unknown Trellis cluster metadata (supported: lbPolicy, retryBudget)');
    }
    const t = meta.lbPolicy;
    if (t !== undefined) {
      if (typeof t === 'string' && Object.hasOwn(TRELLIS_LB, t)) lbPolicy = TRELLIS_LB[t];
      else r.issues.error(`${r.at('metadata')}.filterMetadata.trellis.lbPolicy`, `must be one of peak_ewma, round_robin, weighted_round_robin, random, least_request, ring_hash (got ${JSON.stringify(t)})`);
    }
  }
  let ringHash: ClusterSpec['ringHash'];
  const rh = r.obj('ringHashLbConfig');
  if (rh) {
    const min = rh.uint('minimumRingSize', { min: 1, max: 8_388_608 }) ?? DEFAULT_RING_HASH.minRingSize;
    const max = rh.uint('maximumRingSize', { min: 1, max: 8_388_608 }) ?? DEFAULT_RING_HASH.maxRingSize;
    rh.ignore('hashFunction');
    rh.done();
    if (min > max) rh.error('minimumRingSize', 'must not exceed maximumRingSize');
    ringHash = { minRingSize: min, maxRingSize: max };
  }
  r.ignore('maglevLbConfig', 'leastRequestLbConfig', 'roundRobinLbConfig');
  if (lbPolicy === 'ring_hash' && !ringHash) ringHash = DEFAULT_RING_HASH;

  let localityAware = false;
  const common = r.obj('commonLbConfig');
  if (common) {
    const which = common.oneOf(['zoneAwareLbConfig', 'localityWeightedLbConfig']);
    if (which) {
      common.struct(which);
      localityAware = true;
    }
    common.ignore('healthyPanicThreshold', 'updateMergeWindow', 'ignoreNewHostsUntilFirstHc', 'closeConnectionsOnHostSetChange', 'consistentHashingLbConfig');
    common.done();
  }

  const circuitBreakers = parseCircuitBreakers(r);
  const extensions: Record<string, unknown> = {};

  // Upstream protocol and per-connection limits.
  let protocol: UpstreamProtocol = 'http1';
  let idleTimeoutMs: number | undefined;
  let maxRequestsPerConnection: number | undefined;
  // A map<string, Any>: its keys are extension names, not field names.
  const teo = r.struct('typedExtensionProtocolOptions');
  if (teo) {
    for (const [key, value] of Object.entries(teo)) {
      const keyPath = `${r.at('typedExtensionProtocolOptions')}["${key}"]`;
      if (key !== HTTP_PROTOCOL_OPTIONS) {
        issues.error(keyPath, `unsupported protocol options (supported: ${HTTP_PROTOCOL_OPTIONS})`);
        continue;
      }
      const hpo = FieldReader.of(value, keyPath, issues);
      if (!hpo) continue;
      const t = anyType(hpo);
      if (t !== undefined && t !== HTTP_PROTOCOL_OPTIONS) hpo.error('@type', `must be type.googleapis.com/${HTTP_PROTOCOL_OPTIONS}`);
      const which = hpo.oneOf(['explicitHttpConfig', 'useDownstreamProtocolConfig', 'autoConfig']);
      if (which === 'explicitHttpConfig') {
        const e = hpo.obj('explicitHttpConfig');
        if (e) {
          const p = e.oneOf(['httpProtocolOptions', 'http2ProtocolOptions'], { required: true });
          if (p) e.struct(p);
          protocol = p === 'http2ProtocolOptions' ? 'http2' : 'http1';
          e.done();
        }
      } else if (which === 'useDownstreamProtocolConfig') {
        hpo.struct(which);
        protocol = 'downstream';
      } else if (which === 'autoConfig') {
        hpo.error('autoConfig', 'not supported (needs ALPN to the upstream); use explicitHttpConfig or useDownstreamProtocolConfig');
      }
      const c = hpo.obj('commonHttpProtocolOptions');
      if (c) ({ idleTimeoutMs, maxRequestsPerConnection } = parseCommonHttpOptions(c, { idleTimeoutMs, maxRequestsPerConnection }));
      hpo.ignore('upstreamHttpProtocolOptions');
      hpo.done();
    }
  }
  // Deprecated top-level equivalents, still common in hand-written files.
  if (r.has('http2ProtocolOptions')) {
    if (teo) r.error('http2ProtocolOptions', 'cannot be combined with typedExtensionProtocolOptions');
    r.struct('http2ProtocolOptions');
    protocol = 'http2';
  }
  r.ignore('httpProtocolOptions', 'upstreamHttpProtocolOptions');
  const proto = r.enumOf('protocolSelection', { USE_CONFIGURED_PROTOCOL: 'configured', USE_DOWNSTREAM_PROTOCOL: 'downstream' } as const, ['USE_CONFIGURED_PROTOCOL', 'USE_DOWNSTREAM_PROTOCOL']);
  if (proto === 'downstream') protocol = 'downstream';
  const topCommon = r.obj('commonHttpProtocolOptions');
  if (topCommon) ({ idleTimeoutMs, maxRequestsPerConnection } = parseCommonHttpOptions(topCommon, { idleTimeoutMs, maxRequestsPerConnection }));
  const topMax = r.uint('maxRequestsPerConnection');
  if (topMax !== undefined) maxRequestsPerConnection = topMax;

  // Endpoints.
  let inlineEndpoints: LocalityEndpoints[] | undefined;
  const la = r.raw('loadAssignment');
  if (la !== undefined) {
    const parsed = readClusterLoadAssignment(la, r.at('loadAssignment'), issues, { inline: true });
    if (parsed) {
      if (parsed.clusterName && parsed.clusterName !== name) r.warn('loadAssignment.clusterName', `differs from the cluster name "${name}"; ignored`);
      inlineEndpoints = [...parsed.localities];
    }
    if (discovery === 'eds') r.warn('loadAssignment', 'ignored for an EDS cluster (endpoints come from EDS)');
  } else if (discovery === 'static') {
    r.error('loadAssignment', `required for a ${type} cluster`);
  }

  // Kept for the resilience / mTLS work.
  keepObject(r, 'outlierDetection', extensions);
  keepObjectList(r, 'healthChecks', extensions);
  keepObject(r, 'transportSocket', extensions);
  keepObjectList(r, 'transportSocketMatches', extensions);
  keepObject(r, 'upstreamConnectionOptions', extensions);
  if (circuitBreakers.retryBudget) extensions.retryBudget = circuitBreakers.retryBudget;
  // Linkerd-style retry budget for this cluster (read strictly in envoy-resilience.ts).
  if (meta?.retryBudget !== undefined) extensions.trellisRetryBudget = meta.retryBudget;
  if (circuitBreakers.perHostThresholds) extensions.perHostThresholds = circuitBreakers.perHostThresholds;

  r.ignore('altStatName', 'perConnectionBufferLimitBytes', 'dnsLookupFamily', 'dnsRefreshRate', 'dnsFailureRefreshRate', 'respectDnsTtl', 'dnsResolvers', 'useTcpForDnsLookups', 'cleanupInterval', 'waitForWarmOnInit', 'ignoreHealthOnHostRemoval', 'closeConnectionsOnHostHealthFailure', 'trackClusterStats', 'trackTimeoutBudgets', 'preconnectPolicy');
  r.done();
  if (issues.errors.length > before) return undefined;

  const spec: ClusterSpec = {
    name,
    lbPolicy: lbPolicy ?? DEFAULT_LB_POLICY,
    protocol,
    connectTimeoutMs,
    idleTimeoutMs: idleTimeoutMs ?? DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS,
    maxRequestsPerConnection: maxRequestsPerConnection ?? 0,
    circuitBreakers: circuitBreakers.thresholds,
    ...(ringHash ? { ringHash } : {}),
    localityAware,
    discovery,
    ...(edsServiceName ? { edsServiceName } : {}),
    ...(Object.keys(extensions).length > 0 ? { extensions } : {}),
  };
  return inlineEndpoints && discovery === 'static' ? { spec, inlineEndpoints } : { spec };
}

function parseCommonHttpOptions(c: FieldReader, cur: { idleTimeoutMs: number | undefined; maxRequestsPerConnection: number | undefined }) {
  const idle = c.duration('idleTimeout');
  const max = c.uint('maxRequestsPerConnection');
  c.ignore('maxHeadersCount', 'headersWithUnderscoresAction', 'maxConnectionDuration', 'maxStreamDuration');
  c.done();
  return { idleTimeoutMs: idle ?? cur.idleTimeoutMs, maxRequestsPerConnection: max ?? cur.maxRequestsPerConnection };
}

function parseCircuitBreakers(r: FieldReader): { thresholds: CircuitBreakerSpec; retryBudget?: unknown; perHostThresholds?: unknown } {
  const cb = r.obj('circuitBreakers');
  if (!cb) return { thresholds: DEFAULT_CIRCUIT_BREAKERS };
  let thresholds = DEFAULT_CIRCUIT_BREAKERS;
  let retryBudget: unknown;
  let seenDefault = false;
  for (const t of cb.objList('thresholds')) {
    const prio = t.enumOf('priority', { DEFAULT: 'DEFAULT', HIGH: 'HIGH' } as const, ['DEFAULT', 'HIGH']) ?? 'DEFAULT';
    const spec: CircuitBreakerSpec = {
      maxConnections: t.uint('maxConnections') ?? DEFAULT_CIRCUIT_BREAKERS.maxConnections,
      maxPendingRequests: t.uint('maxPendingRequests') ?? DEFAULT_CIRCUIT_BREAKERS.maxPendingRequests,
      maxRequests: t.uint('maxRequests') ?? DEFAULT_CIRCUIT_BREAKERS.maxRequests,
      maxRetries: t.uint('maxRetries') ?? DEFAULT_CIRCUIT_BREAKERS.maxRetries,
    };
    const budget = t.struct('retryBudget');
    t.ignore('trackRemaining', 'maxConnectionPools');
    t.done();
    if (prio === 'HIGH') {
      t.warn('priority', 'HIGH priority thresholds are ignored (Trellis has one routing priority)');
      continue;
    }
    if (seenDefault) {
      t.error('priority', 'only one DEFAULT threshold is allowed');
      continue;
    }
    seenDefault = true;
    thresholds = spec;
    retryBudget = budget;
  }
  const perHost = cb.list('perHostThresholds');
  cb.done();
  const out: { thresholds: CircuitBreakerSpec; retryBudget?: unknown; perHostThresholds?: unknown } = { thresholds };
  if (retryBudget !== undefined) out.retryBudget = retryBudget;
  if (perHost.length > 0) out.perHostThresholds = perHost.map((p) => p.value);
  return out;
}
