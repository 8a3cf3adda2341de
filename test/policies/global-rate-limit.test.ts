// A global RateLimitPolicy through the control plane: three real sidecars of
// one service each enforce rate / 3 (the control plane counts the service's
// connected sidecars from xDS connect/disconnect events), so together they
// admit the configured rate within 10%; when one sidecar goes away the other
// two are given rate / 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../proxy/helpers.ts';
import { policy, server, service, startMesh, type Mesh } from './mesh-harness.ts';

const RATE = 60;

/** Offer `perProxy` req/s to each inbound port for `ms`; count admitted (200) and limited (429). */
async function offer(mesh: Mesh, ports: number[], perProxy: number, ms: number): Promise<{ ok: number; limited: number; other: number }> {
  const out = { ok: 0, limited: 0, other: 0 };
  const inflight: Promise<void>[] = [];
  const start = performance.now();
  let sent = 0;
  const total = Math.floor((perProxy * ms) / 1000) * ports.length;
  while (sent < total) {
    // Paced by the clock, not by timers' drift: catch up when the loop was late.
    const due = Math.floor(((performance.now() - start) / 1000) * perProxy * ports.length);
    while (sent < Math.min(due, total)) {
      const port = ports[sent % ports.length]!;
      sent++;
      inflight.push(mesh.request(port, 'limited:9080').then((r) => {
        if (r.status === 200) out.ok++;
        else if (r.status === 429) out.limited++;
        else out.other++;
      }, () => void out.other++));
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(inflight);
  return out;
}

test('global rate limit: three sidecars of a service share the configured rate within 10%, rebalanced when one leaves', async (t) => {
  const mesh = await startMesh(t);
  const app = await server(t, (_req, res) => res.end('ok'));
  const inbound: number[] = [];
  for (let i = 1; i <= 3; i++) {
    const proxyPort = await freePort();
    inbound.push(proxyPort);
    await mesh.register({ name: `limited-${i}`, port: app, proxyPort, labels: { app: 'limited' } });
  }
  await mesh.apply(service('limited', { app: 'limited' }));
  const rev = await mesh.apply(policy('RateLimitPolicy', 'limited', { targetRef: { kind: 'Service', name: 'limited' }, global: { requestsPerSecond: RATE } }));
  const sidecars = await Promise.all([1, 2, 3].map((i) => mesh.sidecar({ id: `limited-${i}`, workload: `limited-${i}` })));
  // All three connected and ACKed the snapshot computed after the last connect.
  for (let round = 0; round < 2; round++) for (const s of sidecars) await mesh.synced(s.nodeId, rev);
  const limits = (await (await fetch(`${mesh.cp.apiUrl}/api/v1/proxies`)).json()) as { proxies: unknown[] };
  assert.equal(limits.proxies.length, 3);

  // 90 req/s offered (30 per sidecar) for 4 s against 60 req/s: 240 admitted (+ the small initial burst).
  const a = await offer(mesh, inbound, 30, 4000);
  assert.equal(a.other, 0, JSON.stringify(a));
  const expectA = RATE * 4;
  assert.ok(Math.abs(a.ok - expectA) <= expectA * 0.1, `admitted ${a.ok}, expected ${expectA} ±10% (${JSON.stringify(a)})`);
  assert.ok(a.limited > 0);

  // One sidecar leaves: the other two get 30 req/s each.
  await sidecars[2]!.kill();
  const until = Date.now() + 10_000;
  for (;;) {
    const ps = ((await (await fetch(`${mesh.cp.apiUrl}/api/v1/proxies`)).json()) as { proxies: { nodeId: string; status: string }[] }).proxies;
    if (ps.length === 2 && ps.every((p) => p.status === 'synced')) break;
    assert.ok(Date.now() < until, `two synced proxies expected: ${JSON.stringify(ps)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const b = await offer(mesh, inbound.slice(0, 2), 45, 3000);
  assert.equal(b.other, 0, JSON.stringify(b));
  const expectB = RATE * 3;
  assert.ok(Math.abs(b.ok - expectB) <= expectB * 0.1, `admitted ${b.ok}, expected ${expectB} ±10% after rebalancing (${JSON.stringify(b)})`);
});
