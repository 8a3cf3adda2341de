// The whole proxy: listeners, the active config's runtime, the admin
// listener, config swaps and graceful shutdown.
//
// Config swap (applyConfig) is atomic: the new route tables, cluster manager
// (pools reused through the shared pool registry) and HTTP stacks are built
// and checked first, new or moved listeners are bound, and only then is the
// single `runtime` reference switched. Anything that fails leaves the last
// good config serving. Open connections keep working and use the new routes
// from their next request; listeners that disappeared (or moved to another
// address) stop accepting and drain.
import type { NodeInfo, ProxyConfig } from './config/types.ts';
import type { ServeConnection } from './connection.ts';
import { createClusterManager, type ClusterManager, type ClusterManagerDeps } from './cluster-manager.ts';
import { createPoolRegistry, type CreatePool, type PoolRegistry } from './pool-registry.ts';
import { defaultPoolFactory } from './default-pool-factory.ts';
import { compileRouteTables } from './route-match.ts';
import type { RouteTable } from './route-match.ts';
import { createRouter } from './router.ts';
import { serveHttp1, createHttp1Server } from './http1/server.ts';
import { createHttp2Server } from './http2/server.ts';
import { ResetGuard } from './http2/reset-guard.ts';
import { Listener, type ListenerDeps } from './listener.ts';
import { createConnectionHandler, buildHttpStacks, buildTcpAuthz, codecsByOptions, type ConnectionDeps, type Log, type Runtime } from './stack.ts';
import { ListenerSeries } from './layers/metrics.ts';
import { createStaticPicker } from './static-pick.ts';
import { createProxyStats, type ProxyStats } from './proxy-stats.ts';
import { startAdmin, type AdminServer } from './admin.ts';
import { randomBytes } from 'node:crypto';
import { adminTokenOf } from './telemetry/identity.ts';
import type { ClusterSnapshot } from './cluster.ts';
import { Resilience, type ResilienceOptions } from './resilience.ts';
import { Telemetry, loadTracer, type TelemetryConfig } from './telemetry/telemetry.ts';
import type { ProxyTracer } from './telemetry/tracing.ts';
import { Security, type SecurityOptions } from './layers/security.ts';
import { Plugins } from './plugins/plugins.ts';
import { appHealthHandler, type AppProber } from './app-health.ts';

export const DEFAULT_DRAIN_MS = 5_000;

export interface StartProxyOptions {
  readonly config: ProxyConfig;
  readonly node: NodeInfo;
  /** Admin listener address; `false` for none (tests). Default 127.0.0.1:15000. */
  readonly admin?: { readonly address: string; readonly port: number } | false;
  /** The admin listener's bearer token for /tap and state changes; default
   * the node's `trellis.adminToken`, else a random one (proxy/admin.ts). */
  readonly adminToken?: string;
  readonly stats?: ProxyStats;
  readonly log?: Log;
  /** Upstream pool factory (tests inject fakes). */
  readonly createPool?: CreatePool;
  readonly detectTimeoutMs?: number;
  readonly http1?: ServeConnection;
  readonly http2?: ServeConnection;
  readonly terminateTls?: ConnectionDeps['terminateTls'];
  readonly getOriginalDst?: ListenerDeps['getOriginalDst'];
  /** How long a removed listener's connections may drain after a swap. */
  readonly listenerDrainMs?: number;
  /** Retry budget, global rate limit, health probe overrides (resilience.ts). */
  readonly resilience?: Omit<ResilienceOptions, 'registry' | 'log'>;
  /** TLS origination per cluster endpoint (mTLS: tls/mesh-tls.ts); plaintext when absent. */
  readonly upstreamTls?: ClusterManagerDeps['tls'];
  /** The workload identity, shown at GET /identity on the admin listener and renewed by POST /identity/renew. */
  readonly identity?: { describe(): unknown; rotateNow(): Promise<{ ok: true } | { ok: false; code: string; message: string }> };
  /** Tracing, access log and series bounds (telemetry/telemetry.ts); the
   * standard metrics are always on. */
  readonly telemetry?: TelemetryConfig;
  /** JWKS trust and refresh for JWT authentication (layers/security.ts). */
  readonly security?: SecurityOptions;
  /** On-demand discovery (XdsSource.resolveHost): asked when a request's
   * host matches no virtual host of its own; the request waits for it. */
  readonly onDemand?: (routeConfigName: string, host: string) => Promise<void> | undefined;
  /** The app's probes the admin answers for the kubelet at /app-health/... (app-health.ts). */
  readonly appProbers?: Map<string, AppProber>;
}

