// Pure translation of the dedicated egress gateway: sidecars route a
// gatewayed ExternalService to the gateway's workloads over mTLS, the
// gateway listens mTLS-only and originates; an unknown gateway fails closed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { translate } from '../../src/control-plane/translate/translate.ts';
import { EGRESS_DENIED, GATEWAY_LABEL } from '../../src/control-plane/translate/egress.ts';
import { validateResource } from '../../src/api/validate.ts';
import type { ExternalServiceResource, GatewayResource, MeshState, ProxyNode, WorkloadInstance } from '../../src/control-plane/translate/model.ts';

const gw: GatewayResource = { metadata: { name: 'egress', namespace: 'default' }, spec: { gatewayClassName: 'trellis-egress', listeners: [{ name: 'mesh', port: 15443, protocol: 'HTTP' }] } };
const api: ExternalServiceResource = {
  metadata: { name: 'api', namespace: 'default' },
  spec: { hosts: ['api.example.com'], ports: [{ port: 80, targetPort: 443 }], tls: { mode: 'ORIGINATE', caFile: '/ca.pem' }, egressGateway: { name: 'egress' } },
};
const direct: ExternalServiceResource = { metadata: { name: 'direct', namespace: 'default' }, spec: { hosts: ['direct.example.com'], ports: [{ port: 80 }] } };
const gwWorkload: WorkloadInstance = {
  name: 'gateway-egress', namespace: 'default', serviceAccount: 'egress-gw', address: '127.0.0.1', labels: { [GATEWAY_LABEL]: 'egress' },
  ports: [{ port: 15443, proxyPort: 41000 }],
};
function state(over: Partial<MeshState> = {}): MeshState {
  return {
    services: [], httpRoutes: [], grpcRoutes: [], tcpRoutes: [], workloads: [gwWorkload], vips: new Map(), gateways: [gw], externalServices: [api, direct],
    meshTls: { trustDomain: 'trellis.local', policies: [] }, ...over,
  };
}
const sidecar: ProxyNode = { id: 'app', kind: 'sidecar', namespace: 'default', workload: 'app' };
const gatewayNode: ProxyNode = { id: 'gw', kind: 'gateway', namespace: 'default', gateway: 'egress', listenAddress: '127.0.0.1', portMap: { '15443': 0 } };

type Vh = { name: string; domains: string[]; routes: { route?: { cluster?: string; hostRewriteLiteral?: string }; directResponse?: { status: number; body?: { inlineString: string } } }[] };
type Cluster = { name: string; type?: string; loadAssignment?: { endpoints: { lbEndpoints: { endpoint: { address: { socketAddress: { address: string; portValue: number } } } }[] }[] }; transportSocket?: { typedConfig: Record<string, unknown> } };
const vhostsOf = (routes: object[], name: string): Vh[] => (routes as { name: string; virtualHosts: Vh[] }[]).find((r) => r.name === name)!.virtualHosts;

test('sidecar: a gatewayed host routes to the egress gateway cluster (mTLS to its SPIFFE ID); no direct cluster for it', () => {
  const out = translate(state(), sidecar);
  const vh = vhostsOf(out.routes, 'outbound').find((v) => v.domains.includes('api.example.com'))!;
  assert.equal(vh.routes[0]!.route!.cluster, 'egress-gateway|default|egress');
  assert.equal(vh.routes[0]!.route!.hostRewriteLiteral, undefined, 'the Host reaches the gateway as the app sent it');
  const names = (out.clusters as Cluster[]).map((c) => c.name);
  assert.ok(!names.includes('external|api.example.com|80'));
  assert.ok(names.includes('external|direct.example.com|80'), 'a destination without egressGateway stays direct');
  const gc = (out.clusters as Cluster[]).find((c) => c.name === 'egress-gateway|default|egress')!;
  assert.equal(gc.type, 'STATIC');
  assert.deepEqual(gc.loadAssignment!.endpoints[0]!.lbEndpoints.map((e) => e.endpoint.address.socketAddress), [{ address: '127.0.0.1', portValue: 41000 }]);
  const vc = gc.transportSocket!.typedConfig.commonTlsContext as { validationContext: { matchTypedSubjectAltNames: { matcher: { exact: string } }[] } };
  assert.deepEqual(vc.validationContext.matchTypedSubjectAltNames.map((m) => m.matcher.exact), ['spiffe://trellis.local/ns/default/sa/egress-gw']);
  assert.deepEqual(out.warnings, []);
});

