// The registry over HTTP: workloads (their sidecars, or `trellis run`)
// register, heartbeat and deregister here. Each registration is a lease the
// workload's heartbeats renew; a workload that stops heartbeating disappears
// after its TTL on every replica. A heartbeat that reaches a replica which
// does not hold the lease (another replica took the registration, or this one
// restarted) answers 404 `expired`, and the workload registers again.
//
// Who may register what (api/auth.ts): an admin anything; anyone else only
// workloads of its own namespace and service account. Whether a workload
// speaks mTLS (the `trellis.dev/tls-mode` label translate reads) is the
// control plane's call from the credential, never the caller's label: a
// workload registered with a proven identity (its certificate or join
// token, api/workload-credentials.ts) is `mtls`, one registered with
// anything less (a registrar API token) is `none`. Only an admin may state
// the label itself.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Store } from './store/types.ts';
import { register, type Registration } from './registry/registration.ts';
import { parseStoredWorkload, workloadKey, WORKLOADS_PREFIX } from './registry/workload.ts';
import { apiError, readStructuredBody, sendError, sendJson, type ApiRoute } from './api/server.ts';
import { mayRegister, principalOf } from './api/auth.ts';
import { provesIdentity } from './api/workload-credentials.ts';
import { TLS_MODE_LABEL } from './translate/services.ts';

export interface RegistryApi {
  routes: ApiRoute[];
  close(): Promise<void>;
}

export function registryRoutes(store: Store, opts: { log?: (m: string) => void } = {}): RegistryApi {
  const held = new Map<string, Registration>();
  const log = opts.log ?? (() => {});

  const registerRoute = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readStructuredBody(req);
    if (!body.ok) return sendError(res, body.error);
    const input = body.value as Record<string, unknown> | null;
    const ttlRaw = input && typeof input === 'object' ? input.ttlSeconds : undefined;
    // A join token is a secret: it never goes into the registry (which viewers read).
    const { ttlSeconds: _ttl, joinToken: _secret, ...workload } = (input ?? {}) as Record<string, unknown>;
    void _ttl;
    void _secret;
    // A registrar registers under its own identity only (auth.ts).
    const who = principalOf(req);
    const denied = mayRegister(who, String(workload.namespace ?? 'default'), String(workload.serviceAccount ?? 'default'));
    if (denied) return sendError(res, denied);
    if (who !== undefined && who.role !== 'admin') {
      const labels = workload.labels && typeof workload.labels === 'object' && !Array.isArray(workload.labels) ? workload.labels as Record<string, unknown> : {};
      workload.labels = { ...labels, [TLS_MODE_LABEL]: provesIdentity(who) ? 'mtls' : 'none' };
    }
    const r = await register(store, workload, ttlRaw === undefined ? {} : { ttlSeconds: Number(ttlRaw) });
    if (!r.ok) {
      return sendError(res, apiError('invalid', `Workload ${String(workload.namespace ?? 'default')}/${String(workload.name ?? '?')}: ${r.errors.map((e) => `${e.field}: ${e.reason}`).join('; ')}`, {
        fields: r.errors.map((e) => ({ path: e.field, message: e.reason })),
      }));
    }
    const reg = r.registration;
    const prev = held.get(reg.key);
    held.set(reg.key, reg);
    // The previous lease (a re-registration) no longer holds the key; let it lapse.
    if (prev && prev.leaseId !== reg.leaseId) void prev.deregister().catch(() => {});
    reg.onExpired(() => {
      if (held.get(reg.key) === reg) held.delete(reg.key);
      log(`workload ${reg.workload.namespace}/${reg.workload.name} expired (no heartbeat within ${reg.ttlSeconds}s)`);
    });
    log(`workload ${reg.workload.namespace}/${reg.workload.name} registered at ${reg.workload.address}`);
    sendJson(res, 201, { key: reg.key, leaseId: reg.leaseId, ttlSeconds: reg.ttlSeconds, workload: reg.workload });
  };

  /** A registrar acts only on workloads of its identity. */
  const refuseOther = async (req: IncomingMessage, key: string): Promise<ReturnType<typeof mayRegister>> => {
    const who = principalOf(req);
    if (who === undefined || who.role === 'admin') return undefined;
    const w = held.get(key)?.workload ?? parseStoredWorkload((await store.get(key))?.value ?? 'null');
    return w ? mayRegister(who, w.namespace, w.serviceAccount) : undefined;
  };

  const heartbeatRoute = async (req: IncomingMessage, res: ServerResponse, p: Record<string, string>): Promise<void> => {
    const key = workloadKey(p.namespace ?? '', p.name ?? '');
    const denied = await refuseOther(req, key);
    if (denied) return sendError(res, denied);
    const reg = held.get(key);
    if (!reg) return sendError(res, apiError('not_found', `workload ${p.namespace}/${p.name} is not registered with this replica: register again`), { expired: true });
    const hb = await reg.heartbeat();
    if (hb.ok) return sendJson(res, 200, { ok: true, ttlSeconds: reg.ttlSeconds });
    if (hb.reason === 'expired') {
      held.delete(key);
      return sendError(res, apiError('not_found', hb.message), { expired: true });
    }
    sendError(res, apiError('unavailable', hb.message));
  };

  const deregisterRoute = async (req: IncomingMessage, res: ServerResponse, p: Record<string, string>): Promise<void> => {
    const key = workloadKey(p.namespace ?? '', p.name ?? '');
    const denied = await refuseOther(req, key);
    if (denied) return sendError(res, denied);
    const reg = held.get(key);
    held.delete(key);
    if (reg) await reg.deregister().catch(() => {});
    else await store.delete(key);
    log(`workload ${p.namespace}/${p.name} deregistered`);
    res.writeHead(204).end();
  };

  const listRoute = async (_req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const { items, revision } = await store.list(WORKLOADS_PREFIX);
    sendJson(res, 200, { revision, items: items.map((kv) => parseStoredWorkload(kv.value)).filter((w) => w !== null) });
  };

  return {
    routes: [
      { method: 'POST', pattern: '/api/v1/registry/workloads', access: 'register', handle: registerRoute },
      { method: 'GET', pattern: '/api/v1/registry/workloads', handle: listRoute },
      { method: 'PUT', pattern: '/api/v1/registry/workloads/:namespace/:name/heartbeat', access: 'register', handle: heartbeatRoute },
      { method: 'DELETE', pattern: '/api/v1/registry/workloads/:namespace/:name', access: 'register', handle: deregisterRoute },
    ],
    async close() {
      // Registrations outlive this replica: their leases expire on their own
      // unless the workload heartbeats (and re-registers) elsewhere.
      held.clear();
    },
  };
}