/** `portInUse`: the only failures were ports another socket holds (a caller
 * that picked the ports may pick others and try again). */
export type ApplyResult = { ok: true; version: string } | { ok: false; errors: string[]; portInUse?: boolean };
export type StartResult = { ok: true; proxy: Proxy } | { ok: false; errors: string[]; portInUse?: boolean };

interface Active {
  readonly runtime: Runtime;
  readonly clusters: ClusterManager;
  /** The router of this config (on-demand discovery continues held requests on it). */
  readonly router: ReturnType<typeof createRouter>;
}

/** Start a proxy on `config`. Fails (nothing left running) when the config
 * is invalid or a listener cannot bind. */
export async function startProxy(opts: StartProxyOptions): Promise<StartResult> {
  const proxy = new Proxy(opts, await loadTracer(opts.node, opts.telemetry?.tracing));
  const r = await proxy.applyConfig(opts.config);
  if (!r.ok) {
    await proxy.stop({ drainMs: 0 });
    return r;
  }
  if (opts.admin !== false) {
    const a = opts.admin ?? { address: '127.0.0.1', port: 15000 };
    const ar = await proxy.startAdmin(a.address, a.port);
    if (!ar.ok) {
      await proxy.stop({ drainMs: 0 });
      return { ok: false, errors: [ar.error], ...(ar.code === 'EADDRINUSE' ? { portInUse: true } : {}) };
    }
  }
  return { ok: true, proxy };
}

export class Proxy {
  readonly stats: ProxyStats;
  /** What the admin listener's /tap and state changes require (Bearer). */
  readonly adminToken: string;
  private readonly opts: StartProxyOptions;
  private readonly log: Log;
  private readonly pools: PoolRegistry;
  private readonly listeners = new Map<string, Listener>();
  private readonly series = new Map<string, ListenerSeries>();
  private readonly retiring = new Set<Promise<void>>();
  private readonly serve: ReturnType<typeof createConnectionHandler>;
  private active: Active | undefined;
  private admin: AdminServer | undefined;
  private draining = false;
  private stopped: Promise<void> | undefined;
  /** Retries, mirroring, faults, rate limits, outlier detection, health checks. */
  readonly resilience: Resilience;
  readonly telemetry: Telemetry;
  /** JWT authentication and RBAC filters, the JWKS cache. */
  readonly security: Security;
  /** TypeScript and proxy-wasm plugins (envoy.filters.http.wasm filters). */
  readonly plugins: Plugins;
  /** Serialises applyConfig calls. */
  private applying: Promise<unknown> = Promise.resolve();

  constructor(opts: StartProxyOptions, tracer?: ProxyTracer) {
    this.opts = opts;
    this.adminToken = opts.adminToken ?? adminTokenOf(opts.node) ?? randomBytes(24).toString('base64url');
    this.stats = opts.stats ?? createProxyStats();
    this.log = opts.log ?? (() => {});
    this.resilience = new Resilience({ ...opts.resilience, registry: this.stats.registry, log: this.log });
    this.telemetry = new Telemetry({ ...opts.telemetry, tracer, registry: this.stats.registry, node: opts.node });
    this.security = new Security({ ...opts.security, registry: this.stats.registry, log: this.log });
    this.plugins = new Plugins({ registry: this.stats.registry, log: this.log, cluster: (name) => this.active?.clusters.get(name)?.dispatch });
    this.pools = createPoolRegistry(opts.createPool ?? defaultPoolFactory);
    // One HTTP/2 rapid-reset bound per client address across every listener
    // and connection of this proxy (http2/reset-guard.ts).
    const resetTrips = this.stats.registry.counter('trellis_downstream_h2_reset_flood_total', 'Client addresses sent GOAWAY(ENHANCE_YOUR_CALM) and refused for a cool-down after cancelling too many HTTP/2 streams.', []);
    const resetGuard = new ResetGuard({
      onTrip: (address, cooldownMs) => {
        resetTrips.labels().inc();
        this.log('h2_reset_flood', { remote: address, cooldownMs });
      },
    });
    this.serve = createConnectionHandler({
      current: () => this.active!.runtime,
      stats: this.stats,
      log: this.log,
      // HttpConnectionManager idle timeout -> the codec's idle timeout
      // (HTTP/1: keep-alive idle close; HTTP/2: GOAWAY when idle).
      http1: opts.http1 ? () => opts.http1! : codecsByOptions((o) => (Object.keys(o).length === 0 ? serveHttp1 : createHttp1Server(o))),
      http2: opts.http2 ? () => opts.http2! : codecsByOptions((o) => createHttp2Server({ ...o, resetGuard })),
      ...(opts.terminateTls ? { terminateTls: opts.terminateTls } : {}),
      ...(opts.upstreamTls ? { upstreamTls: opts.upstreamTls } : {}),
      onTcpClosed: (r) => this.telemetry.tcpClosed(r),
    });
    this.stats.configVersion.onCollect((g) => {
      g.reset();
      if (this.active) g.labels(this.active.runtime.config.version).set(1);
    });
    const pc = this.stats.poolConnections;
    pc.onCollect(() => this.collectPoolStats());
  }

