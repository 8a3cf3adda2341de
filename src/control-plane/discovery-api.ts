// GET /api/v1/discovery: where this control plane serves xDS, so a client
// that knows only the API URL (`trellis run --server URL`, `gateway`,
// `node-proxy`) finds xDS on whatever ports it was started with. Ports only:
// the client dials them on the host it reached the API on (the bind address
// may be a wildcard, or not the name callers use). Public: the ports are
// what a port scan would find, and a workload holding only a join token
// needs them.
import { sendJson, type ApiRoute } from './api/server.ts';

export interface XdsDiscovery {
  /** Plaintext xDS (loopback, or --insecure-plaintext). */
  port?: number;
  /** xDS over mutual TLS (a workload certificate required). */
  tlsPort?: number;
}

export function discoveryRoutes(xds: XdsDiscovery): ApiRoute[] {
  return [{
    method: 'GET',
    pattern: '/api/v1/discovery',
    access: 'public',
    handle(_req, res) {
      sendJson(res, 200, { xds });
    },
  }];
}
