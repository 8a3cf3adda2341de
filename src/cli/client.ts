// The CLI's client for the control plane's HTTP API. Every call returns a
// tagged result; a control plane that cannot be reached is an ordinary
// outcome with a message that says what to do.
import type { ApiError } from '../control-plane/api/http-errors.ts';
import type { ApplyItemResult } from '../control-plane/api/resource-routes.ts';
import type { Resource } from '../api/types.ts';

import { apiFetch } from './api-fetch.ts';
import { resolveConnection, type Connection, type ConnectionFlags } from './contexts.ts';

export { DEFAULT_SERVER } from './contexts.ts';

/** The control plane and credentials for a command's --server/--context (contexts.ts). */
export function connection(flags: ConnectionFlags): Connection {
  return resolveConnection(flags);
}

export type CallResult<T> = { ok: true; status: number; body: T } | { ok: false; status: number; error: ApiError; body: unknown };

export interface ApplyResponse {
  dryRun?: boolean;
  results: ApplyItemResult[];
  error?: ApiError;
}

export interface ResourceList {
  items: Resource[];
  metadata: { resourceVersion: string };
}

export interface Client {
  readonly server: string;
  apply(resources: unknown[], opts: { dryRun?: boolean }): Promise<CallResult<ApplyResponse>>;
  list(kind: string, opts: { namespace?: string; labelSelector?: string }): Promise<CallResult<ResourceList>>;
  get(kind: string, namespace: string, name: string): Promise<CallResult<Resource>>;
  delete(kind: string, namespace: string, name: string, opts?: { dryRun?: boolean }): Promise<CallResult<{ resource: Resource }>>;
  /** Workloads registered by `trellis run` and sidecars (the registry, not the store's Workload resources). */
  registered(): Promise<CallResult<{ items: RegisteredWorkload[] }>>;
}

/** A registry entry as /api/v1/registry/workloads lists it. */
export interface RegisteredWorkload {
  name: string;
  namespace: string;
  serviceAccount: string;
  address: string;
  ports: { port: number; protocol?: string; name?: string; proxyPort?: number }[];
  labels: Record<string, string>;
  locality?: { region: string; zone: string };
  registeredAt: string;
}

const TIMEOUT_MS = 30_000;

export function createClient(target: string | Connection): Client {
  const conn: Connection = typeof target === 'string' ? { server: target } : target;
  const server = conn.server;
  async function call<T>(method: string, path: string, body?: unknown): Promise<CallResult<T>> {
    let res: Response;
    try {
      res = await apiFetch(conn, path, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      const why = cause?.code ?? (err as Error).message;
      return {
        ok: false, status: 0, body: undefined,
        error: { code: 'unavailable', message: `cannot reach the control plane at ${server} (${why}); is \`trellis control-plane\` running? (set --server, TRELLIS_SERVER or --context)` },
      };
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return { ok: false, status: res.status, body: text, error: { code: 'internal', message: `unexpected response from ${server}: HTTP ${res.status}` } };
    }
    const err = (parsed as { error?: ApiError } | null)?.error;
    if (!res.ok || err) {
      return { ok: false, status: res.status, body: parsed, error: err ?? { code: 'internal', message: `HTTP ${res.status}` } };
    }
    return { ok: true, status: res.status, body: parsed as T };
  }
  const seg = encodeURIComponent;
  return {
    server,
    apply: (resources, opts) => call('POST', `/api/v1/apply${opts.dryRun ? '?dryRun=true' : ''}`, resources),
    list(kind, opts) {
      const q = new URLSearchParams();
      if (opts.namespace) q.set('namespace', opts.namespace);
      if (opts.labelSelector) q.set('labelSelector', opts.labelSelector);
      const qs = q.toString();
      return call('GET', `/api/v1/resources/${seg(kind)}${qs ? `?${qs}` : ''}`);
    },
    get: (kind, ns, name) => call('GET', `/api/v1/resources/${seg(kind)}/${seg(ns)}/${seg(name)}`),
    delete: (kind, ns, name, opts = {}) => call('DELETE', `/api/v1/resources/${seg(kind)}/${seg(ns)}/${seg(name)}${opts.dryRun ? '?dryRun=true' : ''}`),
    registered: () => call('GET', '/api/v1/registry/workloads'),
  };
}

const REASONS: Record<string, string> = {
  bad_request: 'BadRequest', unauthenticated: 'Unauthorized', forbidden: 'Forbidden', not_found: 'NotFound', method_not_allowed: 'MethodNotAllowed', conflict: 'Conflict',
  payload_too_large: 'RequestEntityTooLarge', unsupported_media_type: 'UnsupportedMediaType', invalid: 'Invalid',
  internal: 'InternalError', unavailable: 'ServiceUnavailable',
};

/** kubectl's wording: `Error from server (NotFound): ...`; unreachable servers get a plain `error:`. */
export function formatApiError(err: ApiError, status: number): string {
  if (status === 0) return `error: ${err.message}`;
  return `Error from server (${REASONS[err.code] ?? err.code}): ${err.message}`;
}
