// Leader duties of a highly available control plane: every replica serves the
// API and xDS, but a few tasks must run exactly once in the mesh (VIP
// allocation, CA maintenance). Each replica campaigns (leader.ts); the winner
// starts the duties, and stops them the moment it is deposed (key deleted,
// lease lost, resign). Transitions are serialised, so a quick
// deposed -> elected never runs two copies of a duty.
//
// Fencing: a duty gets the term (the store revision at which the leadership
// began) and `fenced()`, which says whether this replica still leads in that
// same term; a duty checks it right before a write that must not come from a
// stale leader. Writes that are race-free by themselves (create-only keys,
// compare-and-swap on the value read) need no more than that.
import type { Store } from './store/types.ts';
import { campaign, type Election } from './leader.ts';
import { sendJson, type ApiRoute } from './api/server.ts';
import { startVipAllocator } from './registry/vip-allocator.ts';
import { CA_STATE_KEY, type CertificateAuthority } from './ca/ca.ts';
import type { StoreError, Watch } from './store/types.ts';

export const CONTROL_PLANE_ELECTION = 'control-plane';

export interface DutyContext {
  readonly term: number;
  /** True while this replica still leads in `term`. */
  fenced(): boolean;
  log(msg: string): void;
}

export interface RunningDuty {
  stop(): Promise<void> | void;
}

export interface LeaderDuty {
  readonly name: string;
  start(ctx: DutyContext): Promise<RunningDuty> | RunningDuty;
}

export interface LeaderDutiesOptions {
  /** This replica's id, shown to the others as the leader's identity. */
  identity: string;
  /** How long a dead leader keeps the title (default 10 s). */
  ttlSeconds?: number;
  duties: readonly LeaderDuty[];
  log?: (msg: string) => void;
}

export interface HaStatus {
  readonly controlPlane: string;
  readonly isLeader: boolean;
  /** The leader's id as last seen (null: unknown or none). */
  readonly leader: string | null;
  readonly term: number | null;
  /** Duties running here (empty unless leader). */
  readonly duties: readonly string[];
  /** Elections won by this replica since it started. */
  readonly terms: number;
}

export interface LeaderDuties {
  readonly election: Election;
  status(): HaStatus;
  /** Resolves when the last transition (start or stop of the duties) is done. */
  settled(): Promise<void>;
  /** Stop the duties and give up the title at once. */
  stop(): Promise<void>;
}

