// One request, one tap line. A request between two sidecars is seen twice:
// by the caller's proxy (direction outbound or gateway: what the caller got,
// after retries) and by the callee's (inbound: what the app answered, with
// the mTLS peer). Both carry the same `x-request-id` (the caller's proxy sets
// it), so the joiner pairs them by (request id, destination workload) and
// hands on one TapRequest whose top-level fields are the caller's view (the
// callee's when no caller side was tapped) and whose `client` / `server`
// keep both views.
//
// The callee's side usually completes first. A side whose partner cannot
// come (an unmeshed caller, a destination outside the mesh, no request id)
// is emitted at once; otherwise it waits up to `waitMs` for its partner and
// is then emitted alone. Events the control plane's /api/v1/tap already
// joined pass through. Applications that copy x-request-id onto their own
// calls keep the hops apart: the destination workload is part of the key.
import type { TapEvent } from '../proxy/telemetry/tap.ts';

/** One proxy's view of the request, with the admin address it came from. */
export type TapSide = TapEvent & { readonly proxy?: string };

export interface TapRequest extends TapEvent {
  readonly type: 'exchange';
  /** The caller's proxy's view (outbound or gateway), when it was tapped. */
  readonly client: TapSide | null;
  /** The callee's proxy's view (inbound), the last attempt when retried. */
  readonly server: TapSide | null;
  /** Server-side attempts seen (retries reach the callee more than once). */
  readonly attempts: number;
}

export const DEFAULT_JOIN_WAIT_MS = 1_000;
const UNKNOWN = 'unknown';

interface Pending {
  client: TapSide | null;
  server: TapSide | null;
  attempts: number;
  timer: NodeJS.Timeout;
}

export class TapJoiner {
  private readonly pending = new Map<string, Pending>();
  private readonly emit: (r: TapRequest) => void;
  private readonly waitMs: number;
  private readonly maxPending: number;

  constructor(emit: (r: TapRequest) => void, opts: { waitMs?: number; maxPending?: number } = {}) {
    this.emit = emit;
    this.waitMs = opts.waitMs ?? DEFAULT_JOIN_WAIT_MS;
    this.maxPending = opts.maxPending ?? 10_000;
  }

  add(e: TapEvent | TapRequest, proxy?: string): void {
    // Already one request (the control plane's /api/v1/tap joins): as is.
    if ('client' in e && 'server' in e) {
      this.emit(e);
      return;
    }
    const side: TapSide = proxy === undefined ? e : { ...e, proxy };
    const isServer = e.direction === 'inbound';
    const key = e.request_id ? `${e.request_id}\u0000${e.destination_namespace}/${e.destination_workload}` : undefined;
    const lonely = key === undefined || (isServer ? e.source_workload === UNKNOWN : e.destination_workload === UNKNOWN);
    const p = key === undefined ? undefined : this.pending.get(key);
    if (p) {
      if (isServer) {
        p.server = side;
        p.attempts++;
        // Without the caller's side yet, wait for it (retries end there).
        if (p.client !== null) this.finish(key!, p);
        return;
      }
      if (p.client === null) {
        p.client = side;
        this.finish(key!, p);
        return;
      }
      this.finish(key!, p); // a second call reusing the id: the first is done
    }
    if (lonely || this.pending.size >= this.maxPending) {
      this.emit(joined(isServer ? null : side, isServer ? side : null, isServer ? 1 : 0));
      return;
    }
    const entry: Pending = { client: isServer ? null : side, server: isServer ? side : null, attempts: isServer ? 1 : 0, timer: setTimeout(() => this.finish(key!, entry), this.waitMs) };
    entry.timer.unref?.();
    this.pending.set(key!, entry);
  }

  /** Emit everything still waiting (the stream ended). */
  flush(): void {
    for (const [k, p] of [...this.pending]) this.finish(k, p);
  }

  private finish(key: string, p: Pending): void {
    if (this.pending.get(key) !== p) return;
    clearTimeout(p.timer);
    this.pending.delete(key);
    this.emit(joined(p.client, p.server, p.attempts));
  }
}

function joined(client: TapSide | null, server: TapSide | null, attempts: number): TapRequest {
  const primary = (client ?? server)!;
  const { proxy: _proxy, ...fields } = primary;
  return { ...fields, type: 'exchange', client, server, attempts };
}
