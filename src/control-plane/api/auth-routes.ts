// The API's credential endpoints:
//   POST   /api/v1/auth/tokens        admin; {name, role, namespace?, serviceAccount?, ttl?} -> {token, ...record}
//   GET    /api/v1/auth/tokens        admin; the records (never the secrets)
//   DELETE /api/v1/auth/tokens/:id    admin; revoke (the last admin token cannot be revoked)
//   GET    /api/v1/auth/whoami        who the request authenticates as
//   POST   /api/v1/auth/session       {token} -> the dashboard's session cookie + CSRF token
//   DELETE /api/v1/auth/session       log the dashboard out
import type { ServerResponse } from 'node:http';
import type { ApiRoute } from './router.ts';
import { apiError, sendError, sendJson } from './http-errors.ts';
import { readStructuredBody } from './read-body.ts';
import { parseDuration } from '../../api/schema-common.ts';
import { createApiToken, listApiTokens, revokeApiToken, verifyApiToken, type Role, type TokenStore } from './api-tokens.ts';
import { CSRF_COOKIE, SESSION_COOKIE, csrfTokenFor, principalOf, refusedCredentialsOf } from './auth.ts';

export interface AuthRouteOptions {
  readonly store: TokenStore;
  readonly required: boolean;
  /** The API is served over TLS: cookies get `Secure`. */
  readonly secure?: boolean;
}

export function authRoutes(opts: AuthRouteOptions): ApiRoute[] {
  const { store } = opts;
  const cookieAttrs = `Path=/; SameSite=Strict${opts.secure ? '; Secure' : ''}`;
  const setSession = (res: ServerResponse, token: string, maxAgeS: number): void => {
    res.setHeader('set-cookie', [
      `${SESSION_COOKIE}=${encodeURIComponent(token)}; HttpOnly; Max-Age=${maxAgeS}; ${cookieAttrs}`,
      `${CSRF_COOKIE}=${token === '' ? '' : csrfTokenFor(token)}; Max-Age=${maxAgeS}; ${cookieAttrs}`,
    ]);
  };
  return [
    {
      method: 'POST',
      pattern: '/api/v1/auth/tokens',
      access: 'write',
      async handle(req, res) {
        const body = await readStructuredBody(req);
        if (!body.ok) return sendError(res, body.error);
        const v = (body.value ?? {}) as Record<string, unknown>;
        let ttlMs: number | undefined;
        if (v['ttl'] !== undefined) {
          ttlMs = typeof v['ttl'] === 'string' ? parseDuration(v['ttl']) : undefined;
          if (ttlMs === undefined || ttlMs <= 0) return sendError(res, apiError('bad_request', 'ttl: must be a duration such as 24h or 30m'));
        }
        const r = await createApiToken(store, {
          name: v['name'] as string,
          role: v['role'] as Role,
          ...(v['namespace'] === undefined ? {} : { namespace: v['namespace'] as string }),
          ...(v['serviceAccount'] === undefined ? {} : { serviceAccount: v['serviceAccount'] as string }),
          ...(ttlMs === undefined ? {} : { ttlMs }),
        });
        if (!r.ok) return sendError(res, apiError('bad_request', r.message));
        sendJson(res, 201, { token: r.token, ...r.record });
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/auth/tokens',
      access: 'write',
      async handle(_req, res) {
        sendJson(res, 200, { items: await listApiTokens(store) });
      },
    },
    {
      method: 'DELETE',
      pattern: '/api/v1/auth/tokens/:id',
      access: 'write',
      async handle(_req, res, p) {
        const id = (p.id ?? '').toLowerCase();
        const all = await listApiTokens(store);
        const victim = all.find((t) => t.id === id.slice(0, 12));
        if (victim?.role === 'admin' && all.filter((t) => t.role === 'admin').length === 1) {
          return sendError(res, apiError('conflict', `token ${id} is the last admin token: create another admin token first`));
        }
        const gone = await revokeApiToken(store, id);
        if (!gone) return sendError(res, apiError('not_found', `no API token with id ${id} (see \`trellis token list\`)`));
        sendJson(res, 200, { revoked: gone });
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/auth/whoami',
      access: 'public',
      handle(req, res) {
        const refused = refusedCredentialsOf(req);
        if (refused) return sendError(res, refused);
        const p = principalOf(req);
        sendJson(res, 200, p
          ? { authenticated: p.via !== 'loopback', name: p.name, role: p.role, via: p.via, ...(p.namespace ? { namespace: p.namespace, serviceAccount: p.serviceAccount } : {}), authRequired: opts.required }
          : { authenticated: false, authRequired: opts.required, ...(opts.required ? {} : { note: 'anonymous callers on loopback act as admin' }) });
      },
    },
    {
      method: 'POST',
      pattern: '/api/v1/auth/session',
      access: 'public',
      async handle(req, res) {
        const body = await readStructuredBody(req);
        if (!body.ok) return sendError(res, body.error);
        const token = (body.value as { token?: unknown } | null)?.token;
        if (typeof token !== 'string') return sendError(res, apiError('bad_request', 'token: required, an API token (tat_...)'));
        const v = await verifyApiToken(store, token.trim());
        if (!v.ok) return sendError(res, apiError('unauthenticated', `${v.message}: use a token from \`trellis token create\` or the admin-token file`));
        const maxAge = v.record.expiresAt ? Math.max(1, Math.floor((Date.parse(v.record.expiresAt) - Date.now()) / 1000)) : 12 * 3600;
        setSession(res, token.trim(), Math.min(maxAge, 12 * 3600));
        sendJson(res, 200, { name: v.record.name, role: v.record.role, csrfToken: csrfTokenFor(token.trim()) });
      },
    },
    {
      method: 'DELETE',
      pattern: '/api/v1/auth/session',
      access: 'public',
      handle(_req, res) {
        setSession(res, '', 0);
        res.writeHead(204).end();
      },
    },
  ];
}
