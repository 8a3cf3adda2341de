// The proxy's bootstrap file: Envoy's bootstrap.v3.Bootstrap shape in YAML
// or JSON (a documented subset), plus two Trellis extensions:
// `staticResources.routes` (RouteConfigurations, as if from RDS) and
// `staticResources.endpoints` (ClusterLoadAssignments, as if from EDS), and a
// short form `dynamicResources.ads.address: host:port`.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseDocument } from 'yaml';
import type { NodeInfo, ProxyConfig } from './types.ts';
import { Issues, type FieldError } from './field-error.ts';
import { FieldReader, camelizeDeep, isPlainObject } from './field-reader.ts';
import { parseAddress } from './envoy-common.ts';
import { parseLocality } from './envoy-endpoint.ts';
import { buildProxyConfig } from './envoy.ts';

export const DEFAULT_ADMIN = { address: '127.0.0.1', port: 15000 } as const;

export interface Bootstrap {
  readonly node: NodeInfo;
  readonly admin: { readonly address: string; readonly port: number };
  readonly config: ProxyConfig;
  /** Present when the proxy should take its config from an ADS server. */
  /** `apiType` as Envoy's ApiConfigSource: DELTA_GRPC (incremental, the
   * default) or GRPC (state of the world). `tls`: xDS over mutual TLS with
   * the workload certificate (the control plane's port 15012). */
  readonly dynamicResources?: { readonly ads: { readonly address: string; readonly apiType?: 'GRPC' | 'DELTA_GRPC'; readonly tls?: boolean } };
  /** staticResources.secrets, kept verbatim (camelCased) for the mTLS work. */
  readonly secrets?: readonly unknown[];
}

export type BootstrapResult =
  | { readonly ok: true; readonly bootstrap: Bootstrap; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly errors: readonly FieldError[]; readonly warnings: readonly string[] };

export function loadBootstrapFile(path: string): BootstrapResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { ok: false, errors: [{ path, message: `cannot read the bootstrap file: ${(err as Error).message}` }], warnings: [] };
  }
  return parseBootstrap(text, path);
}

/** Parse bootstrap text (YAML, of which JSON is a subset). `source` names
 * the file in syntax errors: `proxy.yaml:12:5: ...`. */
export function parseBootstrap(text: string, source = 'bootstrap'): BootstrapResult {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, strict: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const firstLine = e.message.split('\n')[0] ?? e.message;
        return { path: pos ? `${source}:${pos.line}:${pos.col}` : source, message: `YAML syntax error: ${firstLine.replace(/ at line \d+, column \d+:?$/, '')}` };
      }),
      warnings: [],
    };
  }
  let json: unknown;
  try {
    json = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, errors: [{ path: source, message: (err as Error).message }], warnings: [] };
  }
  const version = createHash('sha256').update(text).digest('hex').slice(0, 16);
  return bootstrapFromJson(json, version);
}