  /** Listener name -> bound port. */
  get ports(): ReadonlyMap<string, number> {
    const m = new Map<string, number>();
    for (const [n, l] of this.listeners) m.set(n, l.port);
    return m;
  }

  get adminPort(): number | undefined {
    return this.admin?.port;
  }

  get version(): string | undefined {
    return this.active?.runtime.config.version;
  }

  get config(): ProxyConfig | undefined {
    return this.active?.runtime.config;
  }

  ready(): { ready: boolean; reason: string } {
    if (this.draining) return { ready: false, reason: 'draining' };
    if (!this.active) return { ready: false, reason: 'no config loaded' };
    return { ready: true, reason: `ready, config version ${this.active.runtime.config.version}` };
  }

  clusters(): ClusterSnapshot[] {
    return this.active?.clusters.clusters() ?? [];
  }

  async startAdmin(address: string, port: number): Promise<{ ok: true; port: number } | { ok: false; error: string; code?: string }> {
    const r = await startAdmin(address, port, {
      ready: () => this.ready(),
      config: () => this.config,
      listeners: () => Object.fromEntries(this.ports),
      clusters: () => this.clusters(),
      registry: this.stats.registry,
      token: this.adminToken,
      handle: (req, res) => {
        const id = this.opts.identity;
        const path = (req.url ?? '').split('?')[0];
        if (id && req.method === 'GET' && path === '/identity') {
          const body = `${JSON.stringify(id.describe(), null, 2)}\n`;
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
          res.end(body);
          return true;
        }
        // Renew the certificate now (`trellis identity renew`): 200 with the new identity, 502 with the CA's error.
        if (id && req.method === 'POST' && path === '/identity/renew') {
          req.resume();
          void id.rotateNow().then((r) => {
            const body = `${JSON.stringify(r.ok ? id.describe() : { error: { code: r.code, message: r.message } }, null, 2)}\n`;
            res.writeHead(r.ok ? 200 : 502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
            res.end(body);
          });
          return true;
        }
        if (this.opts.appProbers && this.opts.appProbers.size > 0 && appHealthHandler(this.opts.appProbers)(req, res)) return true;
        return this.telemetry.handleAdmin(req, res);
      },
    });
    if (!r.ok) return r;
    this.admin = r.admin;
    this.log('admin_listening', { address, port: r.admin.port });
    return { ok: true, port: r.admin.port };
  }

  /** Replace the active config atomically; a rejected config changes nothing. */
  applyConfig(config: ProxyConfig): Promise<ApplyResult> {
    const p = this.applying.then(() => this.doApply(config));
    this.applying = p.catch(() => {});
    return p;
  }

  private async doApply(config: ProxyConfig): Promise<ApplyResult> {
    if (this.draining) return { ok: false, errors: ['the proxy is shutting down'] };
    const errors = checkConfig(config);
    const plan = this.resilience.compile(config);
    if (!plan.ok) errors.push(...plan.errors);
    if (errors.length > 0 || !plan.ok) return this.reject(config, errors);

    // 1. Build everything the new version serves with.
    let tables: Map<string, RouteTable>;
    let clusters: ClusterManager;
    try {
      tables = compileRouteTables(config);
    } catch (err) {
      return this.reject(config, [`routeConfigs: ${(err as Error).message}`]);
    }
    try {
      clusters = createClusterManager(config, { node: this.opts.node, pools: this.pools, observe: this.resilience.observe, ...(this.opts.upstreamTls ? { tls: this.opts.upstreamTls } : {}) });
    } catch (err) {
      return this.reject(config, [`clusters: ${(err as Error).message}`]);
    }
    try {
      await this.telemetry.prepare(config);
    } catch (err) {
      clusters.retire();
      return this.reject(config, [`tracing: ${(err as Error).message}`]);
    }
    const pluginErrors = await this.plugins.prepare(config);
    if (pluginErrors.length > 0) {
      clusters.retire();
      return this.reject(config, pluginErrors);
    }
    const onDemand = this.opts.onDemand;
    const router = createRouter({
      routeConfig: (name) => tables.get(name),
      clusters: this.resilience.wrapClusters(plan.plan, config, clusters),
      ...(onDemand === undefined
        ? {}
        : {
            // The host is asked for; the request continues on the router of
            // the config in use once that settles (and any apply in flight is done).
            onDemand: (name: string, authority: string) => onDemand(name, authority)?.then(() => this.applying).then(() => this.active?.router ?? router),
          }),
    });
    const staticPick = createStaticPicker(config);
    const runtime: Runtime = {
      config,
      httpStack: buildHttpStacks(config, { stats: this.stats, router, series: (l) => this.seriesFor(l.name, l.direction), telemetry: (l, hcm) => this.telemetry.layer(l.direction, config, hcm, this.opts.upstreamTls), httpFilters: (hcm) => (hcm.httpFilters ?? []).map((f) => (f.kind === 'plugin' ? this.plugins.layer(f.plugin) : this.security.layer(f))) }),
      // Opaque TCP picks through the cluster's balancer too (health, ejection, policy).
      pickEndpoint: (name) => clusters.get(name)?.pickTcp() ?? staticPick(name),
      tcpAuthz: buildTcpAuthz(config, (chain) => this.security.connectionAuthz(chain)),
    };

    // 2. Bind listeners that are new or moved; nothing is switched yet.
    const fresh: Listener[] = [];
    const replaced: Listener[] = [];
    const bindErrors: string[] = [];
    let allInUse = true;
    for (const spec of config.listeners) {
      const old = this.listeners.get(spec.name);
      if (old && old.spec.address === spec.address && old.spec.port === spec.port) continue;
      const l = new Listener(spec, this.listenerDeps());
      let r = await l.listen();
      if (!r.ok && r.code === 'EADDRINUSE' && old && spec.port !== 0 && old.port === spec.port) {
        // Same port, another address: the old socket must go first.
        old.drain();
        r = await l.listen();
      }
      if (!r.ok) {
        bindErrors.push(r.error);
        if (r.code !== 'EADDRINUSE') allInUse = false;
      } else {
        fresh.push(l);
        if (old) replaced.push(old);
      }
    }
    if (bindErrors.length > 0) {
      for (const l of fresh) void l.closeAll(0);
      clusters.retire();
      this.plugins.activate(this.active?.runtime.config ?? config);
      return this.reject(config, bindErrors, allInUse);
    }

    // 3. Switch.
    const previous = this.active;
    this.active = { runtime, clusters, router };
    this.resilience.activate(plan.plan, config, clusters);
    this.security.activate(config);
    this.plugins.activate(config);
    const names = new Set(config.listeners.map((l) => l.name));
    for (const spec of config.listeners) this.listeners.get(spec.name)?.update(spec);
    for (const l of fresh) this.listeners.set(l.name, l);
    const gone = [...replaced];
    for (const [name, l] of this.listeners) {
      if (!names.has(name)) {
        gone.push(l);
        this.listeners.delete(name);
      }
    }
    for (const l of gone) this.retireListener(l);
    previous?.clusters.retire();
    void this.telemetry.retire(config);

    this.stats.configUpdates.labels('applied').inc();
    this.log('config_applied', {
      version: config.version,
      listeners: Object.fromEntries(this.ports),
      clusters: config.clusters.size,
      routeConfigs: config.routeConfigs.size,
    });
    return { ok: true, version: config.version };
  }

  private reject(config: ProxyConfig, errors: string[], portInUse = false): ApplyResult {
    this.stats.configUpdates.labels('rejected').inc();
    this.log('config_rejected', { version: config.version, errors, serving: this.active?.runtime.config.version ?? null });
    return { ok: false, errors, ...(portInUse ? { portInUse } : {}) };
  }

  private retireListener(l: Listener): void {
    this.log('listener_draining', { listener: l.name, port: l.port });
    const p = l.closeAll(this.opts.listenerDrainMs ?? DEFAULT_DRAIN_MS).finally(() => {
      this.retiring.delete(p);
      this.log('listener_closed', { listener: l.name });
    });
    this.retiring.add(p);
  }

  private listenerDeps(): ListenerDeps {
    return {
      serve: this.serve,
      stats: this.stats,
      log: this.log,
      ...(this.opts.detectTimeoutMs === undefined ? {} : { detectTimeoutMs: this.opts.detectTimeoutMs }),
      ...(this.opts.getOriginalDst ? { getOriginalDst: this.opts.getOriginalDst } : {}),
    };
  }

  private seriesFor(listener: string, direction: 'inbound' | 'outbound' | 'gateway'): ListenerSeries {
    const key = `${listener}\u0000${direction}`;
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = new ListenerSeries({ stats: this.stats, listener, direction })));
    return s;
  }

  private collectPoolStats(): void {
    const { poolConnections, poolActive, poolPending } = this.stats;
    poolConnections.reset();
    poolActive.reset();
    poolPending.reset();
    for (const c of this.clusters()) {
      let conns = 0;
      let active = 0;
      let pending = 0;
      for (const ep of c.endpoints) {
        for (const s of Object.values(ep.pools)) {
          if (!s) continue;
          conns += s.connections;
          active += s.active;
          pending += s.pending;
        }
      }
      poolConnections.labels(c.name).set(conns);
      poolActive.labels(c.name).set(active);
      poolPending.labels(c.name).set(pending);
    }
  }

  /**
   * Graceful shutdown: /ready turns 503, listeners stop accepting, every
   * connection is asked to drain (HTTP/1: `connection: close` after the
   * in-flight response; HTTP/2: GOAWAY; opaque TCP keeps flowing), and
   * whatever is still open at `drainMs` is destroyed. Then upstream pools
   * and the admin listener close. Idempotent.
   */
  stop(opts: { drainMs?: number } = {}): Promise<void> {
    this.stopped ??= this.doStop(opts.drainMs ?? DEFAULT_DRAIN_MS);
    return this.stopped;
  }

  private async doStop(drainMs: number): Promise<void> {
    this.draining = true;
    await this.applying;
    const deadline = performance.now() + drainMs;
    this.log('draining', { drainMs, connections: [...this.listeners.values()].reduce((n, l) => n + l.connectionCount, 0) });
    await Promise.all([...this.listeners.values()].map((l) => l.closeAll(drainMs)));
    await Promise.all([...this.retiring]);
    const left = Math.max(0, deadline - performance.now());
    const closed = this.pools.close();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((r) => (timer = setTimeout(r, left)))]);
    clearTimeout(timer);
    this.pools.destroy();
    this.resilience.stop();
    this.active?.clusters.retire();
    await this.admin?.close();
    await this.telemetry.close();
    this.security.close();
    this.plugins.close();
    this.log('stopped', {});
  }
}

