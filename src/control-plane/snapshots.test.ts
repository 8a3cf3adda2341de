// MeshSnapshotSource: per-view snapshots, the reuse of a proxy's own part
// when only endpoints moved, and the property that reuse rests on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeshSnapshotSource, ownInputsKey } from './snapshots.ts';
import { translateParts } from './translate/translate.ts';
import { GATEWAY_LABEL } from './translate/egress.ts';
import type { MeshState, ProxyNode, WorkloadInstance } from './translate/model.ts';
import type { PolicyResource } from './translate/policies.ts';
import type { XdsNode } from '../xds/cache.ts';
import { TypeUrl } from '../xds/protos.ts';

const wl = (name: string, app: string, address: string, extra: Partial<WorkloadInstance> = {}): WorkloadInstance => ({
  name, namespace: 'shop', address, serviceAccount: app, labels: { app, 'trellis.dev/tls-mode': 'mtls', 'trellis.dev/meshed': 'true' },
  ports: [{ port: 8080, protocol: 'http', name: 'http', proxyPort: 15100 }, { port: 5432, protocol: 'tcp', proxyPort: 15101 }],
  locality: { region: 'eu', zone: 'eu-1' }, ...extra,
});
const pol = (kind: PolicyResource['kind'], name: string, spec: object): PolicyResource =>
  ({ kind, metadata: { name, namespace: 'shop', creationTimestamp: '2026-01-01T00:00:00Z' }, spec } as PolicyResource);

/** Every kind of input that reaches a proxy's own part: policies (a global
 * rate limit counts workloads), STRICT mTLS, authorization, an egress
 * gateway with registered members, transparent capture. */
function richState(addr = (i: number) => `10.0.0.${i}`): MeshState {
  return {
    services: [
      { metadata: { name: 'orders', namespace: 'shop' }, spec: { selector: { app: 'orders' }, ports: [{ name: 'http', port: 8080, protocol: 'http' }, { port: 5432, protocol: 'tcp' }] } },
      { metadata: { name: 'cart', namespace: 'shop' }, spec: { selector: { app: 'cart' }, ports: [{ name: 'http', port: 8080, protocol: 'http' }] } },
    ],
    httpRoutes: [{ metadata: { name: 'orders', namespace: 'shop' }, spec: { parentRefs: [{ kind: 'Service', name: 'orders', port: 8080 }], rules: [{ backendRefs: [{ name: 'orders', port: 8080, weight: 90 }, { name: 'cart', port: 8080, weight: 10 }] }] } }],
    grpcRoutes: [],
    tcpRoutes: [],
    workloads: [
      wl('orders-1', 'orders', addr(1)),
      wl('orders-2', 'orders', addr(2), { locality: { region: 'eu', zone: 'eu-2' } }),
      wl('cart-1', 'cart', addr(3)),
      { name: 'gateway-egress', namespace: 'shop', serviceAccount: 'egress', address: addr(4), labels: { [GATEWAY_LABEL]: 'egress' }, ports: [{ port: 15443, proxyPort: 41000 }] },
    ],
    vips: new Map([['shop/orders', '240.240.0.1']]),
    gateways: [{ metadata: { name: 'egress', namespace: 'shop' }, spec: { gatewayClassName: 'trellis-egress', listeners: [{ name: 'mesh', port: 15443, protocol: 'HTTP' }] } }],
    externalServices: [{ metadata: { name: 'api', namespace: 'shop' }, spec: { hosts: ['api.example.com'], ports: [{ port: 80, targetPort: 443 }], tls: { mode: 'ORIGINATE' }, egressGateway: { name: 'egress' } } }],
    meshTls: { trustDomain: 'mesh.test', trustBundlePem: 'bundle', policies: [{ metadata: { name: 'strict', namespace: 'shop' }, spec: { mode: 'STRICT' } }] },
    security: {
      authorizationPolicies: [{ metadata: { name: 'orders', namespace: 'shop' }, spec: { selector: { app: 'orders' }, rules: [{ from: [{ source: { principals: ['mesh.test/ns/shop/sa/cart'] } }] }] } }],
      requestAuthentications: [],
    },
    policies: [
      pol('RateLimitPolicy', 'rl', { targetRef: { kind: 'Service', name: 'orders' }, global: { requestsPerSecond: 60 } }),
      pol('RetryPolicy', 'retry', { targetRef: { kind: 'Service', name: 'orders' }, attempts: 2 }),
    ],
    connectedSidecars: new Set(['shop/orders-1', 'shop/orders-2']),
  };
}

const nodes: ProxyNode[] = [
  { id: 'o1', kind: 'sidecar', namespace: 'shop', workload: 'orders-1' },
  { id: 'c1', kind: 'sidecar', namespace: 'shop', workload: 'cart-1', upstreams: [{ service: 'orders', port: 5432, localPort: 25432 }, { service: 'orders', port: 8080, localPort: 28080 }] },
  { id: 'o2', kind: 'sidecar', namespace: 'shop', workload: 'orders-2', capture: 'transparent', inboundPort: 15006 },
  { id: 'gw', kind: 'gateway', namespace: 'shop', gateway: 'egress', listenAddress: '127.0.0.1', portMap: { '15443': 0 } },
  { id: 'grpc', kind: 'proxyless', namespace: 'shop' },
];

