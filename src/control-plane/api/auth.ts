// Who is calling the HTTP API, and may they do what they ask
// (docs/security-model.md). Every route declares its access:
//   public    anyone (the dashboard's static files, the trust bundle, the
//             CSR endpoint, which checks its own join token)
//   read      viewer or admin (the default for GET and HEAD)
//   write     admin (the default for every other method)
//   register  admin, or a registrar (or a workload credential) whose
//             identity the handler compares with the workload's
//
// Credentials, in order: `Authorization: Bearer <API token>`, then the
// dashboard's session cookie (the same token, HttpOnly, SameSite=Strict).
// A cookie-authenticated write must carry the CSRF header
// (x-trellis-csrf: HMAC of the token), which another site cannot read or
// forge; and any write sent by a browser from another origin is refused.
//
// Anonymous callers: when the API is bound to loopback only and
// `requireAuth` is off (the default of `npm start` and the README), anyone
// who can reach it is on this machine and is treated as admin, as long as
// the Host header names loopback (a DNS-rebinding page cannot pass).
// Bound to any other address (or with `requireAuth`), anonymous callers get
// only public routes and 401 elsewhere.
import { createHmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { apiError, type ApiError } from './http-errors.ts';
import type { ApiRoute } from './router.ts';
import { ADMIN_TOKEN_FILE, verifyApiToken, type Role, type TokenStore } from './api-tokens.ts';

export type Access = 'public' | 'read' | 'write' | 'register';

export interface Principal {
  /** A token's name, or "anonymous (loopback)". */
  readonly name: string;
  readonly role: Role;
  /** registrar: the one identity it may register workloads under. */
  readonly namespace?: string;
  readonly serviceAccount?: string;
  readonly via: 'loopback' | 'token' | 'session' | 'join-token' | 'certificate';
}

export const SESSION_COOKIE = 'trellis_session';
export const CSRF_COOKIE = 'trellis_csrf';
export const CSRF_HEADER = 'x-trellis-csrf';

export interface ApiAuthOptions {
  /** Where API tokens live (hashed). */
  readonly store: TokenStore;
  /** Credentials required for every non-public route, whatever the caller's address. */
  readonly required: boolean;
  /** How to log in, for 401 messages (e.g. "trellis login --server URL --token $(cat .trellis/data/admin-token)"). */
  readonly loginHint?: string;
  /** Extra credential kinds (a join token, a workload certificate): a
   * principal, undefined when the request carries none, or an error. */
  readonly extra?: (req: IncomingMessage) => Promise<Principal | ApiError | undefined>;
  readonly now?: () => number;
}

export interface ApiAuth {
  /** undefined: go ahead (the principal is then available from principalOf). */
  check(req: IncomingMessage, route: ApiRoute): Promise<ApiError | undefined>;
}

const principals = new WeakMap<IncomingMessage, Principal>();

const refusedCredentials = new WeakMap<IncomingMessage, ApiError>();

/** On a public route: why the credentials the request carried were refused. */
export function refusedCredentialsOf(req: IncomingMessage): ApiError | undefined {
  return refusedCredentials.get(req);
}

/** The authenticated caller of a request that passed `check`. */
export function principalOf(req: IncomingMessage): Principal | undefined {
  return principals.get(req);
}

export const LOOPBACK_ADMIN: Principal = { name: 'anonymous (loopback)', role: 'admin', via: 'loopback' };

export function routeAccess(route: ApiRoute, method: string): Access {
  if (route.access) return route.access;
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS' ? 'read' : 'write';
}

export function isLoopbackAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (h.startsWith('::ffff:')) return isLoopbackAddress(h.slice(7));
  return isIP(h) === 4 && h.startsWith('127.');
}

/** The host part of a Host header ("127.0.0.1:15080", "[::1]:80", "localhost"). */
function hostOf(header: string | undefined): string {
  if (!header) return '';
  const m = /^\[([^\]]+)\]/.exec(header);
  if (m) return m[1]!;
  return header.replace(/:\d+$/, '');
}

