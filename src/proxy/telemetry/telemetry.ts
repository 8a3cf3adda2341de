// The proxy's telemetry, assembled: standard metrics, tracing, access log and
// tap, plus the admin routes that control them. One instance per proxy;
// stack.ts asks it for each listener's layer (`layer()`), the TCP path
// reports finished connections (`tcpClosed()`), admin.ts hands it requests
// it does not serve itself (`handleAdmin()`).
//
//   POST /logging?access=on|off   switch access logs at runtime
//   GET  /logging                 {"access": true|false, "written": n, "dropped": n}
//   GET  /tap?authority=&path=&method=&code=&service=&limit=
//        NDJSON stream of matching exchanges (metadata only, credentials redacted)
import type http from 'node:http';
import type { ConnectionOptions } from 'node:tls';
import type { ClusterSpec, EndpointSpec, HttpConnectionManagerSpec, NodeInfo, ProxyConfig, TracingSpec } from '../config/types.ts';
import type { Layer } from '../http/exchange.ts';
import type { Registry } from '../stats.ts';
import { endpointKey } from '../cluster.ts';
import { AccessLog, type AccessLogOptions } from './access-log.ts';
import { UNKNOWN, parseSpiffe, selfIdentity, serviceFromCluster, type WorkloadIdentity } from './identity.ts';
import { TapHub, parseTapFilter } from './tap.ts';
import { createTelemetryStats, type TelemetryStats } from './telemetry-stats.ts';
import { telemetryLayer, type EndpointDirectory, type EndpointFacts } from './telemetry-layer.ts';
import type { ProxyTracer } from './tracing.ts';
import type { TracingOptions } from './tracing-options.ts';

const tracerKey = (t: TracingSpec): string => JSON.stringify([t.collectorUrl, t.samplingRate, t.serviceName ?? '']);

function tracingSpecs(config: ProxyConfig): TracingSpec[] {
  const out: TracingSpec[] = [];
  for (const l of config.listeners) for (const c of l.filterChains) if (c.http?.tracing) out.push(c.http.tracing);
  return out;
}

/** What a proxy's owner configures (StartProxyOptions.telemetry). */
export interface TelemetryConfig {
  /** Tracing is off unless configured; `serviceName` defaults to the workload. */
  readonly tracing?: TracerConfig;
  readonly accessLog?: AccessLogOptions;
  /** Bound on distinct label tuples per metric family. */
  readonly maxTuples?: number;
}

export type TracerConfig = Omit<TracingOptions, 'serviceName'> & { serviceName?: string };

export interface TelemetryOptions extends Omit<TelemetryConfig, 'tracing'> {
  readonly registry: Registry;
  readonly node: Pick<NodeInfo, 'cluster' | 'metadata'>;
  /** From loadTracer. */
  readonly tracer?: ProxyTracer | undefined;
}

/** The tracer for `tracing`, or none. The OpenTelemetry SDK (~20 MB of a
 * proxy's memory) is imported here, only when tracing is configured. */
export async function loadTracer(node: Pick<NodeInfo, 'cluster' | 'metadata'>, tracing: TracerConfig | undefined): Promise<ProxyTracer | undefined> {
  if (tracing === undefined) return undefined;
  const self = selfIdentity(node);
  const { createTracer } = await import('./tracing.ts');
  return createTracer({ serviceName: self.workload, namespace: self.namespace, ...tracing });
}

export interface TcpConnectionReport {
  readonly direction: 'inbound' | 'outbound' | 'gateway';
  readonly cluster: string | undefined;
  readonly peerIdentity?: string | undefined;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

export type UpstreamTls = (cluster: ClusterSpec, endpoint: EndpointSpec) => ConnectionOptions | undefined;

export class Telemetry {
  readonly self: WorkloadIdentity;
  readonly stats: TelemetryStats;
  /** The proxy's own tracer (TelemetryConfig.tracing, `--tracing-collector`),
   * for listeners whose config does not say. */
  readonly tracer: ProxyTracer | undefined;
  /** Tracers the listeners' configs ask for (HCM `tracing`), by settings. */
  private readonly tracers = new Map<string, ProxyTracer>();
  private readonly node: Pick<NodeInfo, 'cluster' | 'metadata'>;
  readonly accessLog: AccessLog;
  readonly tap = new TapHub();
  private readonly directories = new WeakMap<ProxyConfig, EndpointDirectory>();

  constructor(o: TelemetryOptions) {
    this.self = selfIdentity(o.node);
    this.node = o.node;
    this.stats = createTelemetryStats(o.registry, o.maxTuples === undefined ? {} : { maxTuples: o.maxTuples });
    this.tracer = o.tracer;
    this.accessLog = new AccessLog(o.accessLog);
  }

  /** Create the tracers `config`'s listeners ask for that do not exist yet
   * (loading the SDK on the first); before its layers are built. */
  async prepare(config: ProxyConfig): Promise<void> {
    for (const spec of tracingSpecs(config)) {
      const key = tracerKey(spec);
      if (this.tracers.has(key)) continue;
      const tracer = await loadTracer(this.node, spec);
      if (tracer) this.tracers.set(key, tracer);
    }
  }

