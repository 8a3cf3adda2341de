// Helpers for the resilience end-to-end tests: real proxies (in-process
// startProxy through the bootstrap loader), real upstreams that fail on
// purpose, and a bounded-concurrency load generator.
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import type { TestContext } from 'node:test';
import { bootstrapDoc, httpListener, runProxy, portOf, sockAddr } from '../proxy/helpers.ts';
import type { Proxy, StartProxyOptions } from '../../src/proxy/proxy.ts';

export { portOf };

export interface Backend {
  port: number;
  server: http.Server;
  hits: () => number;
  /** Stop accepting and drop every connection (the process "died"). */
  kill: () => Promise<void>;
}

export async function backend(t: TestContext, handler: (req: http.IncomingMessage, res: http.ServerResponse, hit: number) => void): Promise<Backend> {
  let hits = 0;
  const sockets = new Set<net.Socket>();
  const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    hits++;
    handler(req, res, hits);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  let killed = false;
  const kill = async () => {
    if (killed) return;
    killed = true;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of sockets) s.destroy();
    await closed;
  };
  t.after(kill);
  return { port: (server.address() as net.AddressInfo).port, server, hits: () => hits, kill };
}

export function cluster(name: string, ports: number[], extra: Record<string, unknown> = {}): object {
  return {
    name,
    type: 'STATIC',
    connectTimeout: '0.5s',
    lbPolicy: 'ROUND_ROBIN',
    loadAssignment: { clusterName: name, endpoints: [{ lbEndpoints: ports.map((p) => ({ endpoint: { address: sockAddr(p) } })) }] },
    ...extra,
  };
}

/** One listener "out" with one virtual host whose routes are given raw. */
export async function proxyWith(t: TestContext, parts: { clusters: object[]; routes: object[]; vhost?: Record<string, unknown> }, extra: Partial<StartProxyOptions> = {}): Promise<{ proxy: Proxy; port: number }> {
  const proxy = await runProxy(t, bootstrapDoc({
    listeners: [httpListener('out', { routeConfigName: 'r' })],
    clusters: parts.clusters,
    routes: [{ name: 'r', virtualHosts: [{ name: 'vh', domains: ['*'], routes: parts.routes, ...parts.vhost }] }],
  }), extra);
  return { proxy, port: portOf(proxy, 'out') };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  ms: number;
  error?: string;
}

/** A request that never throws: transport failures come back as status 0. */
export function call(port: number, opts: http.RequestOptions & { body?: string } = {}, agent?: http.Agent): Promise<Reply> {
  const start = performance.now();
  return new Promise((resolve) => {
    const { body, ...rest } = opts;
    const req = http.request({ host: '127.0.0.1', port, path: '/', agent: agent ?? false, ...rest }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), ms: performance.now() - start }));
      res.on('error', (err) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), ms: performance.now() - start, error: err.message }));
      res.on('aborted', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), ms: performance.now() - start, error: 'aborted' }));
    });
    req.on('error', (err) => resolve({ status: 0, headers: {}, body: '', ms: performance.now() - start, error: err.message }));
    req.end(body);
  });
}

/** `total` requests, `concurrency` at a time, through one keep-alive agent. */
export async function load(total: number, concurrency: number, one: (i: number) => Promise<Reply>): Promise<Reply[]> {
  const out: Reply[] = new Array(total);
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      out[i] = await one(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  return out;
}

export function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

export const FAST_BACKOFF = { baseInterval: '0.001s', maxInterval: '0.005s' };