/** The bootstrap from an already-parsed object. */
export function bootstrapFromJson(json: unknown, version: string): BootstrapResult {
  const issues = new Issues();
  const r = FieldReader.of(json ?? {}, '', issues);
  if (!r) return { ok: false, errors: issues.errors, warnings: [] };

  const node = readNode(r.obj('node'));
  let admin: { address: string; port: number } = { ...DEFAULT_ADMIN };
  const ar = r.obj('admin');
  if (ar) {
    const a = parseAddress(ar.obj('address', { required: true }));
    if (a) admin = a;
    ar.ignore('accessLog', 'accessLogPath', 'profilePath', 'socketOptions', 'ignoreGlobalConnLimit');
    ar.done();
  }

  let listeners: unknown[] = [];
  let clusters: unknown[] = [];
  let routes: unknown[] = [];
  let endpoints: unknown[] = [];
  let secrets: unknown[] | undefined;
  const sr = r.obj('staticResources');
  if (sr) {
    listeners = sr.list('listeners').map((x) => x.value);
    clusters = sr.list('clusters').map((x) => x.value);
    routes = sr.list('routes').map((x) => x.value);
    endpoints = sr.list('endpoints').map((x) => x.value);
    const s = sr.list('secrets');
    if (s.length > 0) {
      secrets = [];
      for (const item of s) {
        if (isPlainObject(item.value)) secrets.push(camelizeDeep(item.value));
        else issues.error(item.path, 'must be an object');
      }
    }
    sr.done();
  }

  let ads: { address: string; apiType?: 'GRPC' | 'DELTA_GRPC'; tls?: boolean } | undefined;
  const dr = r.obj('dynamicResources');
  if (dr) ads = readDynamicResources(dr, clusters);

  r.ignore('layeredRuntime', 'statsConfig', 'statsSinks', 'statsFlushInterval', 'clusterManager', 'overloadManager', 'tracing', 'watchdog', 'watchdogs', 'enableDispatcherStats', 'fatalActions', 'applicationLogConfig');
  r.done();
  if (node.id === '' && ads) issues.error('node.id', 'required when dynamicResources is set (the control plane identifies the proxy by it)');

  const built = buildProxyConfig(
    { version, listeners, routeConfigs: routes, clusters, endpoints },
    {
      references: 'error',
      paths: { listeners: 'staticResources.listeners', routeConfigs: 'staticResources.routes', clusters: 'staticResources.clusters', endpoints: 'staticResources.endpoints' },
    },
  );
  const warnings = [...issues.warnings, ...built.warnings];
  if (!built.ok || issues.errors.length > 0) {
    return { ok: false, errors: [...issues.errors, ...(built.ok ? [] : built.errors)], warnings };
  }
  const bootstrap: Bootstrap = {
    node: { ...node, id: node.id || `trellis-${hostname()}` },
    admin,
    config: built.config,
    ...(ads ? { dynamicResources: { ads } } : {}),
    ...(secrets ? { secrets } : {}),
  };
  return { ok: true, bootstrap, warnings };
}

function readNode(r: FieldReader | undefined): NodeInfo {
  if (!r) return { id: '', cluster: '', locality: { region: '', zone: '', subZone: '' }, metadata: {} };
  const id = r.str('id') ?? '';
  const cluster = r.str('cluster') ?? '';
  const locality = parseLocality(r.obj('locality'));
  const metadata = r.struct('metadata') ?? {};
  r.ignore('userAgentName', 'userAgentVersion', 'userAgentBuildVersion', 'extensions', 'clientFeatures', 'listeningAddresses', 'dynamicParameters');
  r.done();
  return { id, cluster, locality, metadata };
}

const HOST_PORT_RE = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

