// Lease-based leader election over any Store. The leader owns the key
// `/trellis/leader/<name>`, written create-only and attached to its lease;
// the others watch the key and try again when it is deleted (resignation,
// or the leader's lease expiring because its process died or lost etcd).
// Leadership ends (onDeposed) when the key goes or the lease is lost; the
// campaign then continues with a fresh lease until resign().
import { randomUUID } from 'node:crypto';
import { StoreError, type Lease, type Store, type WatchEvent } from './store/types.ts';

export const LEADER_PREFIX = '/trellis/leader/';

export interface CampaignOptions {
  /** Lease TTL: how long a dead leader keeps the title (default 10). */
  ttlSeconds?: number;
  /** Who is campaigning (host name, pod name...): shown to the others. */
  identity: string;
  /** Wait after a store error before trying again (default 500 ms). */
  retryMs?: number;
}

export interface Election {
  readonly name: string;
  readonly identity: string;
  isLeader(): boolean;
  /** The leader's identity as last seen by this campaigner (null if unknown/none). */
  leader(): string | null;
  /** While leader: the store revision at which this term began. Terms only
   * grow, so writers can fence with it (compare, or record it beside writes). */
  term(): number | null;
  onElected(cb: () => void): void;
  /** Leadership ended: key deleted, lease lost, or resign(). */
  onDeposed(cb: () => void): void;
  /** Stop campaigning; a leader gives the title up at once (its lease is revoked). */
  resign(): Promise<void>;
}

interface LeaderRecord {
  identity: string;
  token: string;
  since: string;
}

function parseRecord(value: string): LeaderRecord | null {
  try {
    const v = JSON.parse(value) as Partial<LeaderRecord>;
    return typeof v.identity === 'string' && typeof v.token === 'string' ? (v as LeaderRecord) : null;
  } catch {
    return null;
  }
}

export function validateElectionName(name: unknown): string | null {
  if (typeof name !== 'string' || !/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/.test(name)) return 'name must be a DNS label-like string (a-z, 0-9, ".", "-")';
  return null;
}

/** Start campaigning for `name`. Throws StoreError `invalid` on bad options. */
export function campaign(store: Store, name: string, opts: CampaignOptions): Election {
  const bad = validateElectionName(name);
  if (bad) throw new StoreError('invalid', bad);
  if (typeof opts.identity !== 'string' || opts.identity.length === 0) throw new StoreError('invalid', 'identity must be a non-empty string');
  const ttl = opts.ttlSeconds ?? 10;
  if (!Number.isFinite(ttl) || ttl < 1) throw new StoreError('invalid', `ttlSeconds must be >= 1, got ${ttl}`);
  const retryMs = opts.retryMs ?? 500;
  const key = LEADER_PREFIX + name;
  const token = randomUUID();
  const electedCbs: Array<() => void> = [];
  const deposedCbs: Array<() => void> = [];
  let leading = false;
  let term: number | null = null;
  let leaderIdentity: string | null = null;
  let stopped = false;
  let lease: Lease | null = null;
  let leaseLost = false;

  // Anything that should interrupt a wait (key change, lease loss, resign).
  let wake: (() => void) | null = null;
  const poke = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        wake = null;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const setLeading = (v: boolean, at: number | null = null) => {
    if (v === leading) return;
    leading = v;
    term = v ? at : null;
    for (const cb of v ? electedCbs : deposedCbs) cb();
  };

  /** Resolve when the key changes after `fromRevision` (or on lease loss/resign/error). */
  const waitForChange = (fromRevision: number) =>
    new Promise<'changed' | 'closed'>((resolve) => {
      let settled = false;
      const finish = (how: 'changed' | 'closed') => {
        if (settled) return;
        settled = true;
        w.cancel();
        wake = null;
        resolve(how);
      };
      const w = store.watch(key, { fromRevision }, {
        onEvent: (ev: WatchEvent) => {
          const k = ev.type === 'put' ? ev.kv.key : ev.key;
          if (k !== key) return; // `/trellis/leader/a` is a prefix of `/trellis/leader/ab`
          if (ev.type === 'put') {
            leaderIdentity = parseRecord(ev.kv.value)?.identity ?? null;
            return;
          }
          leaderIdentity = null;
          finish('changed');
        },
        onError: (err) => finish(err.code === 'closed' ? 'closed' : 'changed'),
      });
      wake = () => finish('changed');
    });

  const run = async () => {
    while (!stopped) {
      try {
        if (!lease || leaseLost) {
          leaseLost = false;
          const l = await store.grantLease(ttl);
          lease = l;
          l.onLost(() => {
            if (lease !== l) return;
            leaseLost = true;
            setLeading(false);
            poke();
          });
          if (stopped) {
            await l.revoke();
            return;
          }
        }
        const record: LeaderRecord = { identity: opts.identity, token, since: new Date().toISOString() };
        const res = await store.put(key, JSON.stringify(record), { expectModRevision: 0, lease: lease.id });
        const current = res.ok ? null : res.current;
        let heldAt: number | null = null;
        if (res.ok) heldAt = res.kv.modRevision;
        else if (current && parseRecord(current.value)?.token === token) heldAt = current.modRevision; // our own write, retried
        if (heldAt !== null) {
          leaderIdentity = opts.identity;
          if (stopped || leaseLost) continue;
          setLeading(true, heldAt);
          const how = await waitForChange(heldAt + 1);
          // Still ours? (A watch error is not proof of loss.)
          const cur = how === 'closed' || stopped ? null : await store.get(key);
          if (cur && parseRecord(cur.value)?.token === token && !leaseLost) continue;
          setLeading(false);
          if (how === 'closed') return;
          continue;
        }
        if (!current) continue; // deleted meanwhile: try again now
        leaderIdentity = parseRecord(current.value)?.identity ?? null;
        const how = await waitForChange(current.modRevision + 1);
        if (how === 'closed') return;
      } catch (err) {
        if (err instanceof StoreError && err.code === 'closed') {
          setLeading(false);
          return;
        }
        if (err instanceof StoreError && err.code === 'lease_not_found') leaseLost = true;
        setLeading(false);
        if (!stopped) await sleep(retryMs);
      }
    }
  };
  const done = run();

  return {
    name,
    identity: opts.identity,
    isLeader: () => leading,
    leader: () => leaderIdentity,
    term: () => term,
    onElected: (cb) => {
      electedCbs.push(cb);
    },
    onDeposed: (cb) => {
      deposedCbs.push(cb);
    },
    async resign() {
      if (stopped) return;
      stopped = true;
      const l = lease;
      lease = null;
      poke();
      try {
        await l?.revoke();
      } catch {
        // the lease expires on its own
      }
      await done;
      setLeading(false);
    },
  };
}
