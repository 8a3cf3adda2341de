// The control plane's HTTP API on one port (15080 by default). Resource
// endpoints are built in; other parts mount their own routes:
//
//   const api = createApiServer({ resources });
//   api.addRoutes([{ method: 'GET', pattern: '/api/v1/registry/workloads', handle }]);
//   await api.listen(15080, '127.0.0.1');
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import https from 'node:https';
import type tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Store } from '../store/types.ts';
import { createResourceService, type KindQuota, type ResourceService } from '../resources/service.ts';
import { apiError, sendError } from './http-errors.ts';
import { resourceRoutes, type ResourceRoutesOptions } from './resource-routes.ts';
import { Router, type ApiRoute } from './router.ts';
import { watchRoute } from './watch-sse.ts';
import type { ApiAuth } from './auth.ts';

export type { ApiRoute } from './router.ts';
export { sendJson, sendError, apiError, type ApiError, type ApiErrorCode } from './http-errors.ts';
export { readBody, readStructuredBody } from './read-body.ts';

export const DEFAULT_API_PORT = 15080;

export interface ApiServerOptions {
  resources: ResourceService;
  /** Warnings added to apply results (resource-routes.ts). */
  applyWarnings?: ResourceRoutesOptions['applyWarnings'];
  /** Extra routes mounted at creation (more can be added later with addRoutes). */
  routes?: readonly ApiRoute[];
  sseHeartbeatMs?: number;
  /** Authentication and authorization (auth.ts); without it every caller may do everything (tests of the API alone). */
  auth?: ApiAuth;
  /** Serve HTTPS with this certificate (renewed in place); client
   * certificates are asked for and verified against its `ca`, not required. */
  tls?: { contextOptions(): tls.SecureContextOptions; onChange(cb: () => void): () => void };
}

export interface ApiServer {
  readonly server: Server;
  readonly resources: ResourceService;
  /** The request handler, for mounting into another node:http server. */
  handler(req: IncomingMessage, res: ServerResponse): void;
  addRoutes(routes: readonly ApiRoute[]): void;
  listen(port: number, host?: string): Promise<{ port: number; url: string }>;
  /** Ends watch streams and open connections, then stops listening. */
  close(): Promise<void>;
}

export function createApiServer(opts: ApiServerOptions): ApiServer {
  const router = new Router();
  const streams = new Set<ServerResponse>();
  router.add(resourceRoutes(opts.resources, opts.applyWarnings ? { applyWarnings: opts.applyWarnings } : {}));
  router.add([watchRoute(opts.resources, { streams, ...(opts.sseHeartbeatMs === undefined ? {} : { heartbeatMs: opts.sseHeartbeatMs }) })]);
  if (opts.routes) router.add(opts.routes);

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const guard = opts.auth ? (r: IncomingMessage, route: ApiRoute) => opts.auth!.check(r, route) : undefined;
    router.dispatch(req, res, guard).catch((err: unknown) => {
      const code = (err as { code?: unknown } | null)?.code;
      const unavailable = (err as Error | null)?.name === 'StoreError' && (code === 'unavailable' || code === 'closed');
      sendError(res, apiError(unavailable ? 'unavailable' : 'internal', err instanceof Error ? err.message : String(err)));
    });
  };
  const base = { requestTimeout: 60_000, headersTimeout: 30_000 };
  const tlsOpts = opts.tls;
  const server: Server = tlsOpts
    ? https.createServer({ ...base, ...tlsOpts.contextOptions(), requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, handler)
    : http.createServer(base, handler);
  const offTls = tlsOpts?.onChange(() => (server as https.Server).setSecureContext({ ...tlsOpts.contextOptions(), minVersion: 'TLSv1.2' }));

  return {
    server,
    resources: opts.resources,
    handler,
    addRoutes: (routes) => router.add(routes),
    listen(port, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const addr = server.address() as AddressInfo;
          const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
          resolve({ port: addr.port, url: `${tlsOpts ? 'https' : 'http'}://${h}:${addr.port}` });
        });
      });
    },
    close() {
      offTls?.();
      for (const res of streams) res.end();
      streams.clear();
      return new Promise((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

export interface StartedApi {
  api: ApiServer;
  resources: ResourceService;
  port: number;
  url: string;
  close(): Promise<void>;
}

/** For `trellis control-plane`: the resource service over `store`, served on host:port. */
export async function startApi(opts: { store: Store; port?: number; host?: string; routes?: readonly ApiRoute[]; quota?: KindQuota; auth?: ApiAuth }): Promise<StartedApi> {
  const resources = createResourceService(opts.store, opts.quota ? { quota: opts.quota } : {});
  const api = createApiServer({ resources, ...(opts.routes ? { routes: opts.routes } : {}), ...(opts.auth ? { auth: opts.auth } : {}) });
  const { port, url } = await api.listen(opts.port ?? DEFAULT_API_PORT, opts.host ?? '127.0.0.1');
  return { api, resources, port, url, close: () => api.close() };
}
