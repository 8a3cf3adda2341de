// A small mesh for telemetry tests: sidecar proxies configured from bootstrap
// documents the way the control plane's translation shapes them (inbound
// listener `inbound|<port>` to the app on loopback, an outbound listener
// routing service hosts to clusters `<svc>.<ns>.svc:<port>` whose endpoints
// carry `trellis.dev/workload` metadata, node metadata naming the workload).
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import type { TestContext } from 'node:test';
import { runProxy, sockAddr } from '../proxy/helpers.ts';
import type { Proxy, StartProxyOptions } from '../../src/proxy/proxy.ts';

/** Inbound listeners bind here, outbound ones on 127.0.0.1 (a config may not
 * have two listeners on the same address and port 0). */
export const INBOUND_ADDRESS = '127.0.0.2';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

export interface Upstream {
  readonly service: string;
  readonly namespace: string;
  readonly port: number;
  /** Where the upstream workload's sidecar accepts inbound traffic. */
  readonly inboundPort: number;
  readonly workload: string;
  /** Default: the sidecars' inbound address (127.0.0.2). */
  readonly inboundAddress?: string;
  /** Opaque TCP instead of HTTP: a dedicated outbound TCP listener. */
  readonly tcp?: boolean;
  /** gRPC / h2 service: the cluster speaks HTTP/2 to the endpoint. */
  readonly h2?: boolean;
}

export interface SidecarSpec {
  readonly workload: string;
  readonly namespace: string;
  /** The app's port: adds an inbound listener `inbound|<appPort>`. */
  readonly appPort?: number;
  /** Inbound listener is opaque TCP. */
  readonly inboundTcp?: boolean;
  readonly upstreams?: readonly Upstream[];
  readonly telemetry?: StartProxyOptions['telemetry'];
  /** Node metadata `trellis.service`: the service this sidecar serves. */
  readonly service?: string;
  /** The app speaks h2c (gRPC): the inbound cluster uses HTTP/2. */
  readonly appH2?: boolean;
  /** Extra outbound virtual hosts, as translate writes a service with an
   * HTTPRoute: the vhost is the parent service, the routes pick upstreams'
   * clusters (`<svc>.<ns>.svc:<port>`). */
  readonly virtualHosts?: readonly { readonly name: string; readonly domains: readonly string[]; readonly routes: readonly object[] }[];
}

export interface Sidecar {
  readonly proxy: Proxy;
  readonly adminPort: number;
  readonly inboundPort: number | undefined;
  readonly outboundPort: number | undefined;
  /** Outbound TCP listener port per upstream service name. */
  /** Outbound TCP listener address:port per upstream service name. */
  readonly tcpPorts: ReadonlyMap<string, { address: string; port: number }>;
}

