// On-demand discovery end to end: the control plane's on-demand view (the
// outbound route table holds only egress hosts), a Trellis proxy fed by delta
// xDS, and a first request to a service the proxy has never seen: held while
// the proxy subscribes to that host's RouteConfiguration (and its cluster's
// endpoints), then served — no error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeshSnapshotSource } from '../../src/control-plane/snapshots.ts';
import type { MeshState } from '../../src/control-plane/translate/model.ts';
import { createXdsServer } from '../../src/xds/server.ts';
import { startXdsSource } from '../../src/proxy/xds-source.ts';
import { startProxy } from '../../src/proxy/proxy.ts';
import type { ProxyConfig } from '../../src/proxy/config/types.ts';
import { httpBackend, portOf, request } from '../proxy/helpers.ts';

function meshState(backendPort: number): MeshState {
  const svc = (name: string) => ({ metadata: { name, namespace: 'default' }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 8080, protocol: 'http' as const, targetPort: backendPort }] } });
  return {
    services: [svc('echo'), svc('other')],
    httpRoutes: [],
    grpcRoutes: [],
    tcpRoutes: [],
    workloads: [
      { name: 'echo-1', namespace: 'default', address: '127.0.0.1', labels: { app: 'echo' }, ports: [{ port: backendPort, protocol: 'http' }] },
      { name: 'other-1', namespace: 'default', address: '127.0.0.1', labels: { app: 'other' }, ports: [{ port: backendPort, protocol: 'http' }] },
      { name: 'client-1', namespace: 'default', address: '127.0.0.1', labels: { app: 'client' }, ports: [] },
    ],
    vips: new Map(),
  };
}

const vhostDomains = (c: ProxyConfig): string[] => (c.routeConfigs.get('outbound')?.virtualHosts ?? []).flatMap((v) => [...v.domains]);

test('a proxy with no declared dependencies serves its first request to a never-seen service without an error', async (t) => {
  const backend = await httpBackend(t, 'echo');
  const mesh = new MeshSnapshotSource();
  mesh.setState(meshState(backend.port), 1);
  const server = createXdsServer({ source: mesh });
  const xdsPort = await server.listen('127.0.0.1', 0);
  t.after(() => server.close());

  const node = { id: 'client-1', cluster: 'client', metadata: { trellis: { kind: 'sidecar', namespace: 'default', workload: 'client-1', outbound: { address: '127.0.0.1', port: 0 } } } };
  const xds = startXdsSource({ serverUri: `127.0.0.1:${xdsPort}`, node, backoff: { initialMs: 20, maxMs: 200 }, onDemand: { timeoutMs: 20_000 } });
  t.after(() => xds.close());
  const first = await new Promise<ProxyConfig>((resolve) => xds.onConfig(resolve));
  // Scoped: no mesh host in the route table, no endpoints held yet.
  assert.deepEqual(vhostDomains(first).filter((d) => d.includes('echo') || d.includes('other')), []);
  assert.equal(first.endpoints.size, 0);

  const started = await startProxy({ config: first, node: { id: node.id, cluster: node.cluster, locality: { region: '', zone: '', subZone: '' }, metadata: node.metadata }, admin: false, onDemand: xds.resolveHost });
  assert.ok(started.ok, !started.ok ? started.errors.join('; ') : '');
  const proxy = started.proxy;
  t.after(() => proxy.stop({ drainMs: 0 }));
  xds.onConfig((c) => void proxy.applyConfig(c));

  const port = portOf(proxy, 'outbound');

  const res = await request(port, { path: '/hello', headers: { host: 'echo.default.svc:8080' }, agent: false });
  assert.equal(res.status, 200, res.body);
  assert.equal(res.body, 'echo /hello');

  // The proxy now holds echo and nothing else of the mesh.
  const now = xds.current()!;
  assert.ok(vhostDomains(now).includes('echo.default.svc:8080'));
  assert.deepEqual(vhostDomains(now).filter((d) => d.includes('other')), []);
  assert.deepEqual([...now.endpoints.keys()].filter((c) => c.includes('other')), []);
  const rds = server.status()[0]!.perType.RouteConfiguration!;
  assert.ok(Array.isArray(rds.subscribed) && rds.subscribed.includes('outbound/echo.default.svc:8080'), JSON.stringify(rds.subscribed));

  // A host that does not exist is answered at once (the server says so), by the egress deny.
  const t0 = Date.now();
  const denied = await request(port, { path: '/', headers: { host: 'nope.default.svc:8080' }, agent: false });
  assert.equal(denied.status, 403);
  assert.ok(Date.now() - t0 < 15_000, 'not held until the deadline');
  // Asked once: the second request to it is not held again.
  assert.equal((await request(port, { path: '/', headers: { host: 'nope.default.svc:8080' }, agent: false })).status, 403);
});
