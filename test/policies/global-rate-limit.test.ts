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

/** Offer `rate` req/s through each of the `outbound` listeners (the callers' sidecars) to limited:9080 for `ms`, open loop. */
async function offerThrough(mesh: Mesh, outbound: number[], rate: number, ms: number): Promise<{ ok: number; limited: number; other: number; byCaller: number[]; byApp: Record<string, number> }> {
  const out = { ok: 0, limited: 0, other: 0, byCaller: outbound.map(() => 0), byApp: {} as Record<string, number> };
  const inflight: Promise<void>[] = [];
  const start = performance.now();
  const total = Math.floor((rate * ms) / 1000) * outbound.length;
  let sent = 0;
  while (sent < total) {
    const due = Math.floor(((performance.now() - start) / 1000) * rate * outbound.length);
    while (sent < Math.min(due, total)) {
      const caller = sent % outbound.length;
      sent++;
      inflight.push(mesh.request(outbound[caller]!, 'limited:9080').then((r) => {
        if (r.status === 200) {
          out.ok++;
          out.byCaller[caller]!++;
          out.byApp[r.body] = (out.byApp[r.body] ?? 0) + 1;
        } else if (r.status === 429) out.limited++;
        else out.other++;
      }, () => void out.other++));
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(inflight);
  return out;
}

// Through callers' sidecars, so the callers' balancers choose the server
// sidecar: its 429s used to read as fast healthy answers to peak EWMA, which
// then sent nearly everything to the sidecar whose share was spent (10.2 of
// 20 req/s admitted; two callers 9 vs 192). A local rejection is now load to
// the balancer (balancer/load.ts), so the rate holds whatever the policy.
test('global rate limit behind callers\' balancers: 20 req/s admitted (±20%) of 50 offered, under peak EWMA and round robin; two callers share fairly', async (t) => {
  const mesh = await startMesh(t);
  const servers: number[] = [];
  for (let i = 1; i <= 2; i++) {
    const app = await server(t, (_req, res) => res.end(`limited-${i}`));
    const proxyPort = await freePort();
    await mesh.register({ name: `limited-${i}`, port: app, proxyPort, labels: { app: 'limited' } });
    servers.push(proxyPort);
  }
  await mesh.apply(service('limited', { app: 'limited' }));
  const rev = await mesh.apply(policy('RateLimitPolicy', 'limited', { targetRef: { kind: 'Service', name: 'limited' }, global: { requestsPerSecond: 20 } }));
  const sidecars = await Promise.all([1, 2].map((i) => mesh.sidecar({ id: `limited-${i}`, workload: `limited-${i}` })));
  const callers = await Promise.all([1, 2].map((i) => mesh.sidecar({ id: `caller-${i}` })));
  for (let round = 0; round < 2; round++) for (const s of [...sidecars, ...callers]) await mesh.synced(s.nodeId, rev);

  const SECONDS = 4;
  const expected = 20 * SECONDS;
  const check = (what: string, r: Awaited<ReturnType<typeof offerThrough>>): void => {
    t.diagnostic(`${what}: ${JSON.stringify(r)}`);
    assert.equal(r.other, 0, `${what}: ${JSON.stringify(r)}`);
    assert.ok(Math.abs(r.ok - expected) <= expected * 0.2, `${what}: admitted ${r.ok}, expected ${expected} ±20% (${JSON.stringify(r)})`);
  };
  // One caller, the default balancer (peak EWMA).
  check('peak EWMA', await offerThrough(mesh, [callers[0]!.outbound], 50, SECONDS * 1000));
  // Two callers, 25 req/s each: neither is starved.
  const two = await offerThrough(mesh, callers.map((c) => c.outbound), 25, SECONDS * 1000);
  check('peak EWMA, two callers', two);
  assert.ok(Math.min(...two.byCaller) >= 0.3 * two.ok, `each caller gets a fair part of the rate: ${JSON.stringify(two.byCaller)}`);
  // Round robin.
  const rr = await mesh.apply(policy('LoadBalancerPolicy', 'limited', { targetRef: { kind: 'Service', name: 'limited' }, type: 'roundRobin' }));
  await mesh.synced(callers[0]!.nodeId, rr);
  check('round robin', await offerThrough(mesh, [callers[0]!.outbound], 50, SECONDS * 1000));
});
