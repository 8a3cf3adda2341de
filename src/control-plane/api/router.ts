// A tiny router for the control plane's one HTTP port (15080): the resource
// API, and whatever other parts mount (registry, xDS status, metrics, the
// dashboard's static files) through `server.addRoutes(routes)`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { apiError, sendError, type ApiError } from './http-errors.ts';
import type { Access } from './auth.ts';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';

export interface ApiRoute {
  method: HttpMethod | '*';
  /**
   * A path pattern: literal segments and `:name` parameters
   * (`/api/v1/resources/:kind/:namespace/:name`); a final `*` matches the
   * rest of the path (`/dashboard/*`, available as `params['*']`).
   */
  pattern: string;
  /** Who may call it (auth.ts); default: read for GET/HEAD, write otherwise. */
  access?: Access;
  handle(req: IncomingMessage, res: ServerResponse, params: Record<string, string>): void | Promise<void>;
}

interface Compiled {
  route: ApiRoute;
  segments: string[];
  rest: boolean;
}

export type RouteMatch =
  | { ok: true; route: ApiRoute; params: Record<string, string> }
  | { ok: false; reason: 'not_found' | 'method_not_allowed'; allow: string[] };

export class Router {
  readonly #routes: Compiled[] = [];

  add(routes: readonly ApiRoute[]): void {
    for (const route of routes) {
      const parts = route.pattern.split('/').filter((s) => s !== '');
      const rest = parts.at(-1) === '*';
      this.#routes.push({ route, segments: rest ? parts.slice(0, -1) : parts, rest });
    }
  }

  match(method: string, pathname: string): RouteMatch {
    let parts: string[];
    try {
      parts = pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
    } catch {
      return { ok: false, reason: 'not_found', allow: [] };
    }
    const allow: string[] = [];
    for (const c of this.#routes) {
      const params = matchSegments(c, parts);
      if (!params) continue;
      const m = c.route.method;
      if (m === '*' || m === method || (method === 'HEAD' && m === 'GET')) return { ok: true, route: c.route, params };
      allow.push(m);
    }
    return allow.length > 0 ? { ok: false, reason: 'method_not_allowed', allow } : { ok: false, reason: 'not_found', allow };
  }

  /** `guard` (auth.ts) may refuse the matched route with an error. */
  async dispatch(req: IncomingMessage, res: ServerResponse, guard?: (req: IncomingMessage, route: ApiRoute) => Promise<ApiError | undefined>): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const m = this.match(req.method ?? 'GET', url.pathname);
    if (!m.ok) {
      if (m.reason === 'method_not_allowed') res.setHeader('allow', [...new Set(m.allow)].join(', '));
      sendError(res, m.reason === 'method_not_allowed'
        ? apiError('method_not_allowed', `${req.method} is not allowed on ${url.pathname}`)
        : apiError('not_found', `no such endpoint: ${url.pathname}`));
      return;
    }
    const refused = guard ? await guard(req, m.route) : undefined;
    if (refused) {
      if (refused.code === 'unauthenticated') res.setHeader('www-authenticate', 'Bearer realm="trellis"');
      sendError(res, refused);
      req.resume();
      return;
    }
    await m.route.handle(req, res, m.params);
  }
}

function matchSegments(c: Compiled, parts: string[]): Record<string, string> | undefined {
  if (c.rest ? parts.length < c.segments.length : parts.length !== c.segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < c.segments.length; i++) {
    const seg = c.segments[i] ?? '';
    const part = parts[i] ?? '';
    if (seg.startsWith(':')) params[seg.slice(1)] = part;
    else if (seg !== part) return undefined;
  }
  if (c.rest) params['*'] = parts.slice(c.segments.length).join('/');
  return params;
}
