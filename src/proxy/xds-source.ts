// The proxy's config from xDS: an ADS client (xds/client.ts; incremental
// xDS unless `apiType: 'GRPC'` asks for state of the world) subscribed to
// every Listener and Cluster (wildcard), then to the RouteConfigurations and
// ClusterLoadAssignments they name. Each response is checked on arrival
// (config/envoy.ts parses every resource); once nothing referenced is missing
// the whole set goes through buildProxyConfig, and only a config it accepts
// is published (after `check`, which may be asynchronous: plugin code from a
// URL is fetched first, and the client holds the ACK until it settles). A
// response whose resources or resulting config are rejected
// is NACKed with the errors in error_detail, and the proxy keeps serving its
// last good config, as it does while the control plane is unreachable.
//
// Warming: until every referenced RDS / EDS resource has arrived, responses
// that parse are ACKed and the new set is held back (Envoy's warming). After
// `warmingTimeoutMs` (Envoy's initial_fetch_timeout) the set is built without
// the missing pieces, so one dangling name cannot freeze the proxy's config.
//
// On-demand discovery (`onDemand`, delta only): the node asks the control
// plane for its on-demand view (metadata trellis.onDemand), whose outbound
// route table holds only egress hosts. The first request for a host no
// virtual host names calls `resolveHost(routeConfig, host)`: the source
// subscribes to the RouteConfiguration `<routeConfig>/<host>` (its virtual
// host is merged into `<routeConfig>` when the config is built) and the
// promise settles once a config with it is published, once the server says
// it does not exist (removed_resources), or after `onDemand.timeoutMs`. Only
// the ClusterLoadAssignments of clusters that listeners and routes reference
// are subscribed, so a proxy holds endpoints only for what it calls.
import {
  buildProxyConfig,
  formatErrors,
  parseCluster,
  parseClusterLoadAssignment,
  parseListener,
  parseRouteConfiguration,
} from './config/envoy.ts';
import type { Parsed } from './config/envoy.ts';
import type { NodeInfo, ProxyConfig, RouteConfigSpec } from './config/types.ts';
import type { ChannelCredentials } from '@grpc/grpc-js';
import { startAdsClient } from '../xds/client.ts';
import type { AdsClient, ApiType, BackoffOptions, DecodedResource, ResponseVerdict } from '../xds/client.ts';
import type { Json, JsonObject } from '../xds/codec.ts';
import { TypeUrl } from '../xds/protos.ts';

export interface XdsSourceOptions {
  /** host:port of the control plane's xDS port. */
  readonly serverUri: string;
  readonly node: Pick<NodeInfo, 'id'> & Partial<Omit<NodeInfo, 'id'>>;
  readonly credentials?: ChannelCredentials;
  readonly backoff?: BackoffOptions;
  /** Envoy's ApiConfigSource api_type: 'DELTA_GRPC' (default) or 'GRPC' (state of the world). */
  readonly apiType?: ApiType;
  /** How long to hold back a set with missing RDS/EDS resources. Default 15 s. */
  readonly warmingTimeoutMs?: number;
  /** On-demand discovery of hosts (needs DELTA_GRPC). */
  readonly onDemand?: { readonly timeoutMs?: number };
  /** SDS: subscribe to these Secrets (e.g. the mesh trust bundle); `accept`
   * returns an error message to NACK a secret, undefined to ACK it. */
  readonly secrets?: { readonly names: readonly string[]; accept(name: string, secret: JsonObject): string | undefined };
  /** Checks a built config beyond parsing (plugins/preflight.ts: does each
   * plugin's code load?); errors NACK it. A promise (code to fetch) holds the
   * response's ACK/NACK, and the responses after it, until it settles. */
  readonly check?: (config: ProxyConfig) => readonly string[] | Promise<readonly string[]>;
}

export interface XdsSourceState {
  readonly connected: boolean;
  /** The version of the config in use, or null before the first one. */
  readonly configVersion: string | null;
  /** Last ACKed version per resource type ("Listener", "Cluster", ...). */
  readonly ackedVersions: Readonly<Record<string, string | null>>;
  readonly lastNack: { readonly type: string; readonly version: string; readonly message: string; readonly at: string } | null;
  /** RDS / EDS names referenced but not received yet (warming). */
  readonly waitingFor: readonly string[];
  readonly warnings: readonly string[];
  readonly disconnects: number;
  readonly lastError: string | null;
}

export interface XdsSource {
  /** Calls `cb` with every accepted config, at once with the current one if there is one. */
  onConfig(cb: (config: ProxyConfig) => void): () => void;
  current(): ProxyConfig | undefined;
  /** On-demand: ask for the virtual host of `host` on route configuration
   * `routeConfig`; settles when it is in a published config, is known not
   * to exist, or the deadline passed. Undefined when there is nothing to ask
   * (not on-demand, or this host was asked for before). */
  resolveHost(routeConfig: string, host: string): Promise<void> | undefined;
  state(): XdsSourceState;
  close(): void;
}

