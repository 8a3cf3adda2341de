// The bootstrap file a proxyless gRPC client (grpc-js-xds, gRPC C-core/Java/Go)
// reads to find the control plane (GRPC_XDS_BOOTSTRAP=<file> or
// GRPC_XDS_BOOTSTRAP_CONFIG=<json>). `trellis bootstrap grpc` prints it.
// grpc-js-xds refuses a node without `locality`, so one is always written.
import type { Json } from './codec.ts';

export interface GrpcBootstrapOptions {
  /** host:port of the control plane's xDS port, e.g. "127.0.0.1:15010". */
  readonly serverUri: string;
  readonly nodeId: string;
  /** The service this client belongs to (xDS node.cluster). */
  readonly cluster?: string;
  readonly locality?: { readonly region?: string; readonly zone?: string; readonly subZone?: string };
  readonly metadata?: { readonly [key: string]: Json };
  /** "insecure" (plaintext, port 15010) or "tls" (port 15012, system roots). Default insecure. */
  readonly channelCreds?: 'insecure' | 'tls';
}

export function bootstrapForGrpc(opts: GrpcBootstrapOptions): { [key: string]: Json } {
  return {
    xds_servers: [
      {
        server_uri: opts.serverUri,
        channel_creds: [{ type: opts.channelCreds ?? 'insecure' }],
        server_features: ['xds_v3'],
      },
    ],
    node: {
      id: opts.nodeId,
      cluster: opts.cluster ?? '',
      locality: {
        region: opts.locality?.region ?? '',
        zone: opts.locality?.zone ?? '',
        sub_zone: opts.locality?.subZone ?? '',
      },
      metadata: { ...(opts.metadata ?? {}) },
    },
  };
}
