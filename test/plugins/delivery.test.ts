// Plugin resources through a control plane to real `trellis proxy` processes
// over xDS: a TypeScript plugin applied with `apply` reaches the sidecar; a
// new version swapped in under load loses no request (the old plugin keeps
// its in-flight requests, the next ones get the new); a plugin that cannot
// load is NACKed and the previous one keeps serving; the API refuses a bad
// Plugin naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { server, service, startMesh } from '../policies/mesh-harness.ts';

const tagger = (version: number) => `
  definePlugin(() => ({
    onRequestHeaders(req) { if (req.headers.get('x-user') === 'mallory') return req.respond(403, 'blocked by v${version}\\n'); },
    onResponseHeaders(res) { res.headers.set('x-plugin-version', '${version}'); },
  }));`;

const plugin = (name: string, spec: object) => ({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Plugin', metadata: { name, namespace: 'default' }, spec });

test('a Plugin reaches the sidecar over xDS, is swapped under load without losing a request, and a bad one is NACKed', { timeout: 120_000 }, async (t) => {
  const mesh = await startMesh(t);
  const app = await server(t, (req, res) => {
    req.resume();
    // A little latency so that swaps land while requests are in flight.
    setTimeout(() => res.end('ok'), 5);
  });
  await mesh.register({ name: 'app-1', port: app, labels: { app: 'app' } });
  await mesh.apply(service('app', { app: 'app' }));
  let rev = await mesh.apply(plugin('tagger', { type: 'typescript', traffic: 'outbound', source: { inline: tagger(1) } }));
  const { outbound, nodeId } = await mesh.sidecar({ id: 'client-1' });
  await mesh.synced(nodeId, rev);

  // The listener is bound once the proxy has applied the config (the plugin's worker starts first).
  let first: Awaited<ReturnType<typeof mesh.request>> | undefined;
  for (const until = Date.now() + 15_000; Date.now() < until && first?.status !== 200;) {
    first = await mesh.request(outbound, 'app:9080').catch(() => undefined);
    if (first?.status !== 200) await sleep(100);
  }
  assert.equal(first?.status, 200, JSON.stringify(first));
  assert.equal(first!.headers['x-plugin-version'], '1');
  const blocked = await mesh.request(outbound, 'app:9080', { headers: { 'x-user': 'mallory' } });
  assert.equal(blocked.status, 403);
  assert.equal(blocked.body, 'blocked by v1\n');

  // Continuous load while v2 replaces v1.
  let running = true;
  let total = 0;
  const failures: string[] = [];
  const seen = { '1': 0, '2': 0 } as Record<string, number>;
  const loops = Array.from({ length: 4 }, async () => {
    while (running && total < 20_000) {
      total++;
      try {
        const r = await mesh.request(outbound, 'app:9080');
        if (r.status !== 200) failures.push(`${r.status} ${r.body}`);
        else seen[String(r.headers['x-plugin-version'])] = (seen[String(r.headers['x-plugin-version'])] ?? 0) + 1;
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  });
  await sleep(300);
  rev = await mesh.apply(plugin('tagger', { type: 'typescript', traffic: 'outbound', source: { inline: tagger(2) } }));
  await mesh.synced(nodeId, rev);
  const until = Date.now() + 10_000;
  const before2 = seen['2']!;
  while (Date.now() < until && seen['2']! < before2 + 50) await sleep(20);
  running = false;
  await Promise.all(loops);
  t.diagnostic(`${total} requests during the swap, by plugin version: ${JSON.stringify(seen)}`);
  assert.deepEqual(failures, [], `${failures.length} of ${total} requests failed during the swap`);
  assert.ok(seen['1']! > 0 && seen['2']! >= 50, JSON.stringify(seen));

  // A plugin that cannot load: the sidecar NACKs, v2 keeps serving.
  rev = await mesh.apply(plugin('tagger', { type: 'typescript', traffic: 'outbound', source: { inline: 'definePlugin(() => { throw new Error("broken on purpose"); });' } }));
  const deadline = Date.now() + 15_000;
  let status = '';
  let reason = '';
  while (Date.now() < deadline) {
    const body = (await (await fetch(`${mesh.cp.apiUrl}/api/v1/proxies`)).json()) as { proxies: { nodeId: string; status: string }[] };
    const p = body.proxies.find((x) => x.nodeId === nodeId);
    status = p?.status ?? '';
    reason = JSON.stringify(p);
    if (status === 'rejected') break;
    await sleep(50);
  }
  assert.equal(status, 'rejected', reason);
  assert.match(reason, /broken on purpose/);
  const still = await mesh.request(outbound, 'app:9080');
  assert.equal(still.status, 200);
  assert.equal(still.headers['x-plugin-version'], '2');

  // The API refuses a bad Plugin, naming the field.
  const res = await fetch(`${mesh.cp.apiUrl}/api/v1/apply`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(plugin('bad', { type: 'wasm', source: { url: 'https://plugins.example/f.wasm' } })),
  });
  assert.ok(res.status >= 400 && res.status < 500);
  assert.match(await res.text(), /spec\.source\.sha256/);
});