export function runLeaderDuties(store: Store, opts: LeaderDutiesOptions): LeaderDuties {
  const log = opts.log ?? (() => {});
  const election = campaign(store, CONTROL_PLANE_ELECTION, { identity: opts.identity, ttlSeconds: opts.ttlSeconds ?? 10 });
  const running = new Map<string, RunningDuty>();
  let chain: Promise<void> = Promise.resolve();
  let terms = 0;
  let stopped = false;

  const stopAll = async (why: string): Promise<void> => {
    for (const [name, d] of [...running].reverse()) {
      running.delete(name);
      try {
        await d.stop();
        log(`leader duty ${name} stopped (${why})`);
      } catch (err) {
        log(`leader duty ${name}: stop failed: ${(err as Error).message}`);
      }
    }
  };

  const startAll = async (): Promise<void> => {
    const term = election.term();
    if (stopped || term === null || !election.isLeader()) return;
    terms++;
    log(`elected leader (term ${term})`);
    const ctx: DutyContext = { term, fenced: () => !stopped && election.isLeader() && election.term() === term, log };
    for (const duty of opts.duties) {
      if (!ctx.fenced()) break;
      try {
        running.set(duty.name, await duty.start(ctx));
        log(`leader duty ${duty.name} started`);
      } catch (err) {
        log(`leader duty ${duty.name}: start failed: ${(err as Error).message}`);
      }
    }
    // Deposed while starting: the deposed transition queued behind us stops them.
  };

  const enqueue = (step: () => Promise<void>): void => {
    chain = chain.then(step, step);
  };
  election.onElected(() => enqueue(startAll));
  election.onDeposed(() =>
    enqueue(async () => {
      log('no longer leader');
      await stopAll('deposed');
    }),
  );

  return {
    election,
    status: () => ({
      controlPlane: opts.identity,
      isLeader: election.isLeader(),
      leader: election.leader(),
      term: election.term(),
      duties: [...running.keys()],
      terms,
    }),
    settled: async () => {
      for (let i = 0; i < 100; i++) {
        const c = chain;
        await c;
        if (c === chain) return;
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await election.resign();
      enqueue(() => stopAll('stopped'));
      await chain;
    },
  };
}

/** `GET /api/v1/ha`: this replica's view of the election and its duties. */
export function haRoutes(duties: LeaderDuties): ApiRoute[] {
  return [
    {
      method: 'GET',
      pattern: '/api/v1/ha',
      handle(_req, res) {
        sendJson(res, 200, duties.status());
      },
    },
  ];
}

/** Service VIPs (registry/vip-allocator.ts): allocation is race-free by
 * itself (create-only claims), running it once just avoids the contention. */
export function vipAllocationDuty(store: Store): LeaderDuty {
  return {
    name: 'vip-allocation',
    start(ctx) {
      return startVipAllocator(store, { onError: (err) => ctx.log(`vip allocation: ${(err as Error).message ?? String(err)}`) });
    },
  };
}

export interface CaMaintenanceOptions {
  /** Rotate the intermediate when it has less than this left (default 30 days). */
  renewBeforeMs?: number;
  /** How often to look (default 10 min). */
  checkIntervalMs?: number;
  now?: () => number;
}

/** CA signing-key maintenance: rotate the intermediate before it expires.
 * The CA's own save is a compare-and-swap on the state it read; the fence
 * check keeps a deposed leader from even trying. */
export function caMaintenanceDuty(ca: CertificateAuthority, opts: CaMaintenanceOptions = {}): LeaderDuty {
  const renewBefore = opts.renewBeforeMs ?? 30 * 24 * 3600_000;
  const every = opts.checkIntervalMs ?? 10 * 60_000;
  const now = opts.now ?? Date.now;
  return {
    name: 'ca-maintenance',
    start(ctx) {
      let busy: Promise<void> | null = null;
      const check = (): void => {
        if (busy) return;
        busy = (async () => {
          try {
            await ca.reload();
            const left = Date.parse(ca.status().intermediate.notAfter) - now();
            if (left >= renewBefore || !ctx.fenced()) return;
            await ca.rotateIntermediate();
            ctx.log(`ca: intermediate rotated (term ${ctx.term}), new one until ${ca.status().intermediate.notAfter}`);
          } catch (err) {
            ctx.log(`ca maintenance: ${(err as Error).message}`);
          } finally {
            busy = null;
          }
        })();
      };
      check();
      const timer = setInterval(check, every);
      timer.unref();
      return {
        async stop() {
          clearInterval(timer);
          await busy;
        },
      };
    },
  };
}

/** Every replica (not only the leader): follow the CA state in the store, so
 * a rotation made through (or by) another replica is signed with and
 * distributed here too. `onReloaded` re-pushes the trust bundle. */
export function followCaState(store: Store, ca: CertificateAuthority, opts: { onReloaded: () => void; log?: (msg: string) => void; retryMs?: number }): { stop(): void } {
  let watch: Watch | null = null;
  let stopped = false;
  let retry: NodeJS.Timeout | null = null;
  let chain: Promise<void> = Promise.resolve();
  const reload = (): void => {
    chain = chain.then(async () => {
      if (stopped) return;
      try {
        await ca.reload();
        opts.onReloaded();
      } catch (err) {
        opts.log?.(`ca: reload failed: ${(err as Error).message}`);
      }
    });
  };
  const start = async (): Promise<void> => {
    if (stopped) return;
    try {
      const listed = await store.list(CA_STATE_KEY);
      if (stopped) return;
      watch = store.watch(CA_STATE_KEY, { fromRevision: listed.revision + 1 }, {
        onEvent: (ev) => {
          if ((ev.type === 'put' ? ev.kv.key : ev.key) === CA_STATE_KEY) reload();
        },
        onError: (err: StoreError) => {
          watch = null;
          if (err.code === 'closed' || stopped) return;
          reload(); // whatever was missed
          retry = setTimeout(() => void start(), opts.retryMs ?? 1_000);
        },
      });
    } catch (err) {
      if ((err as StoreError).code === 'closed' || stopped) return;
      retry = setTimeout(() => void start(), opts.retryMs ?? 1_000);
    }
  };
  void start();
  return {
    stop() {
      stopped = true;
      if (retry) clearTimeout(retry);
      watch?.cancel();
    },
  };
}