interface Resources {
  listeners: ReadonlyMap<string, JsonObject>;
  routes: ReadonlyMap<string, JsonObject>;
  clusters: ReadonlyMap<string, JsonObject>;
  endpoints: ReadonlyMap<string, JsonObject>;
  versions: Readonly<Record<string, string>>;
}

const shortType = (typeUrl: string): string => typeUrl.slice(typeUrl.lastIndexOf('.') + 1);

export function startXdsSource(opts: XdsSourceOptions): XdsSource {
  let accepted: Resources = { listeners: new Map(), routes: new Map(), clusters: new Map(), endpoints: new Map(), versions: {} };
  let config: ProxyConfig | undefined;
  let warnings: readonly string[] = [];
  let lastNack: XdsSourceState['lastNack'] = null;
  let warmingTimer: NodeJS.Timeout | undefined;
  const warmingTimeoutMs = opts.warmingTimeoutMs ?? 15_000;
  const callbacks = new Set<(c: ProxyConfig) => void>();
  const onDemand = opts.onDemand !== undefined;
  /** On-demand route names asked for: pending ones have waiters. */
  const asked = new Map<string, { waiters: (() => void)[]; timer: NodeJS.Timeout | undefined }>();
  /** On-demand route names the server said do not exist. */
  const absent = new Set<string>();

  /** RDS names the listeners need and EDS names the clusters need. */
  function dependencies(r: Resources): { routes: string[]; endpoints: string[] } {
    const routes = new Set<string>();
    for (const l of r.listeners.values()) {
      const p = parseListener(l);
      if (!p.ok) continue;
      const inline = new Set(p.value.inlineRoutes.map((rc) => rc.name));
      for (const chain of p.value.spec.filterChains) {
        if (chain.http !== undefined && !inline.has(chain.http.routeConfigName)) routes.add(chain.http.routeConfigName);
      }
    }
    for (const name of asked.keys()) if (!absent.has(name)) routes.add(name);
    const referenced = onDemand ? referencedClusters(r) : undefined;
    const endpoints = new Set<string>();
    for (const c of r.clusters.values()) {
      const p = parseCluster(c);
      if (p.ok && p.value.spec.discovery === 'eds' && (referenced === undefined || referenced.has(p.value.spec.name))) endpoints.add(p.value.spec.edsServiceName ?? p.value.spec.name);
    }
    return { routes: [...routes].sort(), endpoints: [...endpoints].sort() };
  }

  /** Clusters named by listeners (TCP, inline routes) and route configurations. */
  function referencedClusters(r: Resources): Set<string> {
    const out = new Set<string>();
    const fromRoutes = (rc: RouteConfigSpec): void => {
      for (const vh of rc.virtualHosts) for (const rt of vh.routes) if (rt.action.kind === 'route') for (const wc of rt.action.clusters) out.add(wc.name);
    };
    for (const l of r.listeners.values()) {
      const p = parseListener(l);
      if (!p.ok) continue;
      p.value.inlineRoutes.forEach(fromRoutes);
      for (const chain of p.value.spec.filterChains) for (const wc of chain.tcp?.clusters ?? []) out.add(wc.name);
    }
    for (const rc of r.routes.values()) {
      const p = parseRouteConfiguration(rc);
      if (p.ok) fromRoutes(p.value);
    }
    return out;
  }

  function onResponse(typeUrl: string, version: string, resources: readonly DecodedResource[], removed: readonly string[]): ResponseVerdict | Promise<ResponseVerdict> {
    if (typeUrl === TypeUrl.secret && opts.secrets) {
      const errs = resources.map((r) => opts.secrets!.accept(r.name, r.json)).filter((e): e is string => e !== undefined);
      if (errs.length > 0) return reject(typeUrl, version, errs.join('\n'));
      lastNackClear(typeUrl);
      return { ok: true };
    }
    // 1. Every resource must parse on its own.
    const parse: ((json: unknown, path: string) => Parsed<unknown>) | undefined = {
      [TypeUrl.listener]: parseListener,
      [TypeUrl.route]: parseRouteConfiguration,
      [TypeUrl.cluster]: parseCluster,
      [TypeUrl.endpoint]: parseClusterLoadAssignment,
    }[typeUrl];
    if (parse === undefined) return { ok: false, message: `unsupported resource type ${typeUrl}` };
    const errors: string[] = [];
    for (const r of resources) {
      const p = parse(r.json, `${shortType(typeUrl)}[${r.name}]`);
      if (!p.ok) errors.push(formatErrors(p.errors));
    }
    if (errors.length > 0) return reject(typeUrl, version, errors.join('\n'));

    // 2. The candidate set: LDS and CDS replace (state of the world), RDS and
    // EDS merge (a delta response's removals go).
    const byName = new Map(resources.map((r) => [r.name, r.json] as const));
    if (typeUrl === TypeUrl.route) {
      for (const n of removed) if (asked.has(n)) absent.add(n);
      for (const n of byName.keys()) absent.delete(n);
    }
    const next: Resources = { ...accepted, versions: { ...accepted.versions, [shortType(typeUrl)]: version } };
    if (typeUrl === TypeUrl.listener) next.listeners = byName;
    else if (typeUrl === TypeUrl.cluster) next.clusters = byName;
    else if (typeUrl === TypeUrl.route) next.routes = without(new Map([...accepted.routes, ...byName]), removed);
    else next.endpoints = without(new Map([...accepted.endpoints, ...byName]), removed);
    const deps = dependencies(next);
    next.routes = pick(next.routes, deps.routes);
    next.endpoints = pick(next.endpoints, deps.endpoints);

    // 3. Complete: build and publish, or NACK and keep the last good config.
    // (The first config waits for both LDS and CDS: with on-demand scoping
    // the clusters alone can look complete.)
    const complete = next.versions.Listener !== undefined && next.versions.Cluster !== undefined && deps.routes.every((n) => next.routes.has(n)) && deps.endpoints.every((n) => next.endpoints.has(n));
    if (!complete) {
      accepted = next;
      armWarmingTimer();
      return accept(typeUrl, deps, false);
    }
    const built = build(next);
    if (!built.ok) return reject(typeUrl, version, formatErrors(built.errors));
    const finish = (problems: readonly string[]): ResponseVerdict => {
      if (problems.length > 0) return reject(typeUrl, version, problems.join('\n'));
      accepted = next;
      publish(built.config, built.warnings);
      return accept(typeUrl, deps, true);
    };
    const problems = opts.check?.(built.config) ?? [];
    // The client handles no other response while this one's check is pending, so `accepted` is unchanged.
    return Array.isArray(problems) ? finish(problems) : (problems as Promise<readonly string[]>).then(finish, (err: Error) => finish([`checking the config: ${err.message}`]));
  }

  function accept(typeUrl: string, deps: { routes: string[]; endpoints: string[] }, complete: boolean): ResponseVerdict {
    lastNackClear(typeUrl);
    if (complete) settleAsked();
    client.subscribe(TypeUrl.route, deps.routes);
    client.subscribe(TypeUrl.endpoint, deps.endpoints);
    return { ok: true };
  }

  function build(r: Resources): ReturnType<typeof buildProxyConfig> {
    return buildProxyConfig(
      {
        version: configVersion(r.versions),
        listeners: [...r.listeners.values()],
        routeConfigs: mergeOnDemand(r.routes),
        clusters: [...r.clusters.values()],
        endpoints: [...r.endpoints.values()],
      },
      { references: 'warn' },
    );
  }

  function publish(c: ProxyConfig, w: readonly string[]): void {
    if (warmingTimer !== undefined) clearTimeout(warmingTimer);
    warmingTimer = undefined;
    config = c;
    warnings = w;
    for (const cb of [...callbacks]) cb(c);
    settleAsked();
  }

  /** On-demand route configurations go into their base's virtual hosts. */
  function mergeOnDemand(routes: ReadonlyMap<string, JsonObject>): JsonObject[] {
    if (asked.size === 0) return [...routes.values()];
    const out = new Map<string, JsonObject>();
    for (const [name, rc] of routes) if (!asked.has(name)) out.set(name, rc);
    for (const [name, rc] of routes) {
      if (!asked.has(name)) continue;
      const baseName = name.slice(0, name.indexOf('/'));
      const base = out.get(baseName);
      if (base === undefined) continue;
      const have = new Set(((base.virtualHosts ?? []) as JsonObject[]).map((v) => v.name));
      const add = ((rc.virtualHosts ?? []) as JsonObject[]).filter((v) => !have.has(v.name));
      out.set(baseName, { ...base, virtualHosts: [...add, ...((base.virtualHosts ?? []) as JsonObject[])] });
    }
    return [...out.values()];
  }

  /** Wakes the requests held for hosts that are now in the config or known absent. */
  function settleAsked(): void {
    for (const [name, a] of asked) {
      if (a.waiters.length === 0) continue;
      if (accepted.routes.has(name) || absent.has(name)) wake(name);
    }
  }

  function wake(name: string): void {
    const a = asked.get(name);
    if (a === undefined) return;
    if (a.timer !== undefined) clearTimeout(a.timer);
    a.timer = undefined;
    const w = a.waiters;
    a.waiters = [];
    for (const f of w) f();
  }

  function resolveHost(routeConfig: string, host: string): Promise<void> | undefined {
    if (!onDemand || host === '') return undefined;
    const name = `${routeConfig}/${host.toLowerCase()}`;
    const a = asked.get(name);
    if (a !== undefined && a.waiters.length === 0) return undefined; // asked before: settled
    return new Promise<void>((resolve) => {
      if (a !== undefined) {
        a.waiters.push(resolve);
        return;
      }
      const entry = { waiters: [resolve], timer: undefined as NodeJS.Timeout | undefined };
      entry.timer = setTimeout(() => wake(name), opts.onDemand?.timeoutMs ?? 5000);
      entry.timer.unref?.();
      asked.set(name, entry);
      client.subscribe(TypeUrl.route, dependencies(accepted).routes);
    });
  }

  /** Builds the held-back set without its missing pieces once warming has taken too long. */
  function armWarmingTimer(): void {
    if (warmingTimer !== undefined) return;
    warmingTimer = setTimeout(() => {
      warmingTimer = undefined;
      const built = build(accepted);
      const missing = missingNames(accepted);
      if (missing.length === 0) return;
      if (built.ok) publish(built.config, [`built after ${warmingTimeoutMs} ms of warming without ${missing.join(', ')}`, ...built.warnings]);
      else warnings = [`the warming set does not build: ${formatErrors(built.errors)}`];
    }, warmingTimeoutMs);
    warmingTimer.unref?.();
  }

  function missingNames(r: Resources): string[] {
    const deps = dependencies(r);
    return [
      ...deps.routes.filter((n) => !r.routes.has(n)).map((n) => `RouteConfiguration/${n}`),
      ...deps.endpoints.filter((n) => !r.endpoints.has(n)).map((n) => `ClusterLoadAssignment/${n}`),
    ];
  }

  function reject(typeUrl: string, version: string, message: string): ResponseVerdict {
    lastNack = { type: shortType(typeUrl), version, message, at: new Date().toISOString() };
    return { ok: false, message };
  }
  function lastNackClear(typeUrl: string): void {
    if (lastNack?.type === shortType(typeUrl)) lastNack = null;
  }

  const node = opts.node;
  const client: AdsClient = startAdsClient({
    serverUri: opts.serverUri,
    node: {
      id: node.id,
      cluster: node.cluster ?? '',
      locality: node.locality ?? { region: '', zone: '', subZone: '' },
      metadata: (onDemand ? withOnDemand(node.metadata ?? {}) : (node.metadata ?? {})) as { [key: string]: Json },
      userAgentName: 'trellis-proxy',
    },
    ...(opts.credentials === undefined ? {} : { credentials: opts.credentials }),
    ...(opts.backoff === undefined ? {} : { backoff: opts.backoff }),
    apiType: opts.apiType ?? 'DELTA_GRPC',
    onResponse,
  });
  client.subscribe(TypeUrl.cluster, '*');
  client.subscribe(TypeUrl.listener, '*');
  if (opts.secrets && opts.secrets.names.length > 0) client.subscribe(TypeUrl.secret, opts.secrets.names);

  return {
    onConfig(cb) {
      callbacks.add(cb);
      if (config !== undefined) cb(config);
      return () => callbacks.delete(cb);
    },
    current: () => config,
    resolveHost,
    state() {
      const s = client.state();
      const ackedVersions: Record<string, string | null> = {};
      for (const [t, ts] of Object.entries(s.perType)) ackedVersions[shortType(t)] = ts.ackedVersion;
      return {
        connected: s.connected,
        configVersion: config?.version ?? null,
        ackedVersions,
        lastNack,
        waitingFor: missingNames(accepted),
        warnings,
        disconnects: s.disconnects,
        lastError: s.lastError,
      };
    },
    close() {
      if (warmingTimer !== undefined) clearTimeout(warmingTimer);
      for (const name of asked.keys()) wake(name);
      client.close();
    },
  };
}

/** metadata.trellis.onDemand = true: the control plane serves the on-demand view. */
function withOnDemand(metadata: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const t = metadata.trellis;
  return { ...metadata, trellis: { ...(typeof t === 'object' && t !== null && !Array.isArray(t) ? t : {}), onDemand: true } };
}

function without(m: Map<string, JsonObject>, names: readonly string[]): Map<string, JsonObject> {
  for (const n of names) m.delete(n);
  return m;
}

function pick(m: ReadonlyMap<string, JsonObject>, names: readonly string[]): Map<string, JsonObject> {
  const out = new Map<string, JsonObject>();
  for (const n of names) {
    const v = m.get(n);
    if (v !== undefined) out.set(n, v);
  }
  return out;
}

function configVersion(v: Readonly<Record<string, string>>): string {
  const part = (label: string, t: string): string => `${label}=${v[t] ?? '-'}`;
  return [part('lds', 'Listener'), part('rds', 'RouteConfiguration'), part('cds', 'Cluster'), part('eds', 'ClusterLoadAssignment')].join(',');
}
