// Everything a proxy needs for mesh mTLS, from one workload identity:
// inbound termination (stack.ts `terminateTls`) and TLS origination for
// clusters (the cluster-manager and TCP proxy `tls` hook). The inbound stack
// adds the peer-identity header itself (stack.ts). Spread the result into
// startProxy's options.
import type { ConnectionOptions } from 'node:tls';
import type { ClusterSpec, EndpointSpec } from '../config/types.ts';
import type { WorkloadIdentity } from '../identity/workload-identity.ts';
import { createTlsTerminator, type TlsTerminator } from './terminate.ts';
import { createUpstreamTls } from './upstream-tls.ts';

export interface MeshTlsProxyOptions {
  readonly terminateTls: TlsTerminator;
  readonly upstreamTls: (cluster: ClusterSpec, endpoint: EndpointSpec) => ConnectionOptions | undefined;
}

export function meshTlsProxyOptions(
  identity: Pick<WorkloadIdentity, 'current' | 'onChange'>,
  opts: { trustDomain?: string; log?: (event: string, fields?: Record<string, unknown>) => void } = {},
): MeshTlsProxyOptions {
  return {
    terminateTls: createTlsTerminator({
      identity,
      ...(opts.trustDomain === undefined ? {} : { trustDomain: opts.trustDomain }),
      ...(opts.log ? { log: opts.log } : {}),
    }),
    upstreamTls: createUpstreamTls(identity),
  };
}
