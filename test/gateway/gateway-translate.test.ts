// Pure translation: a Gateway node's listeners and routes, and the
// sidecars' egress virtual hosts (no sockets).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { translate } from '../../src/control-plane/translate/translate.ts';
import { hostIntersection } from '../../src/control-plane/translate/gateway.ts';
import type { GatewayResource, HTTPRouteResource, MeshState, ProxyNode } from '../../src/control-plane/translate/model.ts';

const svc = (name: string) => ({ metadata: { name, namespace: 'default' }, spec: { selector: { app: name }, ports: [{ port: 8080, protocol: 'http' as const }] } });
const gw: GatewayResource = {
  metadata: { name: 'edge', namespace: 'default' },
  spec: {
    gatewayClassName: 'trellis',
    listeners: [
      { name: 'http', port: 80, protocol: 'HTTP' },
      { name: 'a', port: 443, protocol: 'HTTPS', hostname: 'a.example.com', tls: { certificateRefs: [{ name: 'cert-a' }] } },
      { name: 'b', port: 443, protocol: 'HTTPS', hostname: 'b.example.com', tls: { certificateRefs: [{ name: 'cert-b', namespace: 'certs' }] } },
    ],
  },
};
const route = (name: string, ns: string, parentRefs: HTTPRouteResource['spec']['parentRefs'], backend: string, hostnames?: string[]): HTTPRouteResource => ({
  metadata: { name, namespace: ns }, spec: { parentRefs, ...(hostnames ? { hostnames } : {}), rules: [{ backendRefs: [{ name: backend, port: 8080 }] }] },
});

function state(over: Partial<MeshState> = {}): MeshState {
  return { services: [svc('web'), svc('api')], httpRoutes: [], grpcRoutes: [], tcpRoutes: [], workloads: [], vips: new Map(), gateways: [gw], ...over };
}
const gatewayNode: ProxyNode = { id: 'gw-1', kind: 'gateway', namespace: 'default', gateway: 'edge', listenAddress: '127.0.0.1', portMap: { '80': 18080 }, certDir: '/etc/certs' };

type Vh = { name: string; domains: string[]; routes: { route?: { cluster?: string }; directResponse?: { status: number } }[] };

test('hostnames: Gateway API intersection of listener and route hostnames', () => {
  assert.deepEqual(hostIntersection(undefined, []), ['*']);
  assert.deepEqual(hostIntersection('a.example.com', []), ['a.example.com']);
  assert.deepEqual(hostIntersection(undefined, ['X.example.com']), ['x.example.com']);
  assert.deepEqual(hostIntersection('*.example.com', ['shop.example.com', 'other.org']), ['shop.example.com']);
  assert.deepEqual(hostIntersection('shop.example.com', ['*.example.com']), ['shop.example.com']);
  assert.deepEqual(hostIntersection('a.example.com', ['b.example.com']), []);
});

test('a gateway node gets one listener per port: HTTPS chains by SNI with file certificates, then plain HTTP', () => {
  const out = translate(state({ httpRoutes: [route('all', 'default', [{ name: 'edge' }], 'web')] }), gatewayNode);
  const names = (out.listeners as { name: string }[]).map((l) => l.name);
  assert.deepEqual(names, ['gateway|80', 'gateway|443']);
  const l80 = out.listeners[0] as { address: { socketAddress: { address: string; portValue: number } } };
  assert.deepEqual(l80.address.socketAddress, { address: '127.0.0.1', portValue: 18080 });
  const l443 = out.listeners[1] as { address: { socketAddress: { portValue: number } }; filterChains: { filterChainMatch?: { serverNames?: string[] }; transportSocket?: { typedConfig: { commonTlsContext: { tlsCertificates: { certificateChain: { filename: string } }[] } } } }[] };
  assert.equal(l443.address.socketAddress.portValue, 443);
  assert.deepEqual(l443.filterChains.map((c) => c.filterChainMatch?.serverNames), [['a.example.com'], ['b.example.com']]);
  assert.deepEqual(l443.filterChains.map((c) => c.transportSocket?.typedConfig.commonTlsContext.tlsCertificates[0]?.certificateChain.filename), [
    '/etc/certs/default/cert-a/tls.crt', '/etc/certs/certs/cert-b/tls.crt',
  ]);
  const rc443 = (out.routes as { name: string; virtualHosts: Vh[] }[]).find((r) => r.name === 'gateway|443')!;
  assert.deepEqual(rc443.virtualHosts.map((v) => v.domains), [['a.example.com', 'a.example.com:*'], ['b.example.com', 'b.example.com:*']]);
  assert.match(String(rc443.virtualHosts[0]!.routes[0]!.route?.cluster), /web/);
  // Clusters and EDS are the mesh's.
  assert.ok((out.clusters as { name: string }[]).some((c) => /web/.test(c.name)));
});