const H2_OPTIONS = { typedExtensionProtocolOptions: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions', explicitHttpConfig: { http2ProtocolOptions: {} } } } };

function hcm(name: string, routeConfigName: string): object {
  return { name: 'envoy.filters.network.http_connection_manager', typedConfig: { '@type': HCM, statPrefix: name, codecType: 'AUTO', rds: { routeConfigName }, httpFilters: [{ name: 'envoy.filters.http.router' }] } };
}
function tcpProxy(name: string, cluster: string): object {
  return { name: 'envoy.filters.network.tcp_proxy', typedConfig: { '@type': TCP, statPrefix: name, cluster } };
}

export async function startSidecar(t: TestContext, s: SidecarSpec): Promise<Sidecar> {
  const listeners: object[] = [];
  const clusters: object[] = [];
  const routes: object[] = [];
  if (s.appPort !== undefined) {
    const name = `inbound|${s.appPort}`;
    clusters.push({
      name, type: 'STATIC', connectTimeout: '1s', loadAssignment: { clusterName: name, endpoints: [{ lbEndpoints: [{ endpoint: { address: sockAddr(s.appPort) } }] }] },
      ...(s.appH2 ? H2_OPTIONS : {}),
    });
    if (s.inboundTcp) {
      listeners.push({ name, address: sockAddr(0, INBOUND_ADDRESS), trafficDirection: 'INBOUND', filterChains: [{ name, filters: [tcpProxy(name, name)] }] });
    } else {
      routes.push({ name, virtualHosts: [{ name, domains: ['*'], routes: [{ name: 'inbound', match: { prefix: '/' }, route: { cluster: name, timeout: '0s' } }] }] });
      listeners.push({ name, address: sockAddr(0, INBOUND_ADDRESS), trafficDirection: 'INBOUND', filterChains: [{ name, filters: [hcm(name, name)] }] });
    }
  }
  const http = (s.upstreams ?? []).filter((u) => !u.tcp);
  let tcpIndex = 0;
  for (const u of s.upstreams ?? []) {
    const cluster = `${u.service}.${u.namespace}.svc:${u.port}`;
    clusters.push({
      name: cluster,
      type: 'STATIC',
      connectTimeout: '1s',
      loadAssignment: {
        clusterName: cluster,
        endpoints: [{ lbEndpoints: [{ endpoint: { address: sockAddr(u.inboundPort, u.inboundAddress ?? INBOUND_ADDRESS) }, metadata: { filterMetadata: { trellis: { 'trellis.dev/workload': u.workload } } } }] }],
      },
      ...(u.h2 ? H2_OPTIONS : {}),
    });
    if (u.tcp) listeners.push({ name: `outbound-tcp-${u.service}`, address: sockAddr(0, `127.0.0.${3 + tcpIndex++}`), trafficDirection: 'OUTBOUND', filterChains: [{ name: `tcp-${u.service}`, filters: [tcpProxy(u.service, cluster)] }] });
  }
  if (http.length > 0) {
    routes.push({
      name: 'outbound',
      virtualHosts: [
        ...(s.virtualHosts ?? []),
        ...http.map((u) => ({
          name: `${u.service}.${u.namespace}.svc:${u.port}`,
          domains: [`${u.service}.${u.namespace}:${u.port}`, `${u.service}:${u.port}`, `${u.service}.${u.namespace}.svc.cluster.local:${u.port}`],
          routes: [{ name: `${u.namespace}/${u.service}/rule-0/match-0`, match: { prefix: '/' }, route: { cluster: `${u.service}.${u.namespace}.svc:${u.port}` } }],
        })),
      ],
    });
    listeners.push({ name: 'outbound', address: sockAddr(0), trafficDirection: 'OUTBOUND', filterChains: [{ name: 'outbound-http', filters: [hcm('outbound', 'outbound')] }] });
  }
  const doc = {
    node: { id: `${s.namespace}/${s.workload}`, cluster: s.workload, metadata: { trellis: { kind: 'sidecar', workload: s.workload, namespace: s.namespace, ...(s.service ? { service: s.service } : {}) } } },
    admin: { address: sockAddr(0) },
    staticResources: { listeners, clusters, routes },
  };
  const proxy = await runProxy(t, doc, s.telemetry ? { telemetry: s.telemetry } : {});
  const tcpPorts = new Map<string, { address: string; port: number }>();
  let ti = 0;
  for (const u of s.upstreams ?? []) if (u.tcp) tcpPorts.set(u.service, { address: `127.0.0.${3 + ti++}`, port: proxy.ports.get(`outbound-tcp-${u.service}`)! });
  return {
    proxy,
    adminPort: proxy.adminPort!,
    inboundPort: s.appPort !== undefined ? proxy.ports.get(`inbound|${s.appPort}`) : undefined,
    outboundPort: proxy.ports.get('outbound'),
    tcpPorts,
  };
}

export async function app(t: TestContext, handler: http.RequestListener): Promise<number> {
  const server = http.createServer({ keepAliveTimeout: 30_000 }, handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return (server.address() as net.AddressInfo).port;
}

/** GET through an explicit-mode sidecar: the proxy port, the service's Host. */
export function call(proxyPort: number | { address: string; port: number }, host: string, path: string, headers: http.OutgoingHttpHeaders = {}, agent?: http.Agent): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const target = typeof proxyPort === 'number' ? { address: '127.0.0.1', port: proxyPort } : proxyPort;
    const req = http.request({ host: target.address, port: target.port, path, headers: { host, ...headers }, ...(agent ? { agent } : { agent: false }) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export async function metricsText(adminPort: number): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${adminPort}/stats/prometheus`);
  return r.text();
}

/** Poll `fn` until it returns a value (bounded). */
export async function eventually<T>(fn: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; ; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, Math.min(20 * (i + 1), 200)));
  }
}
