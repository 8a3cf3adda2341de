// One `net.Server` per ListenerSpec. On accept: recover the destination
// (the original destination under transparent capture), pick the filter
// chain, run protocol detection unless the chain fixes the protocol, then
// hand the socket to `serve` (stack.ts decides codec or TCP proxy). Every
// connection is tracked so the listener can drain: stop accepting, ask each
// connection to finish its in-flight work, destroy stragglers at the deadline.
//
// A new spec (config swap) applies to open connections too, as Envoy's
// filter-chain update does: each served connection's chain is chosen again
// under the new spec from what was recorded at accept (destination,
// detected protocol); a connection the new spec would put on another chain,
// or on none (a plaintext connection once MeshTLS turns STRICT, an mTLS one
// under DISABLE), is drained (HTTP: finish the request in flight, then
// `Connection: close` / GOAWAY; opaque TCP: closed at once) and destroyed
// after CHAIN_DRAIN_MS.
import net from 'node:net';
import type { Server, Socket } from 'node:net';
import type { FilterChainSpec, ListenerSpec } from './config/types.ts';
import type { DownstreamInfo } from './http/exchange.ts';
import type { TrackedConnection } from './connection.ts';
import { detectProtocol, DEFAULT_DETECT_TIMEOUT_MS, DEFAULT_DETECT_MAX_BYTES, type DetectedProtocol } from './detect.ts';
import type { ProxyStats } from './proxy-stats.ts';
import { loadOrigDst } from './orig-dst.ts';

export type OriginalDst = { address: string; port: number };

/**
 * The transparent-capture hook: the original destination of a REDIRECTed
 * connection (SO_ORIGINAL_DST), read by the native addon (orig-dst.ts);
 * undefined when the addon is not built or the socket was not redirected.
 * Pass `getOriginalDst` in ListenerDeps to override.
 */
export function getOriginalDst(socket: Socket): OriginalDst | undefined {
  const r = loadOrigDst();
  return r.ok ? r.read(socket) : undefined;
}

export interface Accepted {
  readonly socket: Socket;
  /** Bytes detection already read; the next stage consumes them first. */
  readonly initial: Buffer;
  readonly protocol: DetectedProtocol;
  readonly chain: FilterChainSpec;
  readonly downstream: DownstreamInfo;
  /** Register a connection for drain; returns the unregister function. */
  readonly track: (c: TrackedConnection) => () => void;
}

export interface ListenerDeps {
  /** Codec or TCP proxy for an accepted, classified connection. */
  serve(accepted: Accepted, listener: Listener): void;
  stats?: ProxyStats;
  log?: (event: string, fields: Record<string, unknown>) => void;
  detectTimeoutMs?: number;
  detectMaxBytes?: number;
  getOriginalDst?: (socket: Socket) => OriginalDst | undefined;
}

/** How long a connection whose chain left the config may finish its in-flight work. */
export const CHAIN_DRAIN_MS = 5_000;

/** The chain a connection gets under `spec` (accept and config swap alike):
 * a fixed-protocol first candidate takes it without detection. */
export function chainFor(spec: ListenerSpec, port: number, address: string, protocol: DetectedProtocol): FilterChainSpec | undefined {
  const candidates = candidateChains(spec, port, address);
  const first = candidates[0];
  if (first && first.protocol !== 'auto') return first;
  return chooseChain(candidates, protocol);
}

/** What the listener remembers of a connection it handed over. */
interface Served {
  readonly chain: FilterChainSpec;
  readonly protocol: DetectedProtocol;
  readonly dst: { port: number; address: string };
  readonly tracked: Set<TrackedConnection>;
}

export type ListenResult = { ok: true; port: number } | { ok: false; error: string; code?: string };

const blockLists = new WeakMap<FilterChainSpec, net.BlockList>();

function destinationMatches(chain: FilterChainSpec, port: number, address: string): boolean {
  const m = chain.match;
  if (m.destinationPort !== undefined && m.destinationPort !== port) return false;
  if (m.prefixRanges && m.prefixRanges.length > 0) {
    let bl = blockLists.get(chain);
    if (!bl) {
      bl = new net.BlockList();
      for (const r of m.prefixRanges) bl.addSubnet(r.address, r.prefixLen, net.isIPv6(r.address) ? 'ipv6' : 'ipv4');
      blockLists.set(chain, bl);
    }
    const plain = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
    if (!bl.check(plain, net.isIPv6(plain) ? 'ipv6' : 'ipv4')) return false;
  }
  return true;
}

