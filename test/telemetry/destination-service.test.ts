// destination_service on the inbound side comes from the sidecar's own
// service (node metadata), not from the authority the caller typed: an
// ingress gateway forwards the public host, a gRPC client sends its dial
// target (127.0.0.1:port), neither names the service. Both used to be
// labelled "unknown", so `trellis stat services` showed an unknown row and
// 0 RPS for the real service.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { INBOUND_ADDRESS, app, call, metricsText, startSidecar } from './mesh-fixture.ts';
import { Scraper } from '../../src/control-plane/telemetry/scraper.ts';
import { createGoldenMetrics } from '../../src/control-plane/telemetry/golden.ts';

function series(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const body = line.slice(name.length + 1, close);
    if (Object.entries(labels).every(([k, v]) => body.includes(`${k}="${v}"`))) return Number(line.slice(close + 1).trim());
  }
  return undefined;
}

async function goldenServices(t: TestContext, adminPort: number, traffic: () => Promise<void>) {
  const scraper = new Scraper({ targets: () => [{ address: `127.0.0.1:${adminPort}` }], intervalMs: 200 });
  t.after(() => scraper.stop());
  await scraper.scrapeOnce(); // baseline
  await traffic();
  await scraper.scrapeOnce();
  return createGoldenMetrics(scraper.aggregator).services({ window: '1m' });
}

test('inbound from a gateway-like caller (no x-trellis-peer, public host or IP authority): destination_service is the sidecar\'s service', async (t) => {
  const appPort = await app(t, (req, res) => {
    req.resume();
    res.end('page');
  });
  const pp = await startSidecar(t, { workload: 'productpage-v1', namespace: 'shop', service: 'productpage', appPort });
  const inbound = { address: INBOUND_ADDRESS, port: pp.inboundPort! };
  const rows = await goldenServices(t, pp.adminPort, async () => {
    for (let i = 0; i < 3; i++) assert.equal((await call(inbound, 'bookinfo.example.com', '/productpage')).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await call(inbound, `127.0.0.1:27080`, '/productpage')).status, 200);
  });
  const text = await metricsText(pp.adminPort);
  const labels = { direction: 'inbound', source_workload: 'unknown', destination_workload: 'productpage-v1', destination_namespace: 'shop', destination_service: 'productpage.shop.svc.cluster.local', route: 'inbound', response_code: '200', protocol: 'http1' };
  assert.equal(series(text, 'trellis_requests_total', labels), 5);
  assert.doesNotMatch(text, /trellis_requests_total\{[^}]*destination_service="unknown"/);

  const byName = new Map(rows.map((r) => [r.name, r]));
  assert.equal(byName.has('unknown'), false, `no unknown-service row: ${JSON.stringify(rows.map((r) => r.name))}`);
  const row = byName.get('productpage');
  assert.ok(row, `productpage row: ${JSON.stringify(rows)}`);
  assert.equal(row.requests, 5);
  assert.ok(row.rps > 0);
});

test('gRPC into a sidecar (authority is the dial target 127.0.0.1:port): destination_service and protocol grpc; outbound side from the cluster', async (t) => {
  // A gRPC-shaped h2c app: answers every call with grpc-status 0 in trailers.
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('data', () => {});
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const appPort = (server.address() as AddressInfo).port;

  const ratings = await startSidecar(t, { workload: 'ratings-v1', namespace: 'shop', service: 'ratings', appPort, appH2: true });
  const reviews = await startSidecar(t, { workload: 'reviews-v2', namespace: 'shop', upstreams: [{ service: 'ratings', namespace: 'shop', port: 9090, inboundPort: ratings.inboundPort!, workload: 'ratings-v1', h2: true }] });

  const grpcCall = (address: string, port: number, authority: string): Promise<string | undefined> =>
    new Promise((resolve, reject) => {
      const client = http2.connect(`http://${address}:${port}`);
      client.on('error', reject);
      const req = client.request({ ':method': 'POST', ':path': '/ratings.Ratings/Get', ':authority': authority, 'content-type': 'application/grpc', te: 'trailers' });
      let status: string | undefined;
      req.on('trailers', (tr) => (status = String(tr['grpc-status'])));
      req.on('response', (h) => {
        if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
      });
      req.on('data', () => {});
      req.on('end', () => {
        client.close();
        resolve(status);
      });
      req.on('error', (e) => {
        client.close();
        reject(e);
      });
      req.end(Buffer.from([0, 0, 0, 0, 0]));
    });

  const rows = await goldenServices(t, ratings.adminPort, async () => {
    // Straight to the inbound listener, as a gRPC client dialling an address does.
    for (let i = 0; i < 3; i++) assert.equal(await grpcCall(INBOUND_ADDRESS, ratings.inboundPort!, `127.0.0.1:${appPort}`), '0');
    // Through the caller's sidecar, routed by host to ratings.shop.svc:9090.
    for (let i = 0; i < 2; i++) assert.equal(await grpcCall('127.0.0.1', reviews.outboundPort!, 'ratings:9090'), '0');
  });

  const inb = await metricsText(ratings.adminPort);
  const inLabels = { direction: 'inbound', destination_workload: 'ratings-v1', destination_service: 'ratings.shop.svc.cluster.local', protocol: 'grpc', grpc_status: '0', response_code: '200' };
  assert.equal(series(inb, 'trellis_requests_total', { ...inLabels, source_workload: 'unknown' }), 3);
  assert.equal(series(inb, 'trellis_requests_total', { ...inLabels, source_workload: 'reviews-v2' }), 2);
  assert.doesNotMatch(inb, /trellis_requests_total\{[^}]*destination_service="unknown"/);

  const out = await metricsText(reviews.adminPort);
  assert.equal(series(out, 'trellis_requests_total', { direction: 'outbound', source_workload: 'reviews-v2', destination_workload: 'ratings-v1', destination_service: 'ratings.shop.svc.cluster.local', protocol: 'grpc', grpc_status: '0' }), 2);

  const byName = new Map(rows.map((r) => [r.name, r]));
  assert.equal(byName.has('unknown'), false);
  const row = byName.get('ratings');
  assert.ok(row, 'ratings row');
  assert.equal(row.requests, 5);
  assert.ok(row.rps > 0);
  assert.equal(row.successRate, 1);
});

test('gateway listeners are direction "gateway" (labelled like a caller, not as the inbound side of a workload)', async () => {
  const { translate } = await import('../../src/control-plane/translate/translate.ts');
  const { readListener } = await import('../../src/proxy/config/envoy-listener.ts');
  const { Issues } = await import('../../src/proxy/config/field-error.ts');
  const out = translate({
    services: [{ metadata: { name: 'productpage', namespace: 'default' }, spec: { selector: { app: 'productpage' }, ports: [{ port: 9080, protocol: 'http' }] } }],
    httpRoutes: [], grpcRoutes: [], tcpRoutes: [], workloads: [], vips: new Map(),
    gateways: [{ metadata: { name: 'edge', namespace: 'default' }, spec: { gatewayClassName: 'trellis', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } }],
  }, { id: 'gw-1', kind: 'gateway', namespace: 'default', gateway: 'edge', listenAddress: '127.0.0.1', portMap: { '80': 18080 } });
  assert.equal(out.listeners.length, 1);
  const issues = new Issues();
  const parsed = readListener(out.listeners[0], 'listeners[0]', issues);
  assert.deepEqual(issues.errors, []);
  assert.equal(parsed?.spec.direction, 'gateway');
});
