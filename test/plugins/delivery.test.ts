// Plugin resources through a control plane to real `trellis proxy` processes
// over xDS: a TypeScript plugin applied with `apply` reaches the sidecar; a
// new version swapped in under load loses no request (the old plugin keeps
// its in-flight requests, the next ones get the new); a plugin that cannot
// load is NACKed and the previous one keeps serving; code from a URL whose
// content does not match its sha256 is NACKed too (the proxy fetches it
// before it ACKs), and a correct URL is ACKed and serves; the API refuses a
// bad Plugin naming the field.
import { test } from 'node:test';
import { createHash } from 'node:crypto';
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

  /** Waits until the control plane shows the proxy as rejected with a reason matching `why`. */
  const rejected = async (why: RegExp): Promise<void> => {
    const deadline = Date.now() + 20_000;
    let status = '';
    let reason = '';
    while (Date.now() < deadline) {
      const body = (await (await fetch(`${mesh.cp.apiUrl}/api/v1/proxies`)).json()) as { proxies: { nodeId: string; status: string }[] };
      const p = body.proxies.find((x) => x.nodeId === nodeId);
      status = p?.status ?? '';
      reason = JSON.stringify(p);
      if (status === 'rejected' && why.test(reason)) break;
      await sleep(50);
    }
    assert.equal(status, 'rejected', reason);
    assert.match(reason, why);
  };

  // A plugin that cannot load: the sidecar NACKs, v2 keeps serving.
  rev = await mesh.apply(plugin('tagger', { type: 'typescript', traffic: 'outbound', source: { inline: 'definePlugin(() => { throw new Error("broken on purpose"); });' } }));
  await rejected(/broken on purpose/);
  const still = await mesh.request(outbound, 'app:9080');
  assert.equal(still.status, 200);
  assert.equal(still.headers['x-plugin-version'], '2');

  // Code from a URL: fetched and checked against its sha256 before the ACK.
  const v3 = tagger(3);
  let fetches = 0;
  const codeServer = await server(t, (req, res) => {
    req.resume();
    fetches++;
    res.end(req.url === '/tagger.ts' ? v3 : 'not found');
  });
  const url = `http://127.0.0.1:${codeServer}/tagger.ts`;
  const sha = createHash('sha256').update(v3).digest('hex');
  rev = await mesh.apply(plugin('tagger', { type: 'typescript', traffic: 'outbound', source: { url, sha256: createHash('sha256').update('something else').digest('hex') } }));
  await rejected(/tagger\.ts has sha256 [0-9a-f]{64}, expected/);
  const stillV2 = await mesh.request(outbound, 'app:9080');
  assert.equal(stillV2.status, 200);
  assert.equal(stillV2.headers['x-plugin-version'], '2');

  fetches = 0;
  rev = await mesh.apply(plugin('tagger', { type: 'typescript', traffic: 'outbound', source: { url, sha256: sha } }));
  await mesh.synced(nodeId, rev);
  let v3res: Awaited<ReturnType<typeof mesh.request>> | undefined;
  for (const until = Date.now() + 10_000; Date.now() < until && v3res?.headers['x-plugin-version'] !== '3';) {
    v3res = await mesh.request(outbound, 'app:9080');
    if (v3res.headers['x-plugin-version'] !== '3') await sleep(50);
  }
  assert.equal(v3res?.status, 200);
  assert.equal(v3res?.headers['x-plugin-version'], '3');
  assert.equal((await mesh.request(outbound, 'app:9080', { headers: { 'x-user': 'mallory' } })).body, 'blocked by v3\n');
  assert.equal(fetches, 1, 'the code is fetched once: the apply step uses what the check fetched');

  // The API refuses a bad Plugin, naming the field.
  const res = await fetch(`${mesh.cp.apiUrl}/api/v1/apply`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(plugin('bad', { type: 'wasm', source: { url: 'https://plugins.example/f.wasm' } })),
  });
  assert.ok(res.status >= 400 && res.status < 500);
  assert.match(await res.text(), /spec\.source\.sha256/);
});
