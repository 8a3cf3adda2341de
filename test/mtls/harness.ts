// mTLS test harness: an in-process CA behind its real HTTP routes, workload
// identities fetched through them, backends, and sidecar pairs configured with
// Envoy-shaped resources (what translate/mtls.ts emits): an outbound proxy A
// whose cluster originates mTLS to the inbound listener of proxy B, which
// terminates it in STRICT or PERMISSIVE mode and forwards to the app.
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { startCertificateAuthority, type CaOptions, type CertificateAuthority } from '../../src/control-plane/ca/ca.ts';
import { fakeCaStore } from '../../src/control-plane/ca/fake-store.ts';
import { identityRoutes } from '../../src/control-plane/ca/identity-routes.ts';
import { Router } from '../../src/control-plane/api/router.ts';
import { createCaClient } from '../../src/proxy/identity/ca-client.ts';
import { createWorkloadIdentity, type WorkloadIdentity, type WorkloadIdentityOptions } from '../../src/proxy/identity/workload-identity.ts';
import { meshTlsProxyOptions } from '../../src/proxy/tls/mesh-tls.ts';
import { DOWNSTREAM_TLS_TYPE, UPSTREAM_TLS_TYPE } from '../../src/proxy/tls/upstream-tls.ts';
import { buildProxyConfig } from '../../src/proxy/config/envoy.ts';
import { startProxy, type Proxy } from '../../src/proxy/proxy.ts';

export const TD = 'mesh.test';
const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const addr = (port: number) => ({ socketAddress: { address: '127.0.0.1', portValue: port } });

export interface TestCa {
  ca: CertificateAuthority;
  url: string;
}

export async function startTestCa(t: TestContext, opts: Partial<CaOptions> = {}): Promise<TestCa> {
  const r = await startCertificateAuthority({ store: fakeCaStore(), trustDomain: TD, ...opts });
  assert.ok(r.ok);
  const router = new Router();
  router.add(identityRoutes(r.ca));
  const server = http.createServer((req, res) => void router.dispatch(req, res));
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { ca: r.ca, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export async function startIdentity(t: TestContext, tca: TestCa, sa: string, opts: Partial<WorkloadIdentityOptions> = {}): Promise<WorkloadIdentity> {
  const tok = await tca.ca.createJoinToken({ namespace: 'shop', serviceAccount: sa, workload: `${sa}-1` });
  assert.ok(tok.ok);
  const id = createWorkloadIdentity({ ca: createCaClient({ baseUrl: tca.url, joinToken: tok.token }), bundlePollMs: 0, ...opts });
  t.after(() => id.stop());
  const r = await id.start({ timeoutMs: 5000 });
  assert.ok(r.ok, JSON.stringify(r));
  return id;
}

export const spiffe = (sa: string) => `spiffe://${TD}/ns/shop/sa/${sa}`;

/** An HTTP/1.1 app echoing what it saw, or an h2c app when `h2`. */
export async function startApp(t: TestContext, h2 = false): Promise<number> {
  const answer = (headers: http.IncomingHttpHeaders, version: string) =>
    JSON.stringify({ peer: headers['x-trellis-peer-identity'] ?? null, version });
  if (h2) {
    const s = http2.createServer();
    s.on('stream', (stream, headers) => {
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(answer(headers as http.IncomingHttpHeaders, '2'));
    });
    const sessions = new Set<http2.ServerHttp2Session>();
    s.on('session', (x) => sessions.add(x));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    t.after(() => {
      for (const x of sessions) x.destroy();
      s.close();
    });
    return (s.address() as AddressInfo).port;
  }
  const s = http.createServer((req, res) => {
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(answer(req.headers, req.httpVersion));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => {
    s.closeAllConnections();
    s.close();
  });
  return (s.address() as AddressInfo).port;
}

function hcm(name: string, cluster: string): object {
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typedConfig: {
      '@type': HCM,
      statPrefix: name,
      codecType: 'AUTO',
      routeConfig: { name, virtualHosts: [{ name, domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster, timeout: '0s' } }] }] },
      httpFilters: [{ name: 'envoy.filters.http.router' }],
    },
  };
}

export const downstreamTls = {
  name: 'envoy.transport_sockets.tls',
  typedConfig: { '@type': DOWNSTREAM_TLS_TYPE, requireClientCertificate: true, commonTlsContext: { alpnProtocols: ['h2', 'http/1.1'] } },
};

export function upstreamTls(sans: string[]): object {
  return {
    name: 'envoy.transport_sockets.tls',
    typedConfig: {
      '@type': UPSTREAM_TLS_TYPE,
      commonTlsContext: { validationContext: { matchTypedSubjectAltNames: sans.map((exact) => ({ sanType: 'URI', matcher: { exact } })) } },
    },
  };
}

function cluster(name: string, port: number, o: { h2?: boolean; tls?: object; maxRequestsPerConnection?: number }): object {
  return {
    name,
    type: 'STATIC',
    connectTimeout: '2s',
    lbPolicy: 'ROUND_ROBIN',
    loadAssignment: { clusterName: name, endpoints: [{ lbEndpoints: [{ endpoint: { address: addr(port) } }] }] },
    ...(o.h2 ? { http2ProtocolOptions: {} } : {}),
    ...(o.tls ? { transportSocket: o.tls } : {}),
    ...(o.maxRequestsPerConnection ? { maxRequestsPerConnection: o.maxRequestsPerConnection } : {}),
  };
}