/** Structural checks the type system cannot make: every referenced route
 * configuration and cluster exists, names are unique, each chain has one
 * terminal filter. Field paths name the offending value. */
export function checkConfig(config: ProxyConfig): string[] {
  const errors: string[] = [];
  const seen = new Set<string>();
  config.listeners.forEach((l, i) => {
    const at = `listeners[${i}] (${l.name})`;
    if (seen.has(l.name)) errors.push(`${at}.name: duplicate listener name "${l.name}"`);
    seen.add(l.name);
    if (l.filterChains.length === 0) errors.push(`${at}.filterChains: at least one filter chain is required`);
    l.filterChains.forEach((c, j) => {
      const cat = `${at}.filterChains[${j}] (${c.name})`;
      if ((c.http ? 1 : 0) + (c.tcp ? 1 : 0) !== 1) errors.push(`${cat}: exactly one of http / tcp is required`);
      if (c.http && !config.routeConfigs.has(c.http.routeConfigName)) {
        errors.push(`${cat}.http.routeConfigName: route configuration "${c.http.routeConfigName}" is not defined`);
      }
      c.tcp?.clusters.forEach((wc, k) => {
        if (!config.clusters.has(wc.name)) errors.push(`${cat}.tcp.clusters[${k}].name: cluster "${wc.name}" is not defined`);
      });
      if (c.tcp && c.tcp.clusters.length === 0) errors.push(`${cat}.tcp.clusters: at least one cluster is required`);
    });
  });
  const ports = new Map<string, string>();
  for (const l of config.listeners) {
    if (l.port === 0) continue;
    const key = `${l.address}:${l.port}`;
    const other = ports.get(key);
    if (other) errors.push(`listeners (${l.name}).port: ${key} is also used by listener "${other}"`);
    ports.set(key, l.name);
  }
  return errors;
}
