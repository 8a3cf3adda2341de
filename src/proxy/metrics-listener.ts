// The proxy's metrics for a control plane on another host: one TLS listener
// on the workload's address (`trellis.metrics: "host:port"` in the node
// metadata) that serves `GET /stats/prometheus` and nothing else. It presents
// the workload certificate and requires a client certificate from the mesh
// CA whose only SPIFFE ID is the control plane's
// (spiffe://<td>/trellis/control-plane); anyone else is refused in the TLS
// handshake (no certificate, another CA) or with 403 (another identity).
// The admin listener (tap, state changes) stays on loopback.
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { WorkloadIdentity } from './identity/workload-identity.ts';
import { uriSansOf } from './tls/spiffe-verify.ts';
import { controlPlaneSpiffeId, parseSpiffeId } from '../lib/spiffe.ts';
import { PROMETHEUS_CONTENT_TYPE } from './stats.ts';

export interface MetricsListener {
  readonly port: number;
  close(): Promise<void>;
}

export async function startMetricsListener(address: string, port: number, o: {
  identity: Pick<WorkloadIdentity, 'current' | 'onChange'>;
  expose: () => string;
}): Promise<{ ok: true; listener: MetricsListener } | { ok: false; error: string; code?: string }> {
  const first = o.identity.current();
  if (!first) return { ok: false, error: 'the metrics listener needs a workload certificate' };
  const server = https.createServer({ ...first.contextOptions, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const own = parseSpiffeId(o.identity.current()?.spiffeId ?? '');
    const peer = uriSansOf((req.socket as TLSSocket).getPeerCertificate()).filter((u) => u.startsWith('spiffe://'));
    if (!own || peer.length !== 1 || peer[0] !== controlPlaneSpiffeId(own.trustDomain)) {
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' }).end('only the control plane may read these metrics\n');
      return;
    }
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/stats/prometheus') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('only GET /stats/prometheus is served here\n');
      return;
    }
    res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(o.expose());
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  const off = o.identity.onChange((c) => server.setSecureContext({ ...c.contextOptions }));
  const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    server.once('error', resolve);
    server.listen(port, address, () => resolve(undefined));
  });
  if (err) {
    off();
    return { ok: false, error: `metrics listener ${address}:${port}: ${err.message}`, ...(err.code ? { code: err.code } : {}) };
  }
  server.on('error', () => {});
  return {
    ok: true,
    listener: {
      port: (server.address() as AddressInfo).port,
      close: () => new Promise<void>((r) => {
        off();
        server.close(() => r());
        server.closeAllConnections();
      }),
    },
  };
}
