// Locality through the control plane: a LoadBalancerPolicy with preferZone
// keeps a zone-a caller in zone a; when zone a's endpoints die, outlier
// detection (and a retry on connect failure) moves its traffic to zone b.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { policy, server, service, startMesh } from './mesh-harness.ts';

test('locality: prefer the caller\'s zone; fail over to the other zone when the local endpoints die', async (t) => {
  const mesh = await startMesh(t);
  const zoneA: http.Server[] = [];
  const ports: number[] = [];
  for (const name of ['a1', 'a2']) {
    const s = http.createServer((_req, res) => res.end(name));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    zoneA.push(s);
    ports.push((s.address() as { port: number }).port);
  }
  t.after(() => Promise.all(zoneA.map((s) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); }))));
  const b1 = await server(t, (_req, res) => res.end('b1'));
  await mesh.register({ name: 'geo-a1', port: ports[0]!, labels: { app: 'geo' }, zone: 'zone-a' });
  await mesh.register({ name: 'geo-a2', port: ports[1]!, labels: { app: 'geo' }, zone: 'zone-a' });
  await mesh.register({ name: 'geo-b1', port: b1, labels: { app: 'geo' }, zone: 'zone-b' });
  await mesh.apply(service('geo', { app: 'geo' }));
  await mesh.apply(policy('LoadBalancerPolicy', 'geo', { targetRef: { kind: 'Service', name: 'geo' }, type: 'roundRobin', locality: { preferZone: true } }));
  await mesh.apply(policy('OutlierDetectionPolicy', 'geo', { targetRef: { kind: 'Service', name: 'geo' }, consecutiveGatewayErrors: 1, baseEjectionTime: '60s', maxEjectionPercent: 100 }));
  const rev = await mesh.apply(policy('RetryPolicy', 'geo', { targetRef: { kind: 'Service', name: 'geo' }, attempts: 2, retryOn: ['connect-failure', 'reset'] }));
  const { outbound, nodeId } = await mesh.sidecar({ id: 'caller-a', zone: 'zone-a' });
  await mesh.synced(nodeId, rev);

  const seen = new Map<string, number>();
  for (let i = 0; i < 100; i++) {
    const r = await mesh.request(outbound, 'geo:9080');
    assert.equal(r.status, 200);
    seen.set(r.body, (seen.get(r.body) ?? 0) + 1);
  }
  assert.equal(seen.get('b1'), undefined, `zone a keeps its traffic while healthy: ${JSON.stringify([...seen])}`);
  assert.ok((seen.get('a1') ?? 0) > 20 && (seen.get('a2') ?? 0) > 20, `both zone-a endpoints serve: ${JSON.stringify([...seen])}`);

  // Zone a dies (listeners closed, keep-alive connections cut).
  await Promise.all(zoneA.map((s) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); })));
  const after = new Map<string, number>();
  let failed = 0;
  for (let i = 0; i < 100; i++) {
    const r = await mesh.request(outbound, 'geo:9080').catch(() => undefined);
    if (r?.status !== 200) failed++;
    else after.set(r.body, (after.get(r.body) ?? 0) + 1);
  }
  assert.equal(after.get('b1'), 100 - failed, `all traffic fails over to zone b: ${JSON.stringify([...after])}`);
  assert.ok(failed <= 2, `${failed} requests failed during failover`);
});
