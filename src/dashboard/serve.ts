// The dashboard's static files on the control plane's API port (15080):
//
//   GET /                 index.html (the SPA; pages are hash routes, #/topology ...)
//   GET /assets/<file>    the bundle (app.js, app.css) from src/dashboard/dist
//   GET /<anything else>  index.html too (SPA fallback), except /api/... which
//                         keeps the API's JSON 404
//
// Mount these LAST (`api.addRoutes(dashboardRoutes())`): the fallback matches
// every path. When the build output is missing or older than the sources, the
// first request builds it (esbuild, well under a second).
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiRoute } from '../control-plane/api/router.ts';
import { apiError, sendError } from '../control-plane/api/http-errors.ts';
import { DIST_DIR, buildDashboard, needsBuild, type BuildResult } from './build.ts';

export interface DashboardRoutesOptions {
  /** Where the built files are (default src/dashboard/dist). */
  readonly distDir?: string;
  /** Build on first request when missing or stale (default true). */
  readonly lazyBuild?: boolean;
  readonly log?: (msg: string) => void;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
};

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
};

export function dashboardRoutes(o: DashboardRoutesOptions = {}): ApiRoute[] {
  const distDir = o.distDir ?? DIST_DIR;
  let ready: Promise<BuildResult | undefined> | undefined;
  const ensureBuilt = (): Promise<BuildResult | undefined> => {
    if (o.lazyBuild === false || o.distDir !== undefined) return Promise.resolve(undefined);
    ready ??= (async () => {
      if (!needsBuild()) return undefined;
      const r = await buildDashboard();
      o.log?.(r.ok ? `dashboard: built in ${r.ms} ms` : `dashboard: build failed: ${r.message}`);
      return r;
    })();
    return ready;
  };

  const serveFile = async (req: IncomingMessage, res: ServerResponse, name: string, cache: string): Promise<void> => {
    const built = await ensureBuilt();
    if (built && !built.ok) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
      res.end(`The dashboard could not be built (${built.code}): ${built.message}\n`);
      return;
    }
    // Only names that exist in dist, one path segment: no traversal.
    let names: string[];
    try {
      names = await readdir(distDir);
    } catch {
      names = [];
    }
    if (!names.includes(name)) {
      if (name === 'index.html') {
        res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
        res.end('The dashboard is not built: run `npm run build:dashboard` (or `npm install`).\n');
      } else sendError(res, apiError('not_found', `no such file: /assets/${name}`));
      return;
    }
    const body = await readFile(path.join(distDir, name));
    res.writeHead(200, {
      'content-type': TYPES[path.extname(name)] ?? 'application/octet-stream',
      'content-length': body.length,
      'cache-control': cache,
      ...SECURITY_HEADERS,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  return [
    {
      method: 'GET',
      pattern: '/assets/:file',
      access: 'public',
      handle: (req, res, params) => serveFile(req, res, params.file ?? '', 'no-cache'),
    },
    {
      method: '*',
      pattern: '/*',
      access: 'public',
      handle(req, res, params) {
        const rest = params['*'] ?? '';
        if (rest === 'api' || rest.startsWith('api/')) return sendError(res, apiError('not_found', `no such endpoint: /${rest}`));
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          res.setHeader('allow', 'GET, HEAD');
          return sendError(res, apiError('method_not_allowed', `${req.method} is not allowed on /${rest}`));
        }
        return serveFile(req, res, 'index.html', 'no-cache');
      },
    },
  ];
}