  /** Shut down the tracers `config` (now in force) no longer uses; what
   * they hold is exported first. */
  async retire(config: ProxyConfig): Promise<void> {
    const used = new Set(tracingSpecs(config).map(tracerKey));
    const gone = [...this.tracers].filter(([key]) => !used.has(key));
    for (const [key] of gone) this.tracers.delete(key);
    await Promise.all(gone.map(([, t]) => t.shutdown().catch(() => {})));
  }

  /** Export every queued span now (tests, shutdown). */
  async flushTracing(): Promise<void> {
    await Promise.all([this.tracer, ...this.tracers.values()].map((t) => t?.flush()));
  }

  /** The telemetry layer of one listener chain under one config version.
   * `upstreamTls` is the proxy's TLS origination (outbound `mtls` label). */
  layer(direction: 'inbound' | 'outbound' | 'gateway', config: ProxyConfig, hcm: HttpConnectionManagerSpec, upstreamTls?: UpstreamTls): Layer {
    return telemetryLayer({
      stats: this.stats,
      self: this.self,
      direction,
      endpoints: this.directory(config, upstreamTls),
      tracer: hcm.tracing ? this.tracers.get(tracerKey(hcm.tracing)) : this.tracer,
      accessLog: this.accessLog,
      logAll: hcm.accessLog === true,
      tap: this.tap,
    });
  }

  /** Count a finished opaque TCP connection. */
  tcpClosed(r: TcpConnectionReport): void {
    let values: [string, string, string, string, string, string, string];
    if (r.direction === 'inbound') {
      const spiffe = r.peerIdentity ? parseSpiffe(r.peerIdentity) : undefined;
      values = [r.direction, UNKNOWN, spiffe?.namespace ?? UNKNOWN, this.self.workload, this.self.namespace, this.self.service ?? UNKNOWN, String(r.peerIdentity !== undefined)];
    } else {
      const svc = r.cluster !== undefined ? serviceFromCluster(r.cluster) : undefined;
      values = [r.direction, this.self.workload, this.self.namespace, UNKNOWN, svc?.namespace ?? UNKNOWN, svc?.service ?? r.cluster ?? UNKNOWN, 'false'];
    }
    const s = this.stats.tcp(values);
    s.opened.inc();
    s.closed.inc();
    if (r.bytesIn > 0) s.received.inc(r.bytesIn);
    if (r.bytesOut > 0) s.sent.inc(r.bytesOut);
  }

  /** Serve the telemetry admin routes; false when the path is not one. */
  handleAdmin(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (url.pathname === '/logging') {
      if (req.method === 'POST') {
        const v = url.searchParams.get('access');
        if (v !== 'on' && v !== 'off') {
          json(res, 400, { error: 'access: must be "on" or "off"' });
          return true;
        }
        this.accessLog.setEnabled(v === 'on');
      } else if (req.method !== 'GET') {
        json(res, 405, { error: 'method not allowed' });
        return true;
      }
      json(res, 200, { access: this.accessLog.enabled, written: this.accessLog.written(), dropped: this.accessLog.dropped() });
      return true;
    }
    if (url.pathname === '/tap') {
      if (req.method !== 'GET') {
        json(res, 405, { error: 'method not allowed' });
        return true;
      }
      const f = parseTapFilter(url.searchParams);
      if (!f.ok) {
        json(res, 400, { error: f.error });
        return true;
      }
      const limitRaw = url.searchParams.get('limit');
      const limit = limitRaw === null ? Infinity : Number(limitRaw);
      if (!(limit > 0)) {
        json(res, 400, { error: 'limit: must be a positive number' });
        return true;
      }
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      res.write(`${JSON.stringify({ type: 'start', filter: f.filter })}\n`);
      let sent = 0;
      const sub = this.tap.subscribe(f.filter, {
        write: (line) => {
          res.write(line);
          if (line.startsWith('{"type":"exchange"') && ++sent >= limit) {
            sub.close();
            res.end();
          }
        },
        backlog: () => res.writableLength,
      });
      const done = (): void => sub.close();
      res.on('close', done);
      res.on('finish', done);
      return true;
    }
    return false;
  }

  async close(): Promise<void> {
    await Promise.all([this.tracer, ...this.tracers.values()].map((t) => t?.shutdown()));
    this.tracers.clear();
    await this.accessLog.close();
  }

  private directory(config: ProxyConfig, upstreamTls: UpstreamTls | undefined): EndpointDirectory {
    let d = this.directories.get(config);
    if (!d) {
      const byCluster = new Map<string, Map<string, EndpointFacts>>();
      for (const [cluster, localities] of config.endpoints) {
        const spec = config.clusters.get(cluster);
        const m = new Map<string, EndpointFacts>();
        for (const le of localities) {
          for (const ep of le.endpoints) {
            const workload = ep.labels?.['trellis.dev/workload'];
            let mtls = false;
            try {
              mtls = spec !== undefined && upstreamTls?.(spec, ep) !== undefined;
            } catch {
              mtls = false;
            }
            if (workload !== undefined || mtls) m.set(endpointKey(ep.address, ep.port), { workload, mtls });
          }
        }
        if (m.size > 0) byCluster.set(cluster, m);
      }
      d = (cluster, endpoint) => byCluster.get(cluster)?.get(endpoint);
      this.directories.set(config, d);
    }
    return d;
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const s = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s), 'cache-control': 'no-store' });
  res.end(s);
}