test('sectionName narrows a route to one listener; other namespaces and other gateways do not attach', () => {
  const out = translate(state({
    httpRoutes: [
      route('only-a', 'default', [{ name: 'edge', sectionName: 'a' }], 'api'),
      route('plain', 'default', [{ name: 'edge', sectionName: 'http' }], 'web'),
      route('foreign', 'other', [{ name: 'edge', namespace: 'default' }], 'web'),
      route('elsewhere', 'default', [{ name: 'other-gw' }], 'web'),
    ],
  }), gatewayNode);
  const rcs = out.routes as { name: string; virtualHosts: Vh[] }[];
  const rc80 = rcs.find((r) => r.name === 'gateway|80')!;
  assert.deepEqual(rc80.virtualHosts.map((v) => v.domains), [['*']]);
  assert.match(String(rc80.virtualHosts[0]!.routes[0]!.route?.cluster), /web/);
  const rc443 = rcs.find((r) => r.name === 'gateway|443')!;
  assert.deepEqual(rc443.virtualHosts.map((v) => v.domains[0]), ['a.example.com']);
  assert.match(String(rc443.virtualHosts[0]!.routes[0]!.route?.cluster), /api/);
  assert.ok(out.warnings.some((w) => w.route === 'HTTPRoute other/foreign'));
});

test('a gateway node for a missing Gateway gets no listeners and a warning', () => {
  const out = translate(state({ gateways: [] }), gatewayNode);
  assert.deepEqual(out.listeners, []);
  assert.ok(out.warnings.some((w) => /Gateway default\/edge not found/.test(w.message)));
});

test('sidecars: declared external hosts route to their cluster, everything else is denied last', () => {
  const out = translate(state({
    externalServices: [{ metadata: { name: 'x', namespace: 'default' }, spec: { hosts: ['api.example.com'], ports: [{ port: 80, targetPort: 443 }], tls: { mode: 'ORIGINATE' } } }],
  }), { id: 's', kind: 'sidecar', namespace: 'default', workload: 'w' });
  const outbound = (out.routes as { name: string; virtualHosts: Vh[] }[]).find((r) => r.name === 'outbound')!;
  const last = outbound.virtualHosts.at(-1)!;
  assert.deepEqual(last.domains, ['*']);
  assert.equal(last.routes[0]!.directResponse?.status, 403);
  const ext = outbound.virtualHosts.find((v) => v.domains.includes('api.example.com'))!;
  assert.equal(ext.routes[0]!.route?.cluster, 'external|api.example.com|80');
  const cluster = (out.clusters as { name: string; type: string; transportSocket?: { typedConfig: { sni: string } }; loadAssignment: { endpoints: { lbEndpoints: { endpoint: { address: { socketAddress: { address: string; portValue: number } } } }[] }[] } }[])
    .find((c) => c.name === 'external|api.example.com|80')!;
  assert.equal(cluster.type, 'STRICT_DNS');
  assert.deepEqual(cluster.loadAssignment.endpoints[0]!.lbEndpoints[0]!.endpoint.address.socketAddress, { address: 'api.example.com', portValue: 443 });
  assert.equal(cluster.transportSocket?.typedConfig.sni, 'api.example.com');
});
