// Inbound TLS termination: the `terminateTls` hook of stack.ts. A filter
// chain whose match is `transportProtocol: tls` and that carries a
// DownstreamTlsContext transport socket gets a TLS 1.3 handshake with the
// workload certificate; the client must present a certificate that chains to
// the trust bundle (requestCert + rejectUnauthorized) and carries exactly one
// SPIFFE ID. That ID becomes `downstream.peerIdentity`. ALPN picks the codec
// (h2 or http/1.1); without ALPN the decrypted bytes are sniffed. The stack
// (stack.ts) passes `next`, which continues with the chain's codec or, on a
// TCP chain, the TCP proxy.
//
// One tls.Server (never listening) does every handshake: the raw socket is
// handed to it with the bytes detection already read put back, and its
// secure context is replaced whenever the identity rotates, so new
// handshakes use the new certificate and open connections are untouched.
import tls from 'node:tls';
import type { Socket } from 'node:net';
import type { ConnectionContext, ServeConnection } from '../connection.ts';
import type { Accepted } from '../listener.ts';
import { detectProtocol } from '../detect.ts';
import type { WorkloadIdentity } from '../identity/workload-identity.ts';
import { peerSpiffeId } from './spiffe-verify.ts';
import { DOWNSTREAM_TLS_TYPE } from './upstream-tls.ts';
import type { TlsNext } from '../stack.ts';
import { serveHttp1 } from '../http1/server.ts';
import { serveHttp2 } from '../http2/server.ts';

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface TlsTerminatorDeps {
  readonly identity: Pick<WorkloadIdentity, 'current' | 'onChange'>;
  /** Codecs used when the caller passes no `next` (default: the plain ones). */
  readonly http1?: ServeConnection;
  readonly http2?: ServeConnection;
  /** Accept only peers of this trust domain (default: any SPIFFE ID the bundle vouches for). */
  readonly trustDomain?: string;
  readonly handshakeTimeoutMs?: number;
  readonly log?: (event: string, fields?: Record<string, unknown>) => void;
}

export interface TlsTerminator {
  (accepted: Accepted, conn: ConnectionContext, next?: TlsNext): void;
  /** Stop following identity changes. */
  close(): void;
}

function hasDownstreamTls(accepted: Accepted): boolean {
  const ts = accepted.chain.extensions?.['transportSocket'] as { typedConfig?: { '@type'?: string } } | undefined;
  return ts?.typedConfig?.['@type'] === DOWNSTREAM_TLS_TYPE;
}

export function createTlsTerminator(deps: TlsTerminatorDeps): TlsTerminator {
  const log = deps.log ?? (() => {});
  const pending = new WeakMap<Socket, { accepted: Accepted; conn: ConnectionContext; next: TlsNext }>();
  const http1 = deps.http1 ?? serveHttp1;
  const http2 = deps.http2 ?? serveHttp2;
  const server = tls.createServer({
    ...(deps.identity.current()?.contextOptions ?? {}),
    minVersion: 'TLSv1.3',
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: ['h2', 'http/1.1'],
    handshakeTimeout: deps.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
  });
  const unsubscribe = deps.identity.onChange((c) => server.setSecureContext({ ...c.contextOptions, minVersion: 'TLSv1.3' }));

  server.on('tlsClientError', (err: Error & { code?: string }, s: tls.TLSSocket) => {
    const raw = (s as unknown as { _parent?: Socket })._parent;
    const p = raw ? pending.get(raw) : undefined;
    log('tls_handshake_failed', { listener: p?.conn.listener, code: err.code, error: err.message });
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
    const id = s.authorized ? peerSpiffeId(s, deps.trustDomain) : undefined;
    if (!id) {
      log('tls_peer_rejected', { listener: p.conn.listener, reason: s.authorized ? 'no single SPIFFE ID in the client certificate' : String(s.authorizationError) });
      s.destroy();
      return;
    }
    p.accepted.downstream.peerIdentity = id;
    p.accepted.downstream.tls = true;
    s.on('error', () => {}); // the codec reports what matters through close
    if (p.accepted.chain.tcp) p.next(s, Buffer.alloc(0), 'http1'); // opaque: no sniffing, server-first protocols work
    else if (s.alpnProtocol === 'h2') p.next(s, Buffer.alloc(0), 'http2');
    else if (s.alpnProtocol === 'http/1.1') p.next(s, Buffer.alloc(0), 'http1');
    else {
      void detectProtocol(s).then((r) => {
        if (!r.ok) s.destroy();
        else p.next(s, r.initial, r.protocol === 'http2' ? 'http2' : 'http1');
      });
    }
  });

  const terminate = function terminateTls(accepted: Accepted, conn: ConnectionContext, next?: TlsNext): void {
    const { socket, initial } = accepted;
    if (!hasDownstreamTls(accepted)) {
      log('tls_not_configured', { listener: conn.listener, chain: accepted.chain.name });
      socket.destroy();
      return;
    }
    if (deps.identity.current() === undefined) {
      log('tls_no_identity', { listener: conn.listener });
      socket.destroy();
      return;
    }
    pending.set(socket, { accepted, conn, next: next ?? ((s, init, proto) => (proto === 'http2' ? http2 : http1)(s, init, conn)) });
    if (initial.length > 0) socket.unshift(initial);
    server.emit('connection', socket);
  } as TlsTerminator;
  terminate.close = unsubscribe;
  return terminate;
}
