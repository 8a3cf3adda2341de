// The admin listener (default 127.0.0.1:15000, local only, like Envoy's and
// Linkerd's): plain node:http, since nothing here is on the request path.
// What exposes live requests (`/tap`) or changes state (any method other
// than GET and HEAD, e.g. `POST /logging`) needs `authorization: Bearer
// <token>`: the token is the node's `trellis.adminToken` (the proxy makes one
// when the bootstrap has none), which reaches the control plane in the node
// metadata over xDS. The rest is read-only and open to whoever can reach
// the port (docs/security.md has the table).
//
//   GET /ready             200 once listeners are bound and a config is loaded; 503 while draining
//   GET /live              200 while the process is up
//   GET /config_dump       the active config as JSON (Maps as objects, RegExps as strings)
//   GET /stats/prometheus  the metrics in Prometheus text format
//   GET /clusters          clusters with endpoints, health, load and pool stats (JSON)
import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { ProxyConfig } from './config/types.ts';
import type { ClusterSnapshot } from './cluster.ts';
import { PROMETHEUS_CONTENT_TYPE, type Registry } from './stats.ts';

export interface AdminSource {
  ready(): { ready: boolean; reason: string };
  config(): ProxyConfig | undefined;
  /** Listener name -> bound port. */
  listeners(): Record<string, number>;
  clusters(): ClusterSnapshot[];
  readonly registry: Registry;
  /** Extra routes (telemetry: /logging, /tap); return true when handled. */
  handle?(req: http.IncomingMessage, res: http.ServerResponse): boolean;
  /** The bearer token sensitive routes require. */
  readonly token: string;
}

/** Paths that stream live requests: token required whatever the method. */
const SENSITIVE_PATHS = new Set(['/tap']);

export function bearerMatches(header: string | undefined, token: string): boolean {
  if (header === undefined || !header.startsWith('Bearer ')) return false;
  const got = Buffer.from(header.slice(7).trim());
  const want = Buffer.from(token);
  return got.length === want.length && timingSafeEqual(got, want);
}

export interface AdminServer {
  readonly port: number;
  close(): Promise<void>;
}

export type AdminResult = { ok: true; admin: AdminServer } | { ok: false; error: string; code?: string };

/** JSON.stringify replacer: Maps become objects, RegExps their source text. */
export function configReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries(value);
  if (value instanceof RegExp) return value.toString();
  if (value instanceof Set) return [...value];
  return value;
}

export function configDump(config: ProxyConfig, listeners: Record<string, number>): string {
  return JSON.stringify({ version: config.version, boundPorts: listeners, config }, configReplacer, 2);
}

export function startAdmin(address: string, port: number, src: AdminSource): Promise<AdminResult> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0] ?? '/';
    const sensitive = SENSITIVE_PATHS.has(url) || (req.method !== 'GET' && req.method !== 'HEAD');
    if (sensitive && !bearerMatches(req.headers.authorization, src.token)) {
      req.resume();
      res.setHeader('www-authenticate', 'Bearer realm="trellis-admin"');
      send(res, 401, 'text/plain; charset=utf-8', `${url} needs the proxy's admin token (authorization: Bearer ...)\n`);
      return;
    }
    if (src.handle?.(req, res)) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    switch (url) {
      case '/ready': {
        const r = src.ready();
        send(res, r.ready ? 200 : 503, 'text/plain; charset=utf-8', `${r.reason}\n`);
        return;
      }
      case '/live':
        send(res, 200, 'text/plain; charset=utf-8', 'live\n');
        return;
      case '/config_dump': {
        const c = src.config();
        if (!c) send(res, 503, 'text/plain; charset=utf-8', 'no config loaded\n');
        else send(res, 200, 'application/json', configDump(c, src.listeners()));
        return;
      }
      case '/stats/prometheus':
        send(res, 200, PROMETHEUS_CONTENT_TYPE, src.registry.expose());
        return;
      case '/clusters':
        send(res, 200, 'application/json', JSON.stringify({ clusters: src.clusters() }, null, 2));
        return;
      case '/':
        send(res, 200, 'text/plain; charset=utf-8', '/ready\n/live\n/config_dump\n/stats/prometheus\n/clusters\n');
        return;
      default:
        send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    }
  });
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, error: `admin: cannot listen on ${address}:${port}: ${err.message}`, ...(err.code ? { code: err.code } : {}) }));
    server.listen({ host: address, port }, () => {
      server.removeAllListeners('error');
      resolve({
        ok: true,
        admin: {
          port: (server.address() as AddressInfo).port,
          close: () =>
            new Promise<void>((r) => {
              server.close(() => r());
              server.closeAllConnections();
            }),
        },
      });
    });
  });
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
