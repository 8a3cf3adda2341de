// Whole-proxy test helpers: bootstrap documents built from a few calls
// (Envoy v3 JSON shape, parsed by the real bootstrap loader), backends on
// port 0, an in-process proxy cleaned up by the test, and small clients.
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { bootstrapFromJson, type Bootstrap } from '../../src/proxy/config/bootstrap.ts';
import type { ProxyConfig } from '../../src/proxy/config/types.ts';
import { startProxy, type Proxy, type StartProxyOptions } from '../../src/proxy/proxy.ts';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

export function sockAddr(port: number, address = '127.0.0.1'): object {
  return { socketAddress: { address, portValue: port } };
}

export interface HttpListenerOpts {
  port?: number;
  routeConfigName: string;
  codecType?: 'AUTO' | 'HTTP1' | 'HTTP2';
  requestTimeout?: string;
  via?: string;
  idleTimeout?: string;
  /** Restrict the HTTP chain to detected HTTP and add a default TCP chain. */
  fallbackTcpCluster?: string;
  /** HttpConnectionManager.tracing, as written. */
  tracing?: object;
  /** HttpConnectionManager.accessLog, as written. */
  accessLog?: object[];
}

export function httpListener(name: string, o: HttpListenerOpts): object {
  const hcm: Record<string, unknown> = {
    '@type': HCM,
    statPrefix: name,
    codecType: o.codecType ?? 'AUTO',
    rds: { routeConfigName: o.routeConfigName },
    httpFilters: [{ name: 'envoy.filters.http.router' }],
  };
  if (o.requestTimeout) hcm.requestTimeout = o.requestTimeout;
  if (o.via) hcm.via = o.via;
  if (o.tracing) hcm.tracing = o.tracing;
  if (o.accessLog) hcm.accessLog = o.accessLog;
  if (o.idleTimeout) hcm.commonHttpProtocolOptions = { idleTimeout: o.idleTimeout };
  const chain: Record<string, unknown> = { name: `${name}-http`, filters: [{ name: 'envoy.filters.network.http_connection_manager', typedConfig: hcm }] };
  const l: Record<string, unknown> = { name, address: sockAddr(o.port ?? 0), trafficDirection: 'OUTBOUND', filterChains: [chain] };
  if (o.fallbackTcpCluster) {
    chain.filterChainMatch = { applicationProtocols: ['http/1.1', 'h2c'] };
    l.defaultFilterChain = tcpChain(`${name}-tcp`, o.fallbackTcpCluster);
  }
  return l;
}

function tcpChain(name: string, cluster: string, idleTimeout?: string): object {
  return {
    name,
    filters: [{ name: 'envoy.filters.network.tcp_proxy', typedConfig: { '@type': TCP, statPrefix: name, cluster, ...(idleTimeout ? { idleTimeout } : {}) } }],
  };
}

export function tcpListener(name: string, cluster: string, port = 0, idleTimeout?: string): object {
  return { name, address: sockAddr(port), filterChains: [tcpChain(`${name}-tcp`, cluster, idleTimeout)] };
}

export function staticCluster(name: string, ports: number[], o: { http2?: boolean; connectTimeout?: string } = {}): object {
  const c: Record<string, unknown> = {
    name,
    type: 'STATIC',
    connectTimeout: o.connectTimeout ?? '1s',
    lbPolicy: 'ROUND_ROBIN',
    loadAssignment: { clusterName: name, endpoints: [{ lbEndpoints: ports.map((p) => ({ endpoint: { address: sockAddr(p) } })) }] },
  };
  if (o.http2) c.http2ProtocolOptions = {};
  return c;
}

export interface RouteOpts {
  prefix?: string;
  cluster: string;
  timeout?: string;
}

export function routeConfig(name: string, routes: RouteOpts[]): object {
  return {
    name,
    virtualHosts: [
      {
        name: `${name}-vh`,
        domains: ['*'],
        routes: routes.map((r) => ({ match: { prefix: r.prefix ?? '/' }, route: { cluster: r.cluster, ...(r.timeout ? { timeout: r.timeout } : {}) } })),
      },
    ],
  };
}

export function bootstrapDoc(parts: { listeners: object[]; clusters: object[]; routes?: object[]; adminPort?: number }): Record<string, unknown> {
  return {
    node: { id: 'test-proxy', cluster: 'test' },
    admin: { address: sockAddr(parts.adminPort ?? 0) },
    staticResources: { listeners: parts.listeners, clusters: parts.clusters, routes: parts.routes ?? [] },
  };
}

export function parse(doc: unknown, version = 'v1'): Bootstrap {
  const r = bootstrapFromJson(doc, version);
  if (!r.ok) assert.fail(`bootstrap rejected: ${JSON.stringify(r.errors)}`);
  return r.bootstrap;
}

export function config(doc: unknown, version = 'v1'): ProxyConfig {
  return parse(doc, version).config;
}

export async function runProxy(t: TestContext, doc: unknown, extra: Partial<StartProxyOptions> = {}): Promise<Proxy> {
  const b = parse(doc);
  const r = await startProxy({ config: b.config, node: b.node, admin: { address: '127.0.0.1', port: 0 }, ...extra });
  if (!r.ok) assert.fail(`proxy did not start: ${r.errors.join('; ')}`);
  t.after(() => r.proxy.stop({ drainMs: 200 }));
  return r.proxy;
}

export function portOf(p: Proxy, listener: string): number {
  const port = p.ports.get(listener);
  assert.ok(port, `listener ${listener} is bound`);
  return port;
}

/** A node:http backend answering `name` in `x-backend` plus the request path. */
export async function httpBackend(t: TestContext, name: string, handler?: http.RequestListener): Promise<{ port: number; server: http.Server; hits: () => number }> {
  let hits = 0;
  const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    hits++;
    if (handler) return handler(req, res);
    req.resume();
    req.on('end', () => {
      res.setHeader('x-backend', name);
      res.end(`${name} ${req.url}`);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as net.AddressInfo).port, server, hits: () => hits };
}

/** A raw TCP backend; `onConn` gets each accepted socket (allowHalfOpen). */
export async function tcpBackend(t: TestContext, onConn: (s: net.Socket) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConn(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return (server.address() as net.AddressInfo).port;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function request(port: number, opts: http.RequestOptions & { body?: string | Buffer[] } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const { body, ...rest } = opts;
    const req = http.request({ host: '127.0.0.1', port, path: '/', ...rest }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (Array.isArray(body)) {
      for (const b of body) req.write(b);
      req.end();
    } else req.end(body);
  });
}

/** A port that was free a moment ago (for configs that must name one). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function getText(port: number, path: string): Promise<Reply> {
  return request(port, { path, agent: false });
}
