// The control plane end to end, with a real `trellis proxy` process:
// resources applied through the HTTP API and workloads registered through the
// registry reach the proxy over xDS; a route change moves traffic within a
// second; an invalid resource is refused with a precise error while the old
// config keeps serving; the control plane is killed and restarted under load
// with zero failed requests through the proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.ts';
import { freePort } from '../proxy/helpers.ts';
import { backend, call, get, reviewsSplit, service, xdsSidecar, type ApiAnswer } from './fixtures.ts';

const api = (cp: ControlPlane, method: string, p: string, body?: unknown): Promise<ApiAnswer> => call(cp.apiUrl, method, p, body);

test('apply -> xDS -> proxy: routes change within a second, bad input is refused, the data plane survives a control-plane restart', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-cp-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const xdsPort = await freePort();
  let cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort, log: () => {} });
  t.after(() => cp.close());

  const v1 = await backend(t, 'v1');
  const v2 = await backend(t, 'v2');
  for (const s of [service('reviews', { app: 'reviews' }), service('reviews-v1', { app: 'reviews', version: 'v1' }), service('reviews-v2', { app: 'reviews', version: 'v2' })]) {
    const r = await api(cp, 'POST', '/api/v1/apply', s);
    assert.ok(r.status < 300, JSON.stringify(r.json));
  }
  for (const [name, port, version] of [['reviews-1', v1, 'v1'], ['reviews-2', v2, 'v2']] as const) {
    const r = await api(cp, 'POST', '/api/v1/registry/workloads', {
      name, namespace: 'default', address: '127.0.0.1', ports: [{ name: 'http', port, protocol: 'http' }], labels: { app: 'reviews', version }, ttlSeconds: 60,
    });
    assert.equal(r.status, 201, JSON.stringify(r.json));
  }

  // A sidecar taking its config from the control plane.
  const { outbound, stderr } = await xdsSidecar(t, `127.0.0.1:${xdsPort}`);

  // The proxy comes up with the mesh: both versions answer for `reviews`.
  const seen = new Set<string>();
  for (let i = 0; i < 200 && seen.size < 2; i++) {
    try {
      const r = await get(outbound, 'reviews:9080');
      if (r.status === 200) seen.add(r.body);
    } catch {
      await sleep(50);
    }
  }
  assert.deepEqual([...seen].sort(), ['v1', 'v2'], `proxy never served both versions; stderr: ${stderr()}`);

  // A route sending everything to v2 takes effect within a second.
  const applied = Date.now();
  assert.ok((await api(cp, 'POST', '/api/v1/apply', reviewsSplit([0, 100]))).status < 300);
  let streak = 0;
  let switchedAfter = -1;
  for (let i = 0; i < 400 && streak < 20; i++) {
    const r = await get(outbound, 'reviews:9080');
    streak = r.body === 'v2' ? streak + 1 : 0;
    if (streak === 1) switchedAfter = Date.now() - applied;
  }
  assert.equal(streak, 20, 'traffic moved to v2');
  assert.ok(switchedAfter < 1000, `route change took ${switchedAfter} ms`);

  // An invalid resource: a precise error, and the old config keeps serving.
  const bad = reviewsSplit([0, 100]);
  (bad.spec.rules[0]!.backendRefs[1] as { weight: number }).weight = -5;
  const rej = await api(cp, 'POST', '/api/v1/apply', bad);
  assert.equal(rej.status, 422);
  assert.match(JSON.stringify(rej.json), /HTTPRoute default\/reviews: spec\.rules\[0\]\.backendRefs\[1\]\.weight: must be >= 0/);
  for (let i = 0; i < 10; i++) assert.equal((await get(outbound, 'reviews:9080')).body, 'v2');

  // Kill the control plane under load: every request still succeeds.
  let failures = 0;
  let total = 0;
  let loading = true;
  const load = (async () => {
    while (loading && total < 5000) {
      total++;
      try {
        const r = await get(outbound, 'reviews:9080');
        // Either version is a success: the route changes back to v1 mid-load.
        if (r.status !== 200 || (r.body !== 'v1' && r.body !== 'v2')) failures++;
      } catch {
        failures++;
      }
    }
  })();
  await sleep(300);
  await cp.close();
  await sleep(700);
  cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort, log: () => {} });
  // The restarted control plane has the same config (durable store): a change still reaches the proxy.
  assert.ok((await api(cp, 'POST', '/api/v1/apply', reviewsSplit([100, 0]))).status < 300);
  let backToV1 = false;
  const until = Date.now() + 10_000;
  while (!backToV1 && Date.now() < until) {
    await sleep(100);
    const proxies = (await api(cp, 'GET', '/api/v1/proxies')).json.proxies as { nodeId: string; status: string }[];
    backToV1 = proxies.some((p) => p.nodeId === 'default/productpage-1' && p.status === 'synced');
  }
  loading = false;
  await load;
  assert.ok(total > 50, `load ran (${total} requests)`);
  assert.equal(failures, 0, `${failures} of ${total} requests failed across the control-plane restart`);
  assert.ok(backToV1, 'the proxy reconnected and synced with the restarted control plane');
  let v1seen = false;
  for (let i = 0; i < 50 && !v1seen; i++) v1seen = (await get(outbound, 'reviews:9080')).body === 'v1';
  assert.ok(v1seen, 'the change made after the restart reached the proxy');
});