async function runProxy(t: TestContext, version: string, listeners: object[], clusters: object[], identity: WorkloadIdentity): Promise<Proxy> {
  const built = buildProxyConfig({ version, listeners, clusters }, { references: 'error' });
  assert.ok(built.ok, JSON.stringify(built));
  const log = process.env['TRELLIS_TEST_LOG'] ? (event: string, fields?: Record<string, unknown>) => console.error(version, event, JSON.stringify(fields)) : undefined;
  const mesh = meshTlsProxyOptions(identity, { trustDomain: TD, ...(log ? { log } : {}) });
  const r = await startProxy({ ...(log ? { log } : {}), config: built.config, node: { id: version, cluster: version, locality: { region: '', zone: '', subZone: '' }, metadata: {} }, admin: false, detectTimeoutMs: 1000, ...mesh });
  assert.ok(r.ok, JSON.stringify(r));
  t.after(() => {
    mesh.terminateTls.close();
    return r.proxy.stop({ drainMs: 0 });
  });
  return r.proxy;
}

type Mode = 'STRICT' | 'PERMISSIVE';

/** The inbound listener's chains in `mode`, as translate/mtls.ts shapes them (HTTP, or a TCP proxy). */
function inboundChains(mode: Mode, tcp = false): object[] {
  const filter = () => (tcp ? tcpFilter('inbound', 'app') : hcm('inbound', 'app'));
  const chains: object[] = [{ name: 'mtls', filterChainMatch: { transportProtocol: 'tls' }, transportSocket: downstreamTls, filters: [filter()] }];
  if (mode === 'PERMISSIVE') chains.push({ name: 'plaintext', filterChainMatch: { transportProtocol: 'raw_buffer' }, filters: [filter()] });
  return chains;
}

/** The server side: an inbound listener in `mode` in front of the app. */
export async function startInbound(t: TestContext, identity: WorkloadIdentity, appPort: number, o: { mode: Mode; h2App?: boolean }): Promise<number> {
  return (await startInboundProxy(t, identity, appPort, o)).port;
}

/** startInbound, keeping the proxy: `setMode` pushes the listener in another
 * mode on the same port, as an xDS update does (the proxy's applyConfig). */
export async function startInboundProxy(t: TestContext, identity: WorkloadIdentity, appPort: number, o: { mode: Mode; h2App?: boolean; tcp?: boolean }): Promise<{ port: number; proxy: Proxy; setMode(mode: Mode): Promise<void> }> {
  const clusters = [cluster('app', appPort, { h2: o.h2App ?? false })];
  const p = await runProxy(t, 'inbound-b', [{ name: 'inbound', address: addr(0), trafficDirection: 'INBOUND', filterChains: inboundChains(o.mode, o.tcp) }], clusters, identity);
  const port = p.ports.get('inbound')!;
  let version = 0;
  return {
    port,
    proxy: p,
    async setMode(mode) {
      // Port 0 as first given: the same listener, updated in place.
      const built = buildProxyConfig({ version: `inbound-b-${++version}`, listeners: [{ name: 'inbound', address: addr(0), trafficDirection: 'INBOUND', filterChains: inboundChains(mode, o.tcp) }], clusters }, { references: 'error' });
      assert.ok(built.ok, JSON.stringify(built));
      const r = await p.applyConfig(built.config);
      assert.ok(r.ok, JSON.stringify(r));
    },
  };
}

/** The client side: a plaintext outbound listener whose cluster originates
 * mTLS to `peerPort` expecting `sans` (plaintext when `sans` is empty). */
export async function startOutbound(t: TestContext, identity: WorkloadIdentity, peerPort: number, o: { sans: string[]; h2?: boolean; maxRequestsPerConnection?: number }): Promise<number> {
  const p = await runProxy(t, 'outbound-a', [{ name: 'outbound', address: addr(0), trafficDirection: 'OUTBOUND', filterChains: [{ name: 'out', filters: [hcm('outbound', 'b')] }] }],
    [cluster('b', peerPort, { h2: o.h2 ?? false, ...(o.sans.length > 0 ? { tls: upstreamTls(o.sans) } : {}), ...(o.maxRequestsPerConnection ? { maxRequestsPerConnection: o.maxRequestsPerConnection } : {}) })], identity);
  return p.ports.get('outbound')!;
}

export interface Answer {
  status: number;
  body: { peer: string | null; version: string } | null;
}

export async function get(port: number, headers: Record<string, string> = {}, agent?: http.Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host: 'b.shop', ...headers }, agent: agent ?? false, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let body: Answer['body'] = null;
        try {
          body = JSON.parse(text) as Answer['body'];
        } catch {
          // not the app's answer
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const TCP_PROXY = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
const tcpFilter = (name: string, cluster: string) => ({ name: 'envoy.filters.network.tcp_proxy', typedConfig: { '@type': TCP_PROXY, statPrefix: name, cluster } });

/** TCP: an inbound listener terminating mTLS (STRICT) in front of a TCP app. */
export async function startTcpInbound(t: TestContext, identity: WorkloadIdentity, appPort: number): Promise<number> {
  const chains = [{ name: 'mtls', filterChainMatch: { transportProtocol: 'tls' }, transportSocket: downstreamTls, filters: [tcpFilter('inbound', 'app')] }];
  const p = await runProxy(t, 'tcp-inbound-b', [{ name: 'inbound', address: addr(0), trafficDirection: 'INBOUND', filterChains: chains }], [cluster('app', appPort, {})], identity);
  return p.ports.get('inbound')!;
}

/** TCP: a plaintext local listener whose cluster originates mTLS to `peerPort`. */
export async function startTcpOutbound(t: TestContext, identity: WorkloadIdentity, peerPort: number, sans: string[]): Promise<number> {
  const p = await runProxy(t, 'tcp-outbound-a', [{ name: 'out', address: addr(0), trafficDirection: 'OUTBOUND', filterChains: [{ name: 'out', filters: [tcpFilter('out', 'b')] }] }],
    [cluster('b', peerPort, { tls: upstreamTls(sans) })], identity);
  return p.ports.get('out')!;
}
