// Policies end to end: YAML-shaped resources applied through the control
// plane's API reach a real `trellis proxy` over xDS, and the proxy's
// behaviour against real (flaky, slow, dead) upstreams on loopback shows each
// policy: retries hide a flaky upstream from GETs but POSTs are not retried;
// a timeout gives 504 at the configured time; faults come at their rate; a
// circuit breaker sheds with fast 503s; outlier detection ejects a dead
// endpoint under load; an endpoint failing its health checks leaves the rotation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { freePort } from '../proxy/helpers.ts';
import { policy, server, service, startMesh, withinBinomial } from './mesh-harness.ts';

test('retry, timeout, fault, circuit breaker, health check and outlier detection policies through the control plane', async (t) => {
  const mesh = await startMesh(t);

  // Upstreams.
  let flakyCount = 0;
  let flakyPosts = 0;
  const flaky = await server(t, (req, res) => {
    flakyCount++;
    if (req.method === 'POST') flakyPosts++;
    req.resume();
    res.statusCode = flakyCount % 2 === 1 ? 503 : 200;
    res.end(String(res.statusCode));
  });
  const slowHeld: ServerResponse[] = [];
  const slow = await server(t, (_req, res) => void slowHeld.push(res));
  const chaos = await server(t, (_req, res) => res.end('ok'));
  const narrowHeld: ServerResponse[] = [];
  const narrow = await server(t, (_req, res) => void narrowHeld.push(res));
  const trioA = await server(t, (_req, res) => res.end('a'));
  const trioB = await server(t, (_req, res) => res.end('b'));
  const dead = await freePort(); // nothing listens here
  const well = await server(t, (_req, res) => res.end('well'));
  const sick = await server(t, (req, res) => {
    res.statusCode = req.url === '/healthz' ? 503 : 200; // serves, but fails its health check
    res.end('sick');
  });

  for (const [name, port] of [['flaky', flaky], ['slow', slow], ['chaos', chaos], ['narrow', narrow], ['trio-a', trioA], ['trio-b', trioB], ['trio-dead', dead], ['probed-well', well], ['probed-sick', sick]] as const) {
    await mesh.register({ name, port, labels: { app: name.replace(/-.*$/, '') } });
  }
  for (const name of ['flaky', 'slow', 'chaos', 'narrow', 'trio', 'probed']) await mesh.apply(service(name, { app: name }));
  await mesh.apply(policy('RetryPolicy', 'flaky-retries', { targetRef: { kind: 'Service', name: 'flaky' }, attempts: 2, retryOn: ['5xx'], backoff: { baseInterval: '5ms' } }));
  await mesh.apply(policy('TimeoutPolicy', 'slow-timeout', { targetRef: { kind: 'Service', name: 'slow' }, request: '400ms' }));
  await mesh.apply(policy('FaultInjectionPolicy', 'chaos', { targetRef: { kind: 'Service', name: 'chaos' }, abort: { httpStatus: 503, percent: 25 } }));
  await mesh.apply(policy('CircuitBreakerPolicy', 'narrow', { targetRef: { kind: 'Service', name: 'narrow' }, maxRequests: 2 }));
  await mesh.apply(policy('HealthCheckPolicy', 'probed', {
    targetRef: { kind: 'Service', name: 'probed' }, http: { path: '/healthz' }, interval: '200ms', timeout: '150ms', unhealthyThreshold: 1, healthyThreshold: 1,
  }));
  const rev = await mesh.apply(policy('OutlierDetectionPolicy', 'trio', {
    targetRef: { kind: 'Service', name: 'trio' }, consecutiveGatewayErrors: 2, interval: '10s', baseEjectionTime: '60s', maxEjectionPercent: 50,
  }));

  const { outbound, nodeId } = await mesh.sidecar({ id: 'caller-1' });

  // Meanwhile, through the same API: a bad policy is refused naming the field,
  // and a policy whose target does not exist says so in its status.
  const bad = await fetch(`${mesh.cp.apiUrl}/api/v1/apply`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify(policy('RetryPolicy', 'bad', { targetRef: { kind: 'Service', name: 'flaky' }, attempts: 2, retryOn: ['sometimes'] })),
  });
  assert.equal(bad.status, 422);
  assert.match(await bad.text(), /RetryPolicy default\/bad: spec\.retryOn\[0\]/);
  await mesh.apply(policy('RetryPolicy', 'orphan', { targetRef: { kind: 'Service', name: 'nowhere' }, attempts: 1 }));
  const orphan = await (await fetch(`${mesh.cp.apiUrl}/api/v1/resources/RetryPolicy/default/orphan`)).json();
  assert.match(JSON.stringify(orphan), /TargetNotFound/);
  await mesh.synced(nodeId, rev);

  // Retry: every GET succeeds although every other upstream answer is a 503.
  for (let i = 0; i < 30; i++) {
    const r = await mesh.request(outbound, 'flaky:9080');
    assert.equal(r.status, 200, `GET ${i}: ${r.status} ${r.body}`);
  }
  assert.ok(flakyCount > 30, 'some GETs were retried');
  // ...and a POST is not retried: the upstream sees each once, half fail.
  let postFailures = 0;
  for (let i = 0; i < 20; i++) if ((await mesh.request(outbound, 'flaky:9080', { method: 'POST' })).status === 503) postFailures++;
  assert.equal(flakyPosts, 20, 'each POST reached the upstream exactly once');
  assert.equal(postFailures, 10, 'POSTs see the upstream failures');

  // Timeout: 504 at the configured 400 ms.
  const to = await mesh.request(outbound, 'slow:9080');
  assert.equal(to.status, 504);
  assert.ok(to.ms >= 350 && to.ms < 1500, `timed out after ${to.ms.toFixed(0)} ms`);
  for (const r of slowHeld) r.destroy();

  // Fault: 25% aborted with 503, marked as synthetic.
  const N = 400;
  let aborted = 0;
  for (let batch = 0; batch < N / 20; batch++) {
    const rs = await Promise.all(Array.from({ length: 20 }, () => mesh.request(outbound, 'chaos:9080')));
    for (const r of rs) {
      if (r.status === 503) {
        assert.equal(r.headers['x-trellis-proxy-error'], 'FAULT_ABORT');
        aborted++;
      } else assert.equal(r.status, 200);
    }
  }
  assert.ok(withinBinomial(aborted, N, 0.25), `aborted ${aborted} of ${N}, expected ~25%`);

  // Circuit breaker: with 2 requests held upstream, 8 more get fast 503s.
  const pending = Array.from({ length: 2 }, () => mesh.request(outbound, 'narrow:9080'));
  for (let i = 0; i < 200 && narrowHeld.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(narrowHeld.length, 2);
  const shed = await Promise.all(Array.from({ length: 8 }, () => mesh.request(outbound, 'narrow:9080')));
  for (const r of shed) {
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-trellis-proxy-error'], 'OVERFLOW');
    assert.ok(r.ms < 500, `shed after ${r.ms.toFixed(0)} ms`);
  }
  for (const r of narrowHeld) r.end('late');
  for (const r of await Promise.all(pending)) assert.equal(r.status, 200);

  // Health checks: the endpoint failing /healthz leaves the rotation.
  let streak = 0;
  for (let i = 0; i < 400 && streak < 50; i++) {
    const r = await mesh.request(outbound, 'probed:9080');
    streak = r.body === 'well' ? streak + 1 : 0;
    if (r.body === 'sick' && i > 0) await new Promise((res) => setTimeout(res, 20));
  }
  assert.equal(streak, 50, 'the sick endpoint was taken out by its failed health checks');
  for (let i = 0; i < 50; i++) assert.equal((await mesh.request(outbound, 'probed:9080')).body, 'well');

  // Outlier detection: one of three endpoints is dead; under load it is
  // ejected after its first failures and at least 99.9% of requests succeed.
  const total = 4000;
  let sent = 0;
  let failed = 0;
  let lastFailure = -1;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (sent < total) {
      const i = sent++;
      const r = await mesh.request(outbound, 'trio:9080').catch(() => undefined);
      if (r?.status !== 200) {
        failed++;
        lastFailure = i;
      }
    }
  }));
  assert.ok(failed >= 1, 'the dead endpoint was in rotation (its connect failures were seen)');
  assert.ok(failed <= total * 0.001, `${failed} of ${total} failed`);
  assert.ok(lastFailure < 200, `failures stopped early (last at request ${lastFailure})`);
});