test("a proxy's own part and the warnings do not depend on where workloads are (what reusing it rests on)", () => {
  const a = richState();
  const b = richState((i) => `192.168.7.${100 + i}`);
  assert.equal(ownInputsKey(a), ownInputsKey(b));
  for (const node of nodes) {
    const pa = translateParts(a, node);
    const pb = translateParts(b, node);
    assert.ok(pa.own.listeners.length + pa.own.clusters.length > 0 || node.kind === 'proxyless', `${node.id}: has an own part`);
    assert.deepEqual(pb.own, pa.own, `${node.id}: own part`);
    assert.deepEqual(pb.warnings, pa.warnings, `${node.id}: warnings`);
    assert.equal(pb.sharedKey, pa.sharedKey);
  }
  // The shared part does read addresses (EDS): the fixture does move something.
  assert.notDeepEqual(translateParts(b, nodes[0]!).shared.endpoints, translateParts(a, nodes[0]!).shared.endpoints);
});

test('ownInputsKey changes with anything but a workload address', () => {
  const base = ownInputsKey(richState());
  const s = richState();
  const variants: [string, MeshState][] = [
    ['health', { ...s, workloads: s.workloads.map((w, i) => (i === 1 ? { ...w, healthy: false } : w)) }],
    ['a label', { ...s, workloads: s.workloads.map((w, i) => (i === 0 ? { ...w, labels: { ...w.labels, version: 'v2' } } : w)) }],
    ['a port', { ...s, workloads: s.workloads.map((w, i) => (i === 0 ? { ...w, ports: [{ port: 9090, proxyPort: 15100 }] } : w)) }],
    ['a new workload', { ...s, workloads: [...s.workloads, wl('cart-2', 'cart', '10.0.0.9')] }],
    ['a VIP', { ...s, vips: new Map([['shop/orders', '240.240.0.2']]) }],
    ['connected sidecars', { ...s, connectedSidecars: new Set(['shop/orders-1']) }],
    ['a policy', { ...s, policies: s.policies!.slice(1) }],
    ['mTLS', { ...s, meshTls: { ...s.meshTls!, policies: [] } }],
  ];
  for (const [what, v] of variants) assert.notEqual(ownInputsKey(v), base, what);
  // A field holding a Map or Set that the key does not know of is refused, not skipped.
  assert.throws(() => ownInputsKey({ ...s, extra: new Map() } as MeshState), /Map or Set/);
});

const xdsNode = (n: ProxyNode): XdsNode => ({
  id: n.id, cluster: '', locality: { region: '', zone: '', subZone: '' }, userAgentName: '', userAgentVersion: '',
  metadata: { trellis: { kind: n.kind, namespace: n.namespace, ...(n.workload ? { workload: n.workload } : {}), ...(n.capture ? { capture: n.capture, inboundPort: n.inboundPort! } : {}) } },
});

test('an endpoint move reuses each proxy\'s own part as it was; any other change translates it again', () => {
  const source = new MeshSnapshotSource();
  const node = xdsNode(nodes[0]!);
  source.setState(richState(), 1);
  const s1 = source.snapshotFor(node)!;
  assert.ok(s1);
  source.setState(richState((i) => `10.1.0.${i}`), 2);
  const s2 = source.snapshotFor(node)!;
  assert.notEqual(s2, s1);
  assert.equal(s2.label, '2');
  // The own listeners are the very same resources; EDS moved.
  assert.equal(s2.types.get(TypeUrl.listener), s1.types.get(TypeUrl.listener));
  assert.notEqual(s2.types.get(TypeUrl.endpoint)!.version, s1.types.get(TypeUrl.endpoint)!.version);
  assert.deepEqual(source.reports().map((r) => r.errors), [[]]);

  // Its own workload gains a port: translated again, a new inbound listener.
  const s = richState((i) => `10.1.0.${i}`);
  source.setState({ ...s, workloads: s.workloads.map((w) => (w.name === 'orders-1' ? { ...w, ports: [...w.ports, { port: 9090, protocol: 'http' as const, proxyPort: 15102 }] } : w)) }, 3);
  const s3 = source.snapshotFor(node)!;
  assert.notEqual(s3.types.get(TypeUrl.listener)!.version, s2.types.get(TypeUrl.listener)!.version);
  assert.ok(s3.types.get(TypeUrl.listener)!.resources.has('inbound|9090'));
});

test('a rejected translation keeps the last good snapshot, also when only endpoints move after it', () => {
  const logs: string[] = [];
  const source = new MeshSnapshotSource({ log: (m) => logs.push(m) });
  const node = xdsNode(nodes[0]!);
  source.setState(richState(), 1);
  const good = source.snapshotFor(node)!;
  // Two ports of its workload on one proxy port: a duplicate listener name, rejected.
  const bad = (addr?: (i: number) => string): MeshState => {
    const s = richState(addr);
    return { ...s, workloads: s.workloads.map((w) => (w.name === 'orders-1' ? { ...w, ports: [w.ports[0]!, { ...w.ports[0]! }] } : w)) };
  };
  source.setState(bad(), 2);
  assert.equal(source.snapshotFor(node), good);
  assert.ok(source.reports()[0]!.errors.length > 0);
  source.setState(bad((i) => `10.9.0.${i}`), 3);
  assert.equal(source.snapshotFor(node), good, 'still rejected, still the last good one');
  assert.ok(source.reports()[0]!.errors.length > 0);
  assert.equal(logs.length, 2);
  source.setState(richState((i) => `10.9.0.${i}`), 4);
  assert.equal(source.snapshotFor(node)!.label, '4');
});