export function bearerToken(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  const m = h ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
  return m?.[1];
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

/** The CSRF token that goes with a session token. */
export function csrfTokenFor(sessionToken: string): string {
  return createHmac('sha256', sessionToken).update('trellis-csrf-v1').digest('base64url');
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

function allowed(p: Principal, access: Access): boolean {
  if (access === 'public' || p.role === 'admin') return true;
  if (access === 'read') return p.role === 'viewer';
  if (access === 'register') return p.role === 'registrar';
  return false;
}

const NEEDS: Record<Access, string> = { public: 'nothing', read: 'the viewer or admin role', write: 'the admin role', register: 'the admin role or a registrar credential for the workload\'s identity' };

export function createApiAuth(opts: ApiAuthOptions): ApiAuth {
  const now = opts.now ?? Date.now;
  const hint = opts.loginHint ?? 'trellis login --server URL --token TOKEN';

  const unauthenticated = (why: string): ApiError => apiError('unauthenticated', `${why}: this control plane requires credentials; run \`${hint}\` (the first admin token is in the control plane's data directory, file ${ADMIN_TOKEN_FILE}; \`trellis token create\` makes more), or send Authorization: Bearer <token>`);

  async function identify(req: IncomingMessage): Promise<Principal | ApiError | undefined> {
    const bearer = bearerToken(req);
    if (bearer !== undefined && bearer.startsWith('tat_')) {
      const v = await verifyApiToken(opts.store, bearer, now());
      if (!v.ok) return unauthenticated(v.message);
      const r = v.record;
      return { name: r.name, role: r.role, via: 'token', ...(r.namespace ? { namespace: r.namespace, serviceAccount: r.serviceAccount! } : {}) };
    }
    if (opts.extra) {
      const p = await opts.extra(req);
      if (p !== undefined) return p;
    }
    if (bearer !== undefined) return unauthenticated('the bearer token is not one this control plane issued (API tokens start with tat_)');
    const session = cookie(req, SESSION_COOKIE);
    if (session !== undefined && session !== '') {
      const v = await verifyApiToken(opts.store, session, now());
      // A stale cookie (another control plane's token, one revoked) does not
      // lock a browser out where no credentials are needed.
      if (!v.ok) return opts.required ? unauthenticated(`dashboard session: ${v.message}; log in again`) : undefined;
      if (!READS.has(req.method ?? 'GET') && req.headers[CSRF_HEADER] !== csrfTokenFor(session)) {
        return apiError('forbidden', `a write with the dashboard's session cookie must carry the ${CSRF_HEADER} header (reload the dashboard and try again)`);
      }
      const r = v.record;
      return { name: r.name, role: r.role, via: 'session', ...(r.namespace ? { namespace: r.namespace, serviceAccount: r.serviceAccount! } : {}) };
    }
    return undefined;
  }

  return {
    async check(req, route) {
      const method = req.method ?? 'GET';
      const access = routeAccess(route, method);
      // A browser on another site cannot write, whatever it holds.
      const origin = req.headers.origin;
      if (!READS.has(method) && origin !== undefined && origin !== 'null') {
        let originHost = '';
        try {
          originHost = new URL(origin).host;
        } catch {
          // unparsable: not same-origin
        }
        if (originHost !== (req.headers.host ?? '')) return apiError('forbidden', `cross-origin write refused (Origin ${origin} is not this control plane)`);
      } else if (!READS.has(method) && origin === 'null') {
        return apiError('forbidden', 'cross-origin write refused (Origin null)');
      }
      const who = await identify(req);
      // A public route checks its own credential (the CSR's join token).
      if (who !== undefined && 'code' in who) {
        if (access !== 'public') return who;
        refusedCredentials.set(req, who);
        return undefined;
      }
      let p = who;
      if (p === undefined) {
        if (access === 'public') return undefined;
        if (opts.required) return unauthenticated(`${method} ${pathOf(req)} needs credentials`);
        if (!isLoopbackAddress(hostOf(req.headers.host))) {
          return apiError('forbidden', `anonymous access is for loopback only: the Host header must be 127.0.0.1, [::1] or localhost (got ${JSON.stringify(req.headers.host ?? '')})`);
        }
        p = LOOPBACK_ADMIN;
      }
      if (access === 'public') {
        principals.set(req, p);
        return undefined;
      }
      if (!allowed(p, access)) {
        const what = p.role === 'registrar' ? `${p.role} for ${p.namespace}/${p.serviceAccount}` : p.role;
        return apiError('forbidden', `${p.name} (${what}) may not ${method} ${pathOf(req)}: that needs ${NEEDS[access]}`);
      }
      principals.set(req, p);
      return undefined;
    },
  };
}

function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0] ?? '/';
}

/** For `register` routes: may `p` act on a workload of namespace/serviceAccount? */
export function mayRegister(p: Principal | undefined, namespace: string, serviceAccount: string): ApiError | undefined {
  if (p === undefined || p.role === 'admin') return undefined;
  if (p.role === 'registrar' && p.namespace === namespace && p.serviceAccount === serviceAccount) return undefined;
  const mine = p.namespace ? `${p.namespace}/${p.serviceAccount}` : 'no identity';
  return apiError('forbidden', `${p.name} may register workloads of ${mine} only, not ${namespace}/${serviceAccount}`);
}
