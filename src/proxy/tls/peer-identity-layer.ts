// The inbound layer that tells the app who called: `x-trellis-peer-identity`
// carries the caller's verified SPIFFE ID (from the mTLS handshake). Any
// such header arriving from outside is removed first, so the app can trust
// it whenever it is present; on plaintext connections it is absent.
// stack.ts puts it first in every inbound listener's HTTP stack.
import type { Layer } from '../http/exchange.ts';
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