function readDynamicResources(r: FieldReader, clusters: readonly unknown[]): { address: string; apiType?: 'GRPC' | 'DELTA_GRPC'; tls?: boolean } | undefined {
  let address: string | undefined;
  let apiType: 'GRPC' | 'DELTA_GRPC' | undefined;
  let tls: boolean | undefined;
  const which = r.oneOf(['ads', 'adsConfig'], { required: true });
  if (which === 'ads') {
    const a = r.obj('ads');
    if (a) {
      address = a.str('address', { required: true });
      apiType = a.enumOf('apiType', { GRPC: 'GRPC', DELTA_GRPC: 'DELTA_GRPC' } as const);
      tls = a.bool('tls');
      // Several control-plane replicas: "host:port,host:port" (tried in turn).
      const list = address?.split(',').map((s) => s.trim()) ?? [];
      if (address !== undefined && (list.length === 0 || !list.every(validHostPort))) {
        a.error('address', `must be "host:port" or a comma-separated list of them (got ${JSON.stringify(address)})`);
        address = undefined;
      } else if (address !== undefined) {
        address = list.join(',');
      }
      a.done();
    }
  } else if (which === 'adsConfig') {
    const a = r.obj('adsConfig');
    if (a) {
      apiType = a.enumOf('apiType', { GRPC: 'GRPC', DELTA_GRPC: 'DELTA_GRPC' } as const);
      a.enumOf('transportApiVersion', { V3: 'V3' } as const);
      const services = a.objList('grpcServices', { required: true, nonEmpty: true });
      if (services.length > 1) a.error('grpcServices', 'exactly one gRPC service is supported');
      const g = services[0];
      if (g) {
        const kind = g.oneOf(['envoyGrpc', 'googleGrpc'], { required: true });
        if (kind === 'envoyGrpc') {
          const e = g.obj('envoyGrpc');
          const name = e?.str('clusterName', { required: true });
          e?.ignore('authority', 'retryPolicy', 'maxReceiveMessageLength', 'skipEnvoyHeaders');
          e?.done();
          if (name !== undefined && e) {
            address = staticClusterAddress(clusters, name);
            if (address === undefined) e.error('clusterName', `must name a static cluster with an endpoint (got "${name}")`);
          }
        } else if (kind === 'googleGrpc') {
          const gg = g.obj('googleGrpc');
          const target = gg?.str('targetUri', { required: true });
          gg?.ignore('statPrefix', 'channelCredentials', 'callCredentials', 'channelArgs', 'credentialsFactoryName', 'config', 'perStreamBufferLimitBytes');
          gg?.done();
          if (target !== undefined && gg) {
            const t = target.replace(/^dns:(\/\/\/)?/, '');
            if (validHostPort(t)) address = t;
            else gg.error('targetUri', `must be "host:port" or "dns:///host:port" (got ${JSON.stringify(target)})`);
          }
        }
        g.ignore('timeout', 'initialMetadata', 'retryPolicy');
        g.done();
      }
      a.ignore('setNodeOnFirstMessageOnly', 'rateLimitSettings', 'refreshDelay', 'requestTimeout', 'configValidators');
      a.done();
    }
  }
  for (const key of ['ldsConfig', 'cdsConfig']) {
    const c = r.obj(key);
    if (!c) continue;
    if (c.oneOf(['ads'], { required: true }) === 'ads') c.struct('ads');
    c.ignore('resourceApiVersion', 'initialFetchTimeout');
    c.done();
  }
  r.done();
  if (address === undefined) return undefined;
  return { address, ...(apiType === undefined ? {} : { apiType }), ...(tls ? { tls: true } : {}) };
}

function validHostPort(s: string): boolean {
  const m = HOST_PORT_RE.exec(s);
  return m !== null && Number(m[1]) > 0 && Number(m[1]) <= 65535;
}

/** host:port of the first endpoint of a static cluster written in the file. */
function staticClusterAddress(clusters: readonly unknown[], name: string): string | undefined {
  for (const c of clusters) {
    if (!isPlainObject(c) || c.name !== name) continue;
    const la = c.loadAssignment ?? c.load_assignment;
    if (!isPlainObject(la) || !Array.isArray(la.endpoints)) return undefined;
    for (const le of la.endpoints) {
      const lbs = isPlainObject(le) ? (le.lbEndpoints ?? le.lb_endpoints) : undefined;
      if (!Array.isArray(lbs)) continue;
      for (const lb of lbs) {
        const sa = deepGet(lb, ['endpoint', 'address', ['socketAddress', 'socket_address']]);
        if (!isPlainObject(sa)) continue;
        const host = sa.address;
        const port = sa.portValue ?? sa.port_value;
        if (typeof host === 'string' && (typeof port === 'number' || typeof port === 'string')) return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
      }
    }
  }
  return undefined;
}

function deepGet(v: unknown, keys: readonly (string | readonly string[])[]): unknown {
  let cur = v;
  for (const k of keys) {
    if (!isPlainObject(cur)) return undefined;
    const names = typeof k === 'string' ? [k] : k;
    cur = names.map((n) => (cur as Record<string, unknown>)[n]).find((x) => x !== undefined);
  }
  return cur;
}
