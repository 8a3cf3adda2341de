// The inbound layer that tells the app who called: `x-trellis-peer-identity`
// carries the caller's verified SPIFFE ID (from the mTLS handshake). Any
// such header arriving from outside is removed first, so the app can trust
// it whenever it is present; on plaintext connections it is absent.
import type { Layer } from '../http/exchange.ts';
import type { ServeConnection } from '../connection.ts';
import { removeHeader } from '../http/exchange.ts';

export const PEER_IDENTITY_HEADER = 'x-trellis-peer-identity';

export function peerIdentityLayer(): Layer {
  return (next) =>
    function peerIdentity(req, handler) {
      const h = req.head.headers;
      removeHeader(h, PEER_IDENTITY_HEADER);
      const id = req.ctx.downstream.peerIdentity;
      if (id !== undefined) h.push(PEER_IDENTITY_HEADER, id);
      next(req, handler);
    };
}

/** Wrap a downstream codec so every inbound connection's requests pass
 * through `peerIdentityLayer` first (plaintext and TLS alike), without
 * changing the listener's stack. */
export function withPeerIdentity(serve: ServeConnection): ServeConnection {
  const layer = peerIdentityLayer();
  return function serveWithPeerIdentity(socket, initial, conn) {
    if (conn.direction !== 'inbound') return serve(socket, initial, conn);
    serve(socket, initial, { ...conn, dispatch: layer(conn.dispatch) });
  };
}