/** Chains whose destination match fits, in config order (most specific first, as Envoy orders them). */
export function candidateChains(spec: ListenerSpec, port: number, address: string): FilterChainSpec[] {
  return spec.filterChains.filter((c) => destinationMatches(c, port, address));
}

/** ALPN-style names a detected protocol answers to in
 * `filterChainMatch.applicationProtocols` (as Envoy's http_inspector
 * reports them). TLS's ALPN is only known once the mTLS work reads the
 * ClientHello, so TLS matches no application protocol yet. */
const APP_PROTOCOLS: Record<DetectedProtocol, readonly string[]> = {
  http1: ['http/1.1', 'http/1.0'],
  http2: ['h2c', 'h2'],
  tls: [],
  opaque: [],
};

/** After detection: the first candidate whose transport protocol and
 * application protocols fit what was detected. */
export function chooseChain(candidates: readonly FilterChainSpec[], protocol: DetectedProtocol): FilterChainSpec | undefined {
  const transport = protocol === 'tls' ? 'tls' : 'raw_buffer';
  const app = APP_PROTOCOLS[protocol];
  return candidates.find((c) => {
    const m = c.match;
    if (m.transportProtocol !== undefined && m.transportProtocol !== transport) return false;
    if (m.applicationProtocols && m.applicationProtocols.length > 0 && !m.applicationProtocols.some((p) => app.includes(p))) return false;
    return true;
  });
}

export class Listener {
  spec: ListenerSpec;
  private readonly deps: ListenerDeps;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly tracked = new Set<TrackedConnection>();
  private readonly served = new Map<Socket, Served>();
  private draining = false;
  private boundPort = 0;

  constructor(spec: ListenerSpec, deps: ListenerDeps) {
    this.spec = spec;
    this.deps = deps;
  }

  get name(): string {
    return this.spec.name;
  }

