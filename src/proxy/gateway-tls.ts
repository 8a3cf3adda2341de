// TLS termination for gateway listeners (docs/gateways.md): the operator's
// certificates, chosen by SNI. A filter chain whose DownstreamTlsContext
// names certificate files (`commonTlsContext.tlsCertificates[]
// .certificateChain.filename` / `.privateKey.filename`, as the control plane
// translates a Gateway's HTTPS listener) is terminated here; any other TLS
// chain (mesh mTLS) goes to `fallback`.
//
// SNI: the listener's TLS chains with file certificates are candidates;
// the chain whose `serverNames` holds the client's SNI exactly wins, then the
// longest matching `*.suffix`, then a chain without serverNames, then the
// chain detection picked. Certificates are read from disk on first use and
// re-read when the files change (checked at most once a second), so a
// renewed certificate is served without a restart. No client certificate is
// asked for: gateway clients are outside the mesh.
import { statSync, readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import type { ConnectionContext, ServeConnection } from './connection.ts';
import type { Accepted } from './listener.ts';
import type { FilterChainSpec } from './config/types.ts';
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
  readonly fallback?: (accepted: Accepted, conn: ConnectionContext) => void;
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

/** Chooses the chain for `sni` among gateway TLS chains (see the header). */
export function chainForSni(candidates: readonly FilterChainSpec[], sni: string | undefined, picked: FilterChainSpec): FilterChainSpec {
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
  return candidates.find((c) => !c.match.serverNames || c.match.serverNames.length === 0) ?? picked;
}

export interface GatewayTls {
  (accepted: Accepted, conn: ConnectionContext): void;
}

export function createGatewayTls(deps: GatewayTlsDeps): GatewayTls {
  const log = deps.log ?? (() => {});
  const contexts = new Map<string, { ctx: tls.SecureContext; mtimes: string; checkedAt: number }>();

  function contextFor(files: CertFiles[]): tls.SecureContext | undefined {
    const key = files.map((f) => `${f.cert}\0${f.key}`).join('\0');
    const hit = contexts.get(key);
    const now = Date.now();
    if (hit && now - hit.checkedAt < 1000) return hit.ctx;
    try {
      const mtimes = files.map((f) => `${statSync(f.cert).mtimeMs}/${statSync(f.key).mtimeMs}`).join(',');
      if (hit && hit.mtimes === mtimes) {
        hit.checkedAt = now;
        return hit.ctx;
      }
      const ctx = tls.createSecureContext({
        cert: files.map((f) => readFileSync(f.cert)),
        key: files.map((f) => readFileSync(f.key)),
        minVersion: 'TLSv1.2',
      });
      contexts.set(key, { ctx, mtimes, checkedAt: now });
      return ctx;
    } catch (err) {
      log('gateway_tls_certificate_unreadable', { files, error: (err as Error).message });
      return hit?.ctx;
    }
  }

  return function terminateGatewayTls(accepted: Accepted, conn: ConnectionContext): void {
    const { socket, initial } = accepted;
    if (gatewayCertFiles(accepted.chain).length === 0) {
      if (deps.fallback) deps.fallback(accepted, conn);
      else {
        log('tls_not_configured', { listener: conn.listener, chain: accepted.chain.name });
        socket.destroy();
      }
      return;
    }
    const candidates = deps.chains(conn.listener).filter((c) => c.match.transportProtocol === 'tls' && gatewayCertFiles(c).length > 0);
    const initialCtx = contextFor(gatewayCertFiles(accepted.chain));
    if (!initialCtx) {
      socket.destroy();
      return;
    }
    if (initial.length > 0) socket.unshift(initial);
    let chosen = accepted.chain;
    const s = new tls.TLSSocket(socket as Socket, {
      isServer: true,
      secureContext: initialCtx,
      ALPNProtocols: ['h2', 'http/1.1'],
      SNICallback: (servername, cb) => {
        chosen = chainForSni(candidates, servername, accepted.chain);
        cb(null, contextFor(gatewayCertFiles(chosen)) ?? initialCtx);
      },
    });
    const timer = setTimeout(() => {
      log('tls_handshake_timeout', { listener: conn.listener });
      s.destroy();
    }, deps.handshakeTimeoutMs ?? GATEWAY_HANDSHAKE_TIMEOUT_MS);
    s.once('error', (err: Error & { code?: string }) => {
      clearTimeout(timer);
      log('tls_handshake_failed', { listener: conn.listener, code: err.code, error: err.message });
      s.destroy();
      socket.destroy();
    });
    s.once('secure', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      s.on('error', () => {}); // the codec reports what matters through close
      accepted.downstream.tls = true;
      if (s.alpnProtocol === 'h2') deps.http2(s, Buffer.alloc(0), conn);
      else deps.http1(s, Buffer.alloc(0), conn);
    });
  };
}

/** startProxy options for a node in gateway mode (`metadata.trellis.kind:
 * 'gateway'`): `terminateTls` handles gateway chains and hands other TLS
 * chains to `base.terminateTls` (mesh mTLS). Empty for other nodes. */
export function gatewayTlsProxyOptions(
  node: { metadata: Readonly<Record<string, unknown>> },
  base: { terminateTls?: (accepted: Accepted, conn: ConnectionContext) => void; http1?: ServeConnection; http2?: ServeConnection },
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
