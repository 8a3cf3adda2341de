// Shared pieces of the control-plane end-to-end tests (ha, mesh-e2e,
// proxyless-grpc): the JSON API client, an HTTP backend that answers its
// name, a GET through a proxy by Host, and the Service / split-route
// resources they apply.
import type { TestContext } from 'node:test';
import http from 'node:http';

export type ApiAnswer = { status: number; json: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** One JSON call to a control plane's API at `base` (http://host:port). */
export async function call(base: string, method: string, p: string, body?: unknown): Promise<ApiAnswer> {
  const res = await fetch(`${base}${p}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(5_000),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

/** An HTTP server on 127.0.0.1:0 answering `name`; closed after the test. */
export async function backend(t: TestContext, name: string): Promise<number> {
  const server = http.createServer((_req, res) => res.end(name));
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as { port: number }).port;
}

/** Keep-alive for `get`; destroy it when the proxy goes away. */
export const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

/** GET / on 127.0.0.1:`port` with Host `host` (a proxy's listener). */
export function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** A Service in `default` with one port named after its protocol. */
export function service(name: string, selector: Record<string, string>, port: { port: number; protocol: 'http' | 'grpc' } = { port: 9080, protocol: 'http' }) {
  return {
    apiVersion: 'trellis.dev/v1alpha1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: { selector, ports: [{ name: port.protocol, port: port.port, targetPort: port.protocol, protocol: port.protocol }] },
  };
}

/** reviews:9080 split between reviews-v1 and reviews-v2 by weight. */
export function reviewsSplit(weights: [number, number]) {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'reviews', namespace: 'default' },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'reviews', port: 9080 }],
      rules: [{ backendRefs: [{ name: 'reviews-v1', port: 9080, weight: weights[0] }, { name: 'reviews-v2', port: 9080, weight: weights[1] }] }],
    },
  };
}