  /** The bound port (the real one when the spec asked for port 0). */
  get port(): number {
    return this.boundPort;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Open downstream sockets (including ones still in detection). */
  get connectionCount(): number {
    return this.sockets.size;
  }

  listen(): Promise<ListenResult> {
    return new Promise((resolve) => {
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false, noDelay: true }, (s) => this.accept(s));
      server.once('error', (err: NodeJS.ErrnoException) => {
        resolve({ ok: false, error: `listener ${this.spec.name}: cannot listen on ${this.spec.address}:${this.spec.port}: ${err.message}`, code: err.code });
      });
      server.listen({ host: this.spec.address, port: this.spec.port }, () => {
        server.removeAllListeners('error');
        server.on('error', (err) => this.deps.log?.('listener_error', { listener: this.spec.name, error: err.message }));
        this.server = server;
        this.boundPort = (server.address() as net.AddressInfo).port;
        resolve({ ok: true, port: this.boundPort });
      });
    });
  }

  /** Replace the spec (same address and port; chains may differ). New
   * connections use the new spec; an open connection keeps its chain when the
   * new spec would choose it again, else it is drained (see the header). */
  update(spec: ListenerSpec): void {
    this.spec = spec;
    for (const [socket, s] of this.served) {
      const now = chainFor(spec, s.dst.port, s.dst.address, s.protocol);
      if (now?.name === s.chain.name) continue;
      this.deps.log?.('connection_chain_removed', { listener: spec.name, chain: s.chain.name, now: now?.name ?? null, remote: `${socket.remoteAddress}:${socket.remotePort}` });
      this.served.delete(socket);
      if (s.chain.tcp || s.tracked.size === 0) {
        // Opaque bytes have no request boundary; a handshake in progress has nothing to finish.
        for (const c of [...s.tracked]) c.destroy();
        socket.destroy();
        continue;
      }
      for (const c of [...s.tracked]) c.drain();
      const timer = setTimeout(() => {
        for (const c of [...s.tracked]) c.destroy();
        socket.destroy();
      }, CHAIN_DRAIN_MS);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
    }
  }

  /** Stop accepting and ask every connection to drain. */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    this.server?.close();
    for (const c of [...this.tracked]) c.drain();
  }

  /** Resolves when every downstream socket has closed, or after `ms`
   * (then the rest are destroyed). */
  async closeAll(ms: number): Promise<void> {
    this.drain();
    if (this.sockets.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, ms);
        const poll = setInterval(() => {
          if (this.sockets.size === 0) done();
        }, 10);
        function done(): void {
          clearTimeout(timer);
          clearInterval(poll);
          resolve();
        }
      });
    }
    for (const c of [...this.tracked]) c.destroy();
    for (const s of [...this.sockets]) s.destroy();
  }

  private accept(socket: Socket): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    const active = this.deps.stats?.downstreamActive.labels(this.spec.name);
    active?.inc();
    socket.once('close', () => {
      this.sockets.delete(socket);
      active?.dec();
    });
    socket.on('error', (err) => this.deps.log?.('downstream_error', { listener: this.spec.name, error: err.message }));

    const spec = this.spec;
    const orig = spec.useOriginalDst ? (this.deps.getOriginalDst ?? getOriginalDst)(socket) : undefined;
    const downstream: DownstreamInfo = {
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      localAddress: socket.localAddress ?? '',
      localPort: socket.localPort ?? 0,
      ...(orig ? { originalDst: orig } : {}),
    };
    const dstPort = orig?.port ?? downstream.localPort;
    const dstAddress = orig?.address ?? downstream.localAddress;
    const dst = { port: dstPort, address: dstAddress };
    const first = candidateChains(spec, dstPort, dstAddress)[0];
    if (!first) {
      this.deps.log?.('no_filter_chain', { listener: spec.name, destination: `${dstAddress}:${dstPort}` });
      this.countProtocol('no_chain');
      socket.destroy();
      return;
    }
    // A fixed protocol skips detection: "opaque" must never wait for client
    // bytes (server-first protocols); "http1"/"http2" are taken on faith.
    if (first.protocol !== 'auto') {
      this.handOver(socket, Buffer.alloc(0), first.protocol, first, downstream, dst);
      return;
    }
    void detectProtocol(socket, {
      timeoutMs: this.deps.detectTimeoutMs ?? DEFAULT_DETECT_TIMEOUT_MS,
      maxBytes: this.deps.detectMaxBytes ?? DEFAULT_DETECT_MAX_BYTES,
    }).then((r) => {
      if (!r.ok) {
        socket.destroy();
        return;
      }
      // The spec in force now: a config swap during detection applies.
      const chain = chainFor(this.spec, dstPort, dstAddress, r.protocol);
      if (!chain) {
        this.deps.log?.('no_filter_chain', { listener: spec.name, destination: `${dstAddress}:${dstPort}`, protocol: r.protocol });
        this.countProtocol('no_chain');
        socket.destroy();
        return;
      }
      this.handOver(socket, r.initial, r.protocol, chain, downstream, dst);
    });
  }

  private countProtocol(protocol: string): void {
    this.deps.stats?.downstreamTotal.labels(this.spec.name, protocol).inc();
  }

  private handOver(socket: Socket, initial: Buffer, protocol: DetectedProtocol, chain: FilterChainSpec, downstream: DownstreamInfo, dst: Served['dst']): void {
    if (socket.destroyed) return;
    this.countProtocol(protocol);
    const served: Served = { chain, protocol, dst, tracked: new Set() };
    this.served.set(socket, served);
    socket.once('close', () => this.served.delete(socket));
    const track = (c: TrackedConnection): (() => void) => {
      this.tracked.add(c);
      served.tracked.add(c);
      if (this.draining || this.served.get(socket) !== served) queueMicrotask(() => c.drain());
      return () => {
        this.tracked.delete(c);
        served.tracked.delete(c);
      };
    };
    try {
      this.deps.serve({ socket, initial, protocol, chain, downstream, track }, this);
    } catch (err) {
      this.deps.log?.('serve_failed', { listener: this.spec.name, error: err instanceof Error ? err.message : String(err) });
      socket.destroy();
    }
  }
}
