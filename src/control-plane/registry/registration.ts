// Workload registration with a TTL heartbeat. register() writes the workload
// under its key attached to a fresh lease that is NOT kept alive by the
// control plane: only the workload's heartbeats (heartbeat()) renew it, so a
// workload that dies vanishes from the registry `ttlSeconds` later, on every
// replica, with a delete event. Registering the same namespace/name again
// replaces the record (and moves it to the new lease).
import { StoreError, type Lease, type Store } from '../store/types.ts';
import { validateWorkload, workloadKey, type Workload, type WorkloadFieldError } from './workload.ts';

export const DEFAULT_REGISTRATION_TTL_SECONDS = 30;

export interface RegisterOptions {
  /** How long the workload stays registered without a heartbeat (default 30 s). */
  ttlSeconds?: number;
}

export type HeartbeatResult = { ok: true } | { ok: false; reason: 'expired' | 'unavailable'; message: string };

export interface Registration {
  readonly key: string;
  readonly workload: Workload;
  readonly leaseId: string;
  readonly ttlSeconds: number;
  /** Renew the lease. `expired`: too late, register again. */
  heartbeat(): Promise<HeartbeatResult>;
  /** Remove the workload now. */
  deregister(): Promise<void>;
  /** The lease ran out (no heartbeat within the TTL). */
  onExpired(cb: () => void): void;
}

export type RegisterResult =
  | { ok: true; registration: Registration }
  | { ok: false; reason: 'invalid'; errors: WorkloadFieldError[] };

export async function register(store: Store, input: unknown, opts: RegisterOptions = {}): Promise<RegisterResult> {
  const ttl = opts.ttlSeconds ?? DEFAULT_REGISTRATION_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 3600) return { ok: false, reason: 'invalid', errors: [{ field: 'ttlSeconds', reason: 'must be an integer 1-3600' }] };
  const v = validateWorkload(input);
  if (!v.ok) return { ok: false, reason: 'invalid', errors: v.errors };
  const workload = v.workload;
  const key = workloadKey(workload.namespace, workload.name);
  const lease: Lease = await store.grantLease(ttl, { autoKeepAlive: false });
  try {
    const res = await store.put(key, JSON.stringify(workload), { lease: lease.id });
    if (!res.ok) throw new StoreError('unavailable', `register ${key}: unexpected conflict`);
  } catch (err) {
    await lease.revoke().catch(() => undefined);
    throw err;
  }
  const registration: Registration = {
    key,
    workload,
    leaseId: lease.id,
    ttlSeconds: ttl,
    async heartbeat() {
      try {
        await lease.keepAlive();
        return { ok: true };
      } catch (err) {
        if (err instanceof StoreError && (err.code === 'lease_not_found' || err.code === 'closed')) {
          return { ok: false, reason: 'expired', message: `registration of ${workload.namespace}/${workload.name} has expired; register again` };
        }
        if (err instanceof StoreError) return { ok: false, reason: 'unavailable', message: err.message };
        throw err;
      }
    },
    async deregister() {
      await lease.revoke();
    },
    onExpired(cb) {
      lease.onLost(cb);
    },
  };
  return { ok: true, registration };
}
