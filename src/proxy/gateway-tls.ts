// TLS termination for gateway listeners (docs/gateways.md): the operator's
// certificates, chosen by SNI. A filter chain whose DownstreamTlsContext
// names certificate files (`commonTlsContext.tlsCertificates[]
// .certificateChain.filename` / `.privateKey.filename`, as the control plane
// translates a Gateway's HTTPS listener) is terminated here; any other TLS
// chain (mesh mTLS) goes to `fallback`.
//
// SNI: the listener's TLS chains with file certificates are candidates;
// the chain whose `serverNames` holds the client's SNI exactly wins, then the
// longest matching `*.suffix`, then a chain without serverNames (a Gateway
// listener without hostname: the catch-all). Anything else is refused in the
// handshake: an unknown SNI never gets another host's certificate, and a
// client without SNI gets the catch-all's certificate or none.
// Certificates are read from disk on first use and re-read when the files
// change (checked at most once a second), so a renewed certificate is served
// without a restart. No client certificate is asked for: gateway clients are
// outside the mesh.
//
// One tls.Server per listener (never listening) performs the handshakes, as
// tls/terminate.ts does: sockets it hands out are fully set up for
// node:http2 (a bare `new TLSSocket({isServer})` never finishes
// `secureConnecting`, so an h2 session on it waited forever).
//
// SNI and Host: a request whose Host / :authority would choose another chain
// than its connection's SNI did is answered 421 Misdirected Request
// (`misdirectedRequestLayer`, in the gateway's HTTP stack), as Envoy does:
// the client retries on a connection of its own for that host.
import { statSync, readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import type { ConnectionContext, ServeConnection } from './connection.ts';
import type { Accepted } from './listener.ts';
import type { FilterChainSpec, ListenerSpec } from './config/types.ts';
import type { Layer } from './http/exchange.ts';
import { ProxyError } from './errors.ts';
import type { TlsNext } from './stack.ts';
import { DOWNSTREAM_TLS_TYPE } from './tls/upstream-tls.ts';
import { serveHttp1 } from './http1/server.ts';
import { serveHttp2 } from './http2/server.ts';

export const GATEWAY_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface GatewayTlsDeps {
  /** The current filter chains of a listener, by listener name. */
  readonly chains: (listener: string) => readonly FilterChainSpec[];
  readonly http1: ServeConnection;
  readonly http2: ServeConnection;
  /** TLS chains that are not gateway chains (mesh mTLS); default: close. */
  readonly fallback?: (accepted: Accepted, conn: ConnectionContext, next?: TlsNext) => void;
  readonly handshakeTimeoutMs?: number;
  readonly log?: (event: string, fields?: Record<string, unknown>) => void;
}

interface CertFiles {
  cert: string;
  key: string;
}

/** The certificate files of a chain's DownstreamTlsContext, if it names any. */
export function gatewayCertFiles(chain: FilterChainSpec): CertFiles[] {
  const ts = chain.extensions?.['transportSocket'] as { typedConfig?: Record<string, unknown> } | undefined;
  const tc = ts?.typedConfig;
  if (!tc || tc['@type'] !== DOWNSTREAM_TLS_TYPE) return [];
  const ctx = (tc.commonTlsContext ?? {}) as { tlsCertificates?: { certificateChain?: { filename?: string }; privateKey?: { filename?: string } }[] };
  const out: CertFiles[] = [];
  for (const c of ctx.tlsCertificates ?? []) {
    const cert = c.certificateChain?.filename;
    const key = c.privateKey?.filename;
    if (cert && key) out.push({ cert, key });
  }
  return out;
}

/** The chain for `sni` among gateway TLS chains (see the header); undefined: refuse. */
export function chainForSni(candidates: readonly FilterChainSpec[], sni: string | undefined): FilterChainSpec | undefined {
  const name = sni?.toLowerCase();
  if (name) {
    const exact = candidates.find((c) => c.match.serverNames?.includes(name));
    if (exact) return exact;
    let best: FilterChainSpec | undefined;
    let bestLen = 0;
    for (const c of candidates) {
      for (const s of c.match.serverNames ?? []) {
        if (s.startsWith('*.') && name.endsWith(s.slice(1)) && s.length > bestLen) {
          best = c;
          bestLen = s.length;
        }
      }
    }
    if (best) return best;
  }
  return candidates.find((c) => !c.match.serverNames || c.match.serverNames.length === 0);
}

/** A listener's gateway TLS chains (TLS chains naming certificate files). */
export function gatewayChains(chains: readonly FilterChainSpec[]): FilterChainSpec[] {
  return chains.filter((c) => c.match.transportProtocol === 'tls' && gatewayCertFiles(c).length > 0);
}

/** `www.example.com:8443` / `[::1]:443` -> the host name, lower case. */
function hostOf(authority: string): string {
  const a = authority.trim().toLowerCase();
  if (a.startsWith('[')) return a.slice(0, a.indexOf(']') + 1);
  const colon = a.lastIndexOf(':');
  return colon >= 0 ? a.slice(0, colon) : a;
}

/**
 * The gateway's SNI/Host rule (stack.ts puts it in every gateway listener's
 * HTTP stack, after metrics and access logs): on a connection whose TLS was
 * terminated with a gateway certificate (`downstream.tlsChain`), a request
 * whose Host would choose another chain gets 421 Misdirected Request.
 */
export function misdirectedRequestLayer(listener: ListenerSpec): Layer {
  const chains = gatewayChains(listener.filterChains);
  return (next) =>
    function misdirected(req, handler) {
      const served = req.ctx.downstream.tlsChain;
      if (served !== undefined && chains.length > 0) {
        const host = hostOf(req.head.authority);
        const wanted = chainForSni(chains, host || undefined);
        if (wanted?.name !== served) {
          handler.onError(new ProxyError('MISDIRECTED_REQUEST', `host "${host}" is not served by this connection's certificate (chain ${served}); open a connection with SNI "${host}"`));
          return;
        }
      }
      next(req, handler);
    };
}

interface CachedContext {
  ctx: tls.SecureContext;
  options: tls.SecureContextOptions;
  mtimes: string;
  checkedAt: number;
}

export interface GatewayTls {
  (accepted: Accepted, conn: ConnectionContext, next?: TlsNext): void;
}

export function createGatewayTls(deps: GatewayTlsDeps): GatewayTls {
  const log = deps.log ?? (() => {});
  const contexts = new Map<string, CachedContext>();
  const pending = new WeakMap<Socket, { accepted: Accepted; conn: ConnectionContext; next: TlsNext }>();
  const servers = new Map<string, { server: tls.Server; defaultKey: string }>();

  function cached(files: CertFiles[]): CachedContext | undefined {
    const key = files.map((f) => `${f.cert}\0${f.key}`).join('\0');
    const hit = contexts.get(key);
    const now = Date.now();
    if (hit && now - hit.checkedAt < 1000) return hit;
    try {
      const mtimes = files.map((f) => `${statSync(f.cert).mtimeMs}/${statSync(f.key).mtimeMs}`).join(',');
      if (hit && hit.mtimes === mtimes) {
        hit.checkedAt = now;
        return hit;
      }
      const options: tls.SecureContextOptions = {
        cert: files.map((f) => readFileSync(f.cert)),
        key: files.map((f) => readFileSync(f.key)),
        minVersion: 'TLSv1.2',
      };
      const entry = { ctx: tls.createSecureContext(options), options, mtimes, checkedAt: now };
      contexts.set(key, entry);
      return entry;
    } catch (err) {
      log('gateway_tls_certificate_unreadable', { files, error: (err as Error).message });
      return hit;
    }
  }

  const candidatesOf = (listener: string): FilterChainSpec[] => gatewayChains(deps.chains(listener));

  /** The listener's handshake server; its default context (clients without
   * SNI) is the catch-all chain's certificate, or none (then they fail). */
  function serverFor(listener: string): tls.Server {
    let entry = servers.get(listener);
    if (!entry) {
      const server = tls.createServer({
        ALPNProtocols: ['h2', 'http/1.1'],
        minVersion: 'TLSv1.2',
        handshakeTimeout: deps.handshakeTimeoutMs ?? GATEWAY_HANDSHAKE_TIMEOUT_MS,
        SNICallback: (servername, cb) => {
          const chain = chainForSni(candidatesOf(listener), servername);
          const ctx = chain ? cached(gatewayCertFiles(chain))?.ctx : undefined;
          if (!ctx) {
            log('tls_unknown_server_name', { listener, sni: servername });
            cb(new Error(`no certificate for server name "${servername}"`), undefined);
            return;
          }
          cb(null, ctx);
        },
      });
      server.on('tlsClientError', (err: Error & { code?: string }, s: tls.TLSSocket) => {
        const raw = (s as unknown as { _parent?: Socket })._parent;
        log('tls_handshake_failed', { listener, code: err.code, error: err.message });
        s.destroy();
        raw?.destroy();
      });
      server.on('secureConnection', (s: tls.TLSSocket) => {
        const raw = (s as unknown as { _parent?: Socket })._parent;
        const p = raw ? pending.get(raw) : undefined;
        if (!p || !raw) {
          s.destroy();
          return;
        }
        pending.delete(raw);
        const chain = chainForSni(candidatesOf(listener), s.servername || undefined);
        if (!chain) {
          s.destroy();
          return;
        }
        s.on('error', () => {}); // the codec reports what matters through close
        p.accepted.downstream.tls = true;
        p.accepted.downstream.tlsChain = chain.name;
        p.next(s, Buffer.alloc(0), s.alpnProtocol === 'h2' ? 'http2' : 'http1');
      });
      entry = { server, defaultKey: '' };
      servers.set(listener, entry);
    }
    const catchAll = chainForSni(candidatesOf(listener), undefined);
    const def = catchAll ? cached(gatewayCertFiles(catchAll)) : undefined;
    const defaultKey = def ? `${catchAll!.name}\0${def.mtimes}` : '';
    if (defaultKey !== entry.defaultKey) {
      entry.server.setSecureContext(def ? { ...def.options, minVersion: 'TLSv1.2' } : { minVersion: 'TLSv1.2' });
      entry.defaultKey = defaultKey;
    }
    return entry.server;
  }

  return function terminateGatewayTls(accepted: Accepted, conn: ConnectionContext, next?: TlsNext): void {
    const { socket, initial } = accepted;
    if (gatewayCertFiles(accepted.chain).length === 0) {
      if (deps.fallback) deps.fallback(accepted, conn, next);
      else {
        log('tls_not_configured', { listener: conn.listener, chain: accepted.chain.name });
        socket.destroy();
      }
      return;
    }
    const server = serverFor(conn.listener);
    pending.set(socket, { accepted, conn, next: next ?? ((s, init, proto) => (proto === 'http2' ? deps.http2 : deps.http1)(s, init, conn)) });
    if (initial.length > 0) socket.unshift(initial);
    server.emit('connection', socket);
  };
}

/** startProxy options for a node in gateway mode (`metadata.trellis.kind:
 * 'gateway'`): `terminateTls` handles gateway chains and hands other TLS
 * chains to `base.terminateTls` (mesh mTLS). Empty for other nodes. */
export function gatewayTlsProxyOptions(
  node: { metadata: Readonly<Record<string, unknown>> },
  base: { terminateTls?: (accepted: Accepted, conn: ConnectionContext, next?: TlsNext) => void; http1?: ServeConnection; http2?: ServeConnection },
  config: () => { listeners: readonly { name: string; filterChains: readonly FilterChainSpec[] }[] } | undefined,
  log?: (event: string, fields?: Record<string, unknown>) => void,
): { terminateTls?: GatewayTls } {
  const t = node.metadata.trellis as { kind?: unknown } | undefined;
  if (t?.kind !== 'gateway') return {};
  return {
    terminateTls: createGatewayTls({
      chains: (name) => config()?.listeners.find((l) => l.name === name)?.filterChains ?? [],
      http1: base.http1 ?? serveHttp1,
      http2: base.http2 ?? serveHttp2,
      ...(base.terminateTls ? { fallback: base.terminateTls } : {}),
      ...(log ? { log } : {}),
    }),
  };
}
