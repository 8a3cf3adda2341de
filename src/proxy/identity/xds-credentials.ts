// The proxy's xDS channel over mutual TLS (the control plane's port 15012):
// the workload certificate as the client identity, the mesh trust bundle as
// the roots, both followed as they rotate (one grpc-js CertificateProvider
// over WorkloadIdentity). The server must prove the control plane's SPIFFE
// ID, spiffe://<td>/trellis/control-plane, whatever address or relay the
// proxy dials: a workload certificate from the same CA is not enough.
import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { controlPlaneSpiffeId, parseSpiffeId } from '../../lib/spiffe.ts';
import type { Credentials, WorkloadIdentity } from './workload-identity.ts';

export function xdsChannelCredentials(identity: WorkloadIdentity): grpc.ChannelCredentials {
  const caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  const idListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();
  const ca = (c: Credentials) => ({ caCertificate: Buffer.from(c.trustBundle) });
  const id = (c: Credentials) => ({ certificate: Buffer.from(c.certificateChain), privateKey: Buffer.from(c.privateKeyPem) });
  identity.onChange((c) => {
    for (const l of caListeners) l(ca(c));
    for (const l of idListeners) l(id(c));
  });
  const provider: grpc.experimental.CertificateProvider = {
    addCaCertificateListener(l) {
      caListeners.add(l);
      const c = identity.current();
      if (c) l(ca(c));
    },
    removeCaCertificateListener: (l) => void caListeners.delete(l),
    addIdentityCertificateListener(l) {
      idListeners.add(l);
      const c = identity.current();
      if (c) l(id(c));
    },
    removeIdentityCertificateListener: (l) => void idListeners.delete(l),
  };
  const checkServerIdentity = (_host: string, cert: PeerCertificate): Error | undefined => {
    const own = parseSpiffeId(identity.current()?.spiffeId ?? '');
    if (!own) return new Error('xDS over TLS: this proxy has no workload identity');
    const want = controlPlaneSpiffeId(own.trustDomain);
    const sans = (cert.subjectaltname ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
    return sans.includes(want) ? undefined : new Error(`xDS over TLS: the server is not the control plane (${want}); its certificate names ${sans.join(', ') || 'no SPIFFE ID'}`);
  };
  // One provider for both roles (grpc-js swaps the two arguments internally).
  return grpc.experimental.createCertificateProviderChannelCredentials(provider, provider, { checkServerIdentity });
}
