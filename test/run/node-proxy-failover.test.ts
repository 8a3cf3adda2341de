// The per-node fallback proxy: kill a workload's sidecar (SIGKILL) while
// its app sends a bounded load (2000 requests) through HTTP_PROXY; the port
// guard sends the traffic to the node proxy while the sidecar restarts, and
// back to the sidecar once it is ready again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { freePort } from '../../src/runner/ports.ts';
import { runWorkload } from '../../src/runner/runner.ts';
import { startNodeProxy } from '../../src/runner/node-proxy.ts';
import type { PortGuard } from '../../src/runner/port-guard.ts';
import type { Sidecar } from '../../src/runner/sidecar.ts';
import { apply, controlPlane, service, waitFor } from './harness.ts';

const agent = new http.Agent({ keepAlive: false });

function get(proxyPort: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, path: 'http://reviews:9080/x', headers: { host: 'reviews:9080' }, agent, timeout: 5000 }, (res) => {
      res.resume().on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
}

test('sidecar killed under load: traffic fails over to the node proxy and comes back', async (t) => {
  const cp = await controlPlane(t);
  await apply(cp, service('reviews', 9080, 'http'));
  await apply(cp, service('productpage', 9080, 'http'));
  // The upstream: a plain registered backend (no sidecar needed here).
  const backend = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => backend.close(() => r())));
  const reg = await fetch(`${cp.apiUrl}/api/v1/registry/workloads`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'reviews-1', namespace: 'default', address: '127.0.0.1', ports: [{ name: 'http', port: (backend.address() as { port: number }).port, protocol: 'http' }], labels: { app: 'reviews' }, ttlSeconds: 60 }),
  });
  assert.equal(reg.status, 201);

  const np = await startNodeProxy({ xdsAddress: cp.xdsAddress, outboundPort: await freePort(), adminPort: await freePort(), drainMs: 200 });
  assert.ok(np.ok, !np.ok ? np.message : '');
  if (!np.ok) return;
  t.after(() => np.proxy.stop());

  let running: { sidecar: Sidecar; guard: PortGuard | undefined } | undefined;
  let appPid: number | undefined;
  const done = runWorkload({
    service: 'productpage',
    namespace: 'default',
    workload: 'productpage-f1',
    ports: [{ port: await freePort(), protocol: 'http' }],
    upstreams: [],
    apiUrl: cp.apiUrl,
    xdsAddress: cp.xdsAddress,
    command: [process.execPath, '-e', 'setInterval(() => {}, 1000); process.on("SIGTERM", () => process.exit(0))'],
    nodeProxy: { host: '127.0.0.1', port: np.proxy.outboundPort },
    drainMs: 200,
    onRunning: (r) => (running = r),
    onStep: (step, detail) => {
      if (step === 'app_started') appPid = detail as number;
    },
  });
  t.after(async () => {
    if (appPid) process.kill(appPid, 'SIGTERM');
    await done;
  });
  await waitFor('app started', () => appPid);
  const { sidecar, guard } = running!;
  assert.ok(guard);

  // Bounded load: 2000 requests, 4 at a time; the sidecar is SIGKILLed after 400.
  const total = 2000;
  let next = 0;
  let failed = 0;
  const codes: number[] = [];
  let killed = false;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      if (i === 400 && !killed) {
        killed = true;
        sidecar.crash('SIGKILL');
      }
      const code = await get(guard.port);
      if (code !== 200) {
        failed++;
        codes.push(code);
      }
    }
  };
  const t0 = Date.now();
  await Promise.all([worker(), worker(), worker(), worker()]);
  const s = guard.stats();
  t.diagnostic(`failed ${failed}/${total} ${JSON.stringify(codes)}, guard ${JSON.stringify(s)}, ${Date.now() - t0} ms`);
  assert.ok(failed <= total * 0.001, `${failed} of ${total} requests failed (stats ${JSON.stringify(s)})`);
  assert.ok(s.fallback > 0, `some traffic went to the node proxy: ${JSON.stringify(s)}`);
  assert.ok(Date.now() - t0 < 60_000);

  // The sidecar comes back (restart with backoff) and traffic returns to it.
  assert.equal((await sidecar.waitReady(20_000)).ok, true);
  await waitFor('guard sees the sidecar up', () => (guard.stats().primaryUp ? true : undefined));
  const before = guard.stats();
  for (let i = 0; i < 50; i++) assert.equal(await get(guard.port), 200);
  const after = guard.stats();
  assert.equal(after.primary - before.primary, 50, `traffic back on the sidecar: ${JSON.stringify(after)}`);
  assert.ok(sidecar.restarts >= 1);

  process.kill(appPid!, 'SIGTERM');
  assert.equal(await done, 0);
  appPid = undefined;
});
