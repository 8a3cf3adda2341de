// MeshTLS PERMISSIVE -> STRICT through the real control plane (xDS push) to a
// `trellis run` sidecar: plaintext connections held open to the workload's
// inbound port (HTTP/1.1 keep-alive and h2c) are closed when the new mode
// arrives, not served on; explicit mode and, where it can run, transparent
// capture (the pod's inbound listener). Before, every request on them kept
// getting 200 with no peer identity.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { freePort } from '../../src/runner/ports.ts';
import { netnsName, transparentUnsupported } from '../../src/runner/transparent.ts';
import { APPS, apply, controlPlane, events, joinToken, service, trellisRun, waitFor, workloads } from '../run/harness.ts';
import { h2Get, heldConnection } from './held-connections.ts';

const why = await transparentUnsupported();

async function strictClosesHeldPlaintext(t: TestContext, transparent: boolean): Promise<void> {
  const cp = await controlPlane(t);
  await apply(cp, service('reviews', 9080, 'http'));
  const workload = transparent ? 'reviews-mt' : 'reviews-me';
  if (transparent) {
    t.after(() => {
      if (existsSync(`/run/netns/${netnsName(workload)}`)) execFileSync('ip', ['netns', 'del', netnsName(workload)]);
    });
  }
  const appPort = transparent ? 9080 : await freePort();
  const r = trellisRun(t, cp, [...(transparent ? ['--transparent'] : []), '--service', 'reviews', '--workload', workload, '--port', `${appPort}:http`, '--', process.execPath, path.join(APPS, 'http-server.ts'), String(appPort), 'reviews'],
    { TRELLIS_JOIN_TOKEN: await joinToken(cp, 'reviews', workload) });
  await waitFor('app started', () => (events(r.stderr()).some((e) => e.event === 'app_started') ? true
    : r.child.exitCode !== null ? Promise.reject(new Error(r.stderr())) : undefined), 60_000);
  // Where a plaintext peer reaches the workload: the proxy port (explicit) or pod:9080 (captured).
  const w = (await workloads(cp)).find((x) => x.name === workload) as unknown as { address: string; ports: { proxyPort?: number }[] };
  const host = transparent ? w.address : '127.0.0.1';
  const port = transparent ? 9080 : w.ports[0]!.proxyPort!;

  const h1 = await waitFor('a plaintext keep-alive connection served (PERMISSIVE)', async () => {
    const c = await heldConnection(port, host).catch(() => undefined);
    if (!c) return undefined;
    if ((await c.request('/before')) === 'HTTP/1.1 200 OK') return c;
    c.destroy();
    return undefined;
  });
  t.after(() => h1.destroy());
  const h2 = http2.connect(`http://${host}:${port}`);
  h2.on('error', () => {});
  t.after(() => h2.destroy());
  assert.equal(await h2Get(h2, '/before'), '200');

  await apply(cp, { apiVersion: 'trellis.dev/v1alpha1', kind: 'MeshTLS', metadata: { name: 'default', namespace: 'default' }, spec: { mode: 'STRICT' } });
  // The push has landed once a new plaintext request is refused: STRICT
  // answers plaintext HTTP 403 MTLS_REQUIRED (translate/mtls.ts).
  await waitFor('STRICT applied by the sidecar', async () => {
    const c = await heldConnection(port, host).catch(() => undefined);
    const got = c ? await c.request('/probe') : 'closed';
    c?.destroy();
    return got === 'closed' || got.startsWith('HTTP/1.1 403') ? true : undefined;
  });
  // The connections held from before are closed too.
  assert.equal(await h1.request('/after'), 'closed');
  assert.doesNotMatch(await h2Get(h2, '/after'), /^200$/);
}

test('MeshTLS STRICT through xDS closes plaintext connections held open to a sidecar inbound port', { timeout: 90_000 }, async (t) => {
  await strictClosesHeldPlaintext(t, false);
});

test('MeshTLS STRICT through xDS closes plaintext connections held open to a pod under transparent capture', { skip: why, timeout: 90_000 }, async (t) => {
  await strictClosesHeldPlaintext(t, true);
});
