// Test-only helpers for the HTTP/1 codec tests: a node:http upstream, a
// proxy made of serveHttp1 + createHttp1Pool on raw sockets, and a raw
// client that sends exact bytes. Every server and socket is closed by the
// test context that created it.
import http from 'node:http';
import net from 'node:net';
import type { TestContext } from 'node:test';
import type { ConnectionContext, TrackedConnection } from '../connection.ts';
import type { Dispatch } from '../http/exchange.ts';
import { DEFAULT_POOL_OPTIONS } from '../upstream/types.ts';
import type { PoolOptions, UpstreamPool } from '../upstream/types.ts';
import { createHttp1Pool } from './pool.ts';
import { createHttp1Server } from './server.ts';
import type { Http1ServerOptions } from './server.ts';

export interface Upstream {
  server: http.Server;
  port: number;
  /** TCP connections the upstream has accepted. */
  connections(): number;
}

export async function startUpstream(t: TestContext, handler: http.RequestListener, setup?: (s: http.Server) => void): Promise<Upstream> {
  const server = http.createServer({ keepAliveTimeout: 30_000 }, handler);
  let count = 0;
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    count++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  setup?.(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { server, port: (server.address() as net.AddressInfo).port, connections: () => count };
}

export interface Proxy {
  port: number;
  pool: UpstreamPool;
  tracked: Set<TrackedConnection>;
  closedStats: Array<{ bytesIn: number; bytesOut: number }>;
}

export async function startProxy(
  t: TestContext,
  upstreamPort: number,
  pool: Partial<PoolOptions> = {},
  server: Partial<Http1ServerOptions> = {},
  wrap?: (d: Dispatch) => Dispatch,
  /** Read the first bytes before handing the socket over, the way protocol
   * detection does (they arrive as `initial`, the socket paused). */
  detectFirst = false,
): Promise<Proxy> {
  const p = createHttp1Pool({ ...DEFAULT_POOL_OPTIONS, host: '127.0.0.1', port: upstreamPort, ...pool });
  const serve = createHttp1Server(server);
  const tracked = new Set<TrackedConnection>();
  const closedStats: Proxy['closedStats'] = [];
  const sockets = new Set<net.Socket>();
  const dispatch = wrap ? wrap(p.dispatch) : p.dispatch;
  const srv = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const ctx: ConnectionContext = {
      listener: 'test',
      direction: 'outbound',
      downstream: { remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0, localAddress: socket.localAddress ?? '', localPort: socket.localPort ?? 0 },
      dispatch,
      track(c) {
        tracked.add(c);
        return () => tracked.delete(c);
      },
      onClose(s) {
        closedStats.push(s);
      },
    };
    if (!detectFirst) {
      serve(socket, Buffer.alloc(0), ctx);
      return;
    }
    socket.once('data', (first: Buffer) => {
      socket.pause();
      setImmediate(() => serve(socket, first, ctx));
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    p.destroy();
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => srv.close(() => r()));
  });
  return { port: (srv.address() as net.AddressInfo).port, pool: p, tracked, closedStats };
}

export interface RawResult {
  data: string;
  /** The proxy closed the connection (as opposed to the time limit). */
  closed: boolean;
}

/** Send `bytes`, collect everything until the peer closes or `untilMs`. */
export function rawExchange(t: TestContext, port: number, bytes: string | Buffer, untilMs = 3_000, stopWhen?: (data: string) => boolean): Promise<RawResult> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    t.after(() => s.destroy());
    let data = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ data, closed });
    };
    const timer = setTimeout(() => finish(false), untilMs);
    s.on('data', (d) => {
      data += d.toString('latin1');
      if (stopWhen?.(data)) finish(false);
    });
    s.on('error', () => finish(true));
    s.on('close', () => finish(true));
    s.write(bytes);
  });
}

export interface Fetched {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  body: Buffer;
}

/** One request with node:http as the client (an independent parser). */
export function fetch(port: number, opts: http.RequestOptions & { body?: Buffer | string }, agent?: http.Agent): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, agent: agent ?? false, ...opts }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, trailers: res.trailers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}
