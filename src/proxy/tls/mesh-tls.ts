// Everything a proxy needs for mesh mTLS, from one workload identity:
// inbound termination (stack.ts `terminateTls`), the codecs wrapped with the
// peer-identity header layer, and TLS origination for clusters (the
// cluster-manager `tls` hook). Spread the result into startProxy's options.
import type { ConnectionOptions } from 'node:tls';
import type { ServeConnection } from '../connection.ts';
import type { ClusterSpec, EndpointSpec } from '../config/types.ts';
import { serveHttp1 } from '../http1/server.ts';
import { serveHttp2 } from '../http2/server.ts';
import type { WorkloadIdentity } from '../identity/workload-identity.ts';
import { createTlsTerminator, type TlsTerminator } from './terminate.ts';
import { createUpstreamTls } from './upstream-tls.ts';
import { withPeerIdentity } from './peer-identity-layer.ts';

export interface MeshTlsProxyOptions {
  readonly http1: ServeConnection;
  readonly http2: ServeConnection;
  readonly terminateTls: TlsTerminator;
  readonly upstreamTls: (cluster: ClusterSpec, endpoint: EndpointSpec) => ConnectionOptions | undefined;
}

export function meshTlsProxyOptions(
  identity: Pick<WorkloadIdentity, 'current' | 'onChange'>,
  opts: { trustDomain?: string; http1?: ServeConnection; http2?: ServeConnection; log?: (event: string, fields?: Record<string, unknown>) => void } = {},
): MeshTlsProxyOptions {
  const http1 = withPeerIdentity(opts.http1 ?? serveHttp1);
  const http2 = withPeerIdentity(opts.http2 ?? serveHttp2);
  return {
    http1,
    http2,
    terminateTls: createTlsTerminator({
      identity, http1, http2,
      ...(opts.trustDomain === undefined ? {} : { trustDomain: opts.trustDomain }),
      ...(opts.log ? { log: opts.log } : {}),
    }),
    upstreamTls: createUpstreamTls(identity),
  };
}
