// The sidecar port guard: the app's HTTP_PROXY target. A tiny L4 forwarder
// in the runner process that sends each connection to the sidecar's
// outbound port, and to the per-node proxy when the sidecar is down (its
// admin /ready fails, or connecting is refused), moving back once the
// sidecar is ready again. The model is Istio ambient's ztunnel: a shared
// per-node proxy carries the traffic a workload's own proxy cannot.
//
// A connection whose sidecar connect fails is sent to the fallback at once
// (nothing was sent yet), as is one whose sidecar died before the client
// sent anything. A connection whose upstream dies before any
// response byte is replayed to the fallback only when the bytes held so far
// are an idempotent HTTP request (GET/HEAD/OPTIONS/TRACE, at most 64 KiB, as
// RFC 9110 §9.2.2 allows clients to retry); otherwise it is reset.
//
// Both sides are TCP_NODELAY: a relay that lets Nagle hold its second small
// write until the peer's delayed ACK adds ~40 ms to every answer that
// arrives in two pieces on a kept-alive connection.
import net from 'node:net';

export interface GuardTarget {
  host: string;
  port: number;
}

export interface PortGuardOptions {
  listen: { host: string; port: number };
  primary: GuardTarget;
  fallback?: GuardTarget;
  /** Health of the primary (sidecar admin /ready); polled every `checkMs`. */
  check?: () => Promise<boolean>;
  checkMs?: number;
  connectTimeoutMs?: number;
  log?: (event: string, fields?: Record<string, unknown>) => void;
}

export interface GuardStats {
  primary: number;
  fallback: number;
  replayed: number;
  failed: number;
  primaryUp: boolean;
}

export interface PortGuard {
  readonly port: number;
  stats(): GuardStats;
  close(): Promise<void>;
}

const REPLAY_LIMIT = 64 * 1024;
const IDEMPOTENT = /^(GET|HEAD|OPTIONS|TRACE) /;

export async function startPortGuard(opts: PortGuardOptions): Promise<PortGuard> {
  const log = opts.log ?? (() => {});
  const stats: GuardStats = { primary: 0, fallback: 0, replayed: 0, failed: 0, primaryUp: true };
  const sockets = new Set<net.Socket>();
  const setUp = (up: boolean, why: string): void => {
    if (stats.primaryUp === up) return;
    stats.primaryUp = up;
    log(up ? 'guard_primary_up' : 'guard_primary_down', { reason: why });
  };

  let checking = false;
  let timer: NodeJS.Timeout | undefined;
  if (opts.check) {
    const check = opts.check;
    timer = setInterval(() => {
      if (checking) return;
      checking = true;
      void check()
        .then((ok) => setUp(ok, ok ? 'ready' : 'not ready'))
        .catch(() => setUp(false, 'check failed'))
        .finally(() => {
          checking = false;
        });
    }, opts.checkMs ?? 100);
    timer.unref();
  }

  const connect = (t: GuardTarget): net.Socket => {
    const s = net.connect({ host: t.host, port: t.port, allowHalfOpen: true, noDelay: true });
    s.setTimeout(opts.connectTimeoutMs ?? 2000, () => s.destroy(new Error('connect timeout')));
    s.once('connect', () => s.setTimeout(0));
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    return s;
  };

  const handle = (client: net.Socket): void => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    client.on('error', () => {});
    const held: Buffer[] = [];
    let heldBytes = 0;
    let replayable = true;
    let gotResponse = false;
    let upstream: net.Socket | undefined;

    let live: net.Socket | undefined;
    const onClientData = (chunk: Buffer): void => {
      if (!live || (!gotResponse && replayable)) {
        held.push(chunk);
        heldBytes += chunk.length;
        if (heldBytes > REPLAY_LIMIT) {
          replayable = false;
          if (live) held.length = 0;
          else client.pause();
        }
      }
      if (live && !live.write(chunk)) client.pause();
    };
    client.on('data', onClientData);
    client.on('end', () => live?.end());

    const attempt = (which: 'primary' | 'fallback'): void => {
      const target = which === 'primary' ? opts.primary : opts.fallback!;
      const up = connect(target);
      upstream = up;
      let connected = false;
      up.once('connect', () => {
        connected = true;
        live = up;
        stats[which]++;
        for (const b of held) up.write(b);
        if (!replayable) held.length = 0;
        up.on('drain', () => client.resume());
        client.resume();
        if (client.readableEnded) up.end();
      });
      up.on('data', (chunk: Buffer) => {
        if (!gotResponse) {
          gotResponse = true;
          held.length = 0;
        }
        if (!client.write(chunk)) up.pause();
      });
      client.on('drain', () => up.resume());
      up.on('end', () => {
        if (!gotResponse && canFailOver(which)) {
          up.destroy(); // half-open sockets do not close by themselves; 'close' decides
          return;
        }
        client.end();
      });
      up.on('error', () => {});
      up.once('close', (hadError) => {
        if (upstream !== up) return;
        live = undefined;
        if (!connected && which === 'primary') setUp(false, 'connect failed');
        if (!gotResponse && canFailOver(which) && (!connected || heldBytes === 0 || replayableNow())) {
          if (connected && heldBytes > 0) stats.replayed++;
          attempt('fallback');
          return;
        }
        if (!connected) stats.failed++;
        if (hadError || !gotResponse) client.resetAndDestroy();
        else client.end();
      });
    };
    const canFailOver = (which: 'primary' | 'fallback'): boolean => which === 'primary' && opts.fallback !== undefined && !client.destroyed;
    const replayableNow = (): boolean => replayable && heldBytes > 0 && IDEMPOTENT.test(Buffer.concat(held).subarray(0, 8).toString('latin1'));

    attempt(stats.primaryUp || !opts.fallback ? 'primary' : 'fallback');
  };

  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.listen.host, port: opts.listen.port }, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    stats: () => ({ ...stats }),
    async close() {
      if (timer) clearInterval(timer);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
