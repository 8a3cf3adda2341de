// A port the runner picked is taken by someone else before the sidecar
// binds it (the race every pick-then-bind has): the proxy exits with
// EXIT_PORT_IN_USE, its last log lines say which port, and the runner picks
// again, re-registers the workload with the new inbound port and starts a
// new sidecar. Bounded: three tries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { freePort, freePorts } from '../../src/runner/ports.ts';
import { runWorkload } from '../../src/runner/runner.ts';
import { APPS, apply, controlPlane, service, workloads } from './harness.ts';

async function holdPort(t: { after(fn: () => unknown): void }): Promise<number> {
  // Anything that connects (a peer sent to the stale endpoint) is refused.
  const s = net.createServer((c) => c.destroy());
  await new Promise<void>((r) => s.listen({ host: '127.0.0.1', port: 0 }, r));
  t.after(() => new Promise((r) => s.close(r)));
  return (s.address() as net.AddressInfo).port;
}

test('a picked port taken before the proxy binds it: picked again, re-registered, the sidecar serves', { timeout: 60_000 }, async (t) => {
  const cp = await controlPlane(t);
  await apply(cp, service('reviews', 9080, 'http'));
  const taken = await holdPort(t);
  // 1st pick: the inbound proxy port is taken; 2nd: the admin port; 3rd: all free.
  let picks = 0;
  const picker = async (n: number, host: string): Promise<number[]> => {
    picks++;
    const real = await freePorts(n, host);
    if (picks === 1) real[2] = taken;
    if (picks === 2) real[0] = taken;
    return real;
  };
  const appPort = await freePort();
  const events: { event: string; [k: string]: unknown }[] = [];
  let checked: { body: string; proxyPort: number | undefined } | undefined;
  const code = await runWorkload({
    service: 'reviews', namespace: 'default', workload: 'reviews-1',
    ports: [{ port: appPort, protocol: 'http' }],
    // Its own service as an upstream, on a local port the runner picks.
    upstreams: [{ service: 'reviews', port: 9080, localPort: 0 }],
    apiUrl: cp.apiUrl, xdsAddress: cp.xdsAddress,
    command: [process.execPath, path.join(APPS, 'http-server.ts'), String(appPort), 'reviews-v1'],
    drainMs: 200, readyTimeoutMs: 20_000, freePorts: picker,
    log: (event, fields) => events.push({ event, ...fields }),
    onStep: (step, detail) => {
      if (step !== 'app_started') return;
      void (async () => {
        const ready = events.find((e) => e.event === 'sidecar_ready') as unknown as { upstreams: Record<string, number> };
        const local = ready.upstreams['reviews:9080']!;
        let body = '';
        for (let i = 0; i < 100 && body === ''; i++) {
          const res = await fetch(`http://127.0.0.1:${local}/through`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
          if (res?.status === 200) body = await res.text();
          else await new Promise((r) => setTimeout(r, 50));
        }
        const w = (await workloads(cp)).find((x) => x.name === 'reviews-1');
        checked = { body, proxyPort: w?.ports[0]?.proxyPort };
        process.kill(detail as number, 'SIGTERM');
      })();
    },
  });
  assert.equal(code, 0, JSON.stringify(events));
  assert.equal(picks, 3);
  const collisions = events.filter((e) => e.event === 'sidecar_port_in_use');
  assert.deepEqual(collisions.map((e) => e.attempt), [2, 3]);
  // The proxy's own words name the port that was in use.
  for (const c of collisions) assert.match(String(c.error), new RegExp(`EADDRINUSE.*${taken}|${taken}.*EADDRINUSE|in use.*${taken}`));
  assert.ok(checked, 'the app ran');
  // Upstream local port -> the mesh -> the re-registered inbound port -> the app.
  assert.equal(checked.body, 'reviews-v1 /through');
  assert.notEqual(checked.proxyPort, taken);
  assert.equal((await workloads(cp)).some((w) => w.name === 'reviews-1'), false, 'deregistered');
});

test('a sidecar that exits before it is ready is reported with its last log lines', { timeout: 30_000 }, async (t) => {
  const cp = await controlPlane(t);
  const taken = await holdPort(t);
  const events: { event: string; [k: string]: unknown }[] = [];
  // Every pick collides: three tries, then a clear failure.
  const code = await runWorkload({
    service: 'reviews', namespace: 'default', workload: 'reviews-2',
    ports: [{ port: await freePort(), protocol: 'http' }], upstreams: [],
    apiUrl: cp.apiUrl, xdsAddress: cp.xdsAddress, command: [process.execPath, '-e', ''],
    drainMs: 200, readyTimeoutMs: 20_000,
    freePorts: async (n, host) => [taken, ...(await freePorts(n - 1, host))],
    log: (event, fields) => events.push({ event, ...fields }),
  });
  assert.equal(code, 1);
  assert.equal(events.filter((e) => e.event === 'sidecar_port_in_use').length, 2);
  const failed = events.find((e) => e.event === 'sidecar_not_ready');
  assert.equal(failed?.code, 'SIDECAR_PORT_IN_USE');
  assert.match(String(failed?.error), /exited before it was ready/);
  assert.match(String(failed?.error), /start_failed.*admin: cannot listen/);
  assert.equal((await workloads(cp)).some((w) => w.name === 'reviews-2'), false, 'deregistered');
});
