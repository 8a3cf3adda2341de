// Traffic shifting through the control plane while traffic flows: canary
// weights 90/10 -> 50/50 -> 0/100 with no failed request and each step's
// split within binomial bounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { server, service, startMesh, withinBinomial } from './mesh-harness.ts';

const route = (v1: number, v2: number) => ({
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'reviews', namespace: 'default' },
  spec: {
    parentRefs: [{ group: '', kind: 'Service', name: 'reviews', port: 9080 }],
    rules: [{ backendRefs: [{ name: 'reviews-v1', port: 9080, weight: v1 }, { name: 'reviews-v2', port: 9080, weight: v2 }] }],
  },
});

test('canary 90/10 -> 50/50 -> 0/100 under load: no failed request, each split within bounds', async (t) => {
  const mesh = await startMesh(t);
  const v1 = await server(t, (_req, res) => res.end('v1'));
  const v2 = await server(t, (_req, res) => res.end('v2'));
  await mesh.register({ name: 'reviews-1', port: v1, labels: { app: 'reviews', version: 'v1' } });
  await mesh.register({ name: 'reviews-2', port: v2, labels: { app: 'reviews', version: 'v2' } });
  await mesh.apply(service('reviews', { app: 'reviews' }));
  await mesh.apply(service('reviews-v1', { app: 'reviews', version: 'v1' }));
  await mesh.apply(service('reviews-v2', { app: 'reviews', version: 'v2' }));
  let rev = await mesh.apply(route(90, 10));
  const { outbound, nodeId } = await mesh.sidecar({ id: 'productpage-1' });
  await mesh.synced(nodeId, rev);

  // Continuous load; a window counts only requests started after the proxy ACKed the step.
  let failures = 0;
  let total = 0;
  let running = true;
  let window: { v1: number; v2: number } | undefined;
  const loops = Array.from({ length: 4 }, async () => {
    while (running && total < 50_000) {
      total++;
      const w = window;
      try {
        const r = await mesh.request(outbound, 'reviews:9080');
        if (r.status !== 200) failures++;
        else if (w && (r.body === 'v1' || r.body === 'v2')) w[r.body]++;
      } catch {
        failures++;
      }
    }
  });
  const measure = async (n: number): Promise<{ v1: number; v2: number }> => {
    const w = { v1: 0, v2: 0 };
    window = w;
    const until = Date.now() + 8000;
    while (w.v1 + w.v2 < n && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    window = undefined;
    return w;
  };
  try {
    const a = await measure(400);
    assert.ok(withinBinomial(a.v2, a.v1 + a.v2, 0.1), `90/10: ${JSON.stringify(a)}`);
    rev = await mesh.apply(route(50, 50));
    await mesh.synced(nodeId, rev);
    const b = await measure(400);
    assert.ok(withinBinomial(b.v2, b.v1 + b.v2, 0.5), `50/50: ${JSON.stringify(b)}`);
    rev = await mesh.apply(route(0, 100));
    await mesh.synced(nodeId, rev);
    const c = await measure(200);
    assert.equal(c.v1, 0, `0/100: ${JSON.stringify(c)}`);
    assert.ok(c.v2 >= 200);
  } finally {
    running = false;
    await Promise.all(loops);
  }
  assert.ok(total > 1000, `load ran (${total})`);
  assert.equal(failures, 0, `${failures} of ${total} requests failed while weights changed`);
});
