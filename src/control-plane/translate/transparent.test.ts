import { test } from 'node:test';
import assert from 'node:assert/strict';
import { translate } from './translate.ts';
import type { MeshState, ProxyNode } from './model.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const state: MeshState = {
  services: [
    { metadata: { name: 'reviews' }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080, protocol: 'http' }] } },
    { metadata: { name: 'db' }, spec: { selector: { app: 'db' }, ports: [{ port: 5432, protocol: 'tcp' }] } },
    { metadata: { name: 'cache' }, spec: { selector: { app: 'cache' }, ports: [{ port: 6379, protocol: 'tcp' }] } },
  ],
  httpRoutes: [],
  grpcRoutes: [],
  tcpRoutes: [],
  workloads: [{ name: 'reviews-1', namespace: 'default', address: '198.18.0.2', ports: [{ port: 9080, protocol: 'http', name: 'http' }, { port: 7000, protocol: 'tcp' }], labels: { app: 'reviews' } }],
  vips: new Map([['default/reviews', '240.240.0.1'], ['default/db', '240.240.0.2']]),
};

const node: ProxyNode = { id: 'default/reviews-1', kind: 'sidecar', namespace: 'default', workload: 'reviews-1', capture: 'transparent', outbound: { address: '127.0.0.1', port: 15001 }, inboundPort: 15006 };

test('transparent capture: original-destination listeners with chains by port and VIP', () => {
  const out = translate(state, node);
  const ob = (out.listeners as Json[]).find((l) => l.name === 'outbound')!;
  assert.equal(ob.useOriginalDst, true);
  assert.deepEqual(ob.filterChains.map((c: Json) => [c.name, c.filterChainMatch]), [
    ['tcp|db.default.svc:5432', { destinationPort: 5432, prefixRanges: [{ addressPrefix: '240.240.0.2', prefixLen: 32 }] }],
    ['http|9080', { destinationPort: 9080 }],
  ]);
  assert.equal(ob.filterChains[1].filters[0].typedConfig.rds.routeConfigName, 'outbound');
  assert.ok(out.warnings.some((w) => /cache.*no VIP/.test(w.message)));
  const ib = (out.listeners as Json[]).find((l) => l.name === 'inbound')!;
  assert.equal(ib.useOriginalDst, true);
  assert.equal(ib.address.socketAddress.portValue, 15006);
  assert.deepEqual(ib.filterChains.map((c: Json) => c.filterChainMatch.destinationPort), [9080, 7000]);
  assert.ok((out.clusters as Json[]).some((c) => c.name === 'inbound|7000' && c.loadAssignment.endpoints[0].lbEndpoints[0].endpoint.address.socketAddress.portValue === 7000));
  // No explicit-mode per-port inbound listeners.
  assert.equal((out.listeners as Json[]).some((l) => l.name === 'inbound|9080'), false);
});
