// Who may have which xDS config. On the TLS port (15012) every stream comes
// with a verified workload certificate, and the node it claims must be its
// own: the node's namespace (metadata, and the node id's "<ns>/" prefix) is
// the certificate's, and a node that names a registered workload names one
// of the certificate's service account. A proxy therefore gets only its
// own identity's config. Streams on the plaintext port (loopback only, or
// behind --insecure-plaintext) carry no certificate: the bind is their
// only protection (docs/security-model.md).
import type { XdsNode } from '../xds/cache.ts';
import type { XdsPeer } from '../xds/server.ts';
import { parseSpiffeId } from '../lib/spiffe.ts';
import type { MeshState } from './translate/model.ts';
import { proxyNodeOf } from './snapshots.ts';
import { nodeWorkload } from './translate/services.ts';

export function authorizeXdsNode(node: XdsNode, peer: XdsPeer, ctx: { trustDomain: string; state: () => MeshState }): string | undefined {
  if (!peer.secure) return undefined;
  const ids = peer.uriSans.map(parseSpiffeId).filter((x) => x !== undefined);
  const id = ids.find((x) => x.trustDomain === ctx.trustDomain);
  if (!id) return `the client certificate carries no workload SPIFFE ID of trust domain ${ctx.trustDomain} (got ${peer.uriSans.join(', ') || 'none'})`;
  const mine = `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
  const pn = proxyNodeOf(node);
  if (pn.namespace !== id.namespace) return `node ${node.id} says namespace ${pn.namespace}, but its certificate is ${mine}`;
  const slash = node.id.indexOf('/');
  if (slash > 0 && node.id.slice(0, slash) !== id.namespace) return `node id ${node.id} is in namespace ${node.id.slice(0, slash)}, but its certificate is ${mine}`;
  const w = nodeWorkload(ctx.state(), pn);
  if (w && (w.serviceAccount ?? 'default') !== id.serviceAccount) {
    return `node ${node.id} claims workload ${w.namespace}/${w.name} of service account ${w.serviceAccount ?? 'default'}, but its certificate is ${mine}`;
  }
  return undefined;
}