test('sidecar: an unknown or non-egress gateway denies the host (fail closed) with a warning', () => {
  for (const gateways of [[], [{ ...gw, spec: { ...gw.spec, gatewayClassName: 'trellis' } }]]) {
    const out = translate(state({ gateways }), sidecar);
    const vh = vhostsOf(out.routes, 'outbound').find((v) => v.domains.includes('api.example.com'))!;
    assert.equal(vh.routes[0]!.directResponse!.status, 403);
    assert.match(vh.routes[0]!.directResponse!.body!.inlineString, /egressGateway default\/egress/);
    assert.ok(!(out.clusters as Cluster[]).some((c) => c.name.startsWith('egress-gateway|') || c.name === 'external|api.example.com|80'));
    assert.ok(out.warnings.some((w) => w.route === 'ExternalService default/api' && /denied/.test(w.message)), JSON.stringify(out.warnings));
  }
});

test('egress gateway: one mTLS-only listener, routes by Host to its destinations with origination, denies the rest', () => {
  const out = translate(state(), gatewayNode);
  const l = (out.listeners as { name: string; address: { socketAddress: { portValue: number } }; filterChains: { filterChainMatch?: { transportProtocol?: string }; transportSocket?: { typedConfig: { requireClientCertificate?: boolean } } }[] }[])
    .find((x) => x.name === 'gateway|15443')!;
  assert.equal(l.address.socketAddress.portValue, 0);
  assert.equal(l.filterChains.length, 1, 'no plaintext chain');
  assert.equal(l.filterChains[0]!.filterChainMatch!.transportProtocol, 'tls');
  assert.equal(l.filterChains[0]!.transportSocket!.typedConfig.requireClientCertificate, true);
  const vhs = vhostsOf(out.routes, 'egress-gateway|15443');
  assert.deepEqual(vhs.map((v) => v.name), ['external|api.example.com|80', 'egress-denied'], 'only the destinations naming this gateway');
  assert.equal(vhs[0]!.routes[0]!.route!.hostRewriteLiteral, 'api.example.com');
  assert.equal(vhs[1]!.routes[0]!.directResponse!.status, 403);
  const ext = (out.clusters as Cluster[]).find((c) => c.name === 'external|api.example.com|80')!;
  assert.equal(ext.transportSocket!.typedConfig.sni, 'api.example.com');
  assert.ok(EGRESS_DENIED);
});

test('egress gateway without mesh mTLS serves nothing (it accepts mesh identities only)', () => {
  const out = translate(state({ meshTls: undefined }), gatewayNode);
  assert.ok(!(out.listeners as { name: string }[]).some((l) => l.name.startsWith('gateway|')));
  assert.ok(out.warnings.some((w) => /mTLS/.test(w.message)));
});

test('schema: egressGateway is validated with field paths', () => {
  const base = { apiVersion: 'trellis.dev/v1alpha1', kind: 'ExternalService', metadata: { name: 'api' } };
  const ok = validateResource({ ...base, spec: { hosts: ['api.example.com'], ports: [{ port: 443 }], egressGateway: { name: 'egress', namespace: 'infra' } } });
  assert.equal(ok.ok, true, JSON.stringify(ok));
  const bad = validateResource({ ...base, spec: { hosts: ['api.example.com'], ports: [{ port: 443 }], egressGateway: { nam: 'egress' } } });
  assert.equal(bad.ok, false);
  assert.match(JSON.stringify(bad), /egressGateway/);
});
