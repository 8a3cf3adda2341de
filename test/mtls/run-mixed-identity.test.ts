// A service whose workloads do not all have identities (one started with a
// join token, one without, as during a migration): `trellis run` marks each
// registration with `trellis.dev/tls-mode`, so a caller with an identity
// dials the first with mTLS (the app sees the caller's SPIFFE ID) and the
// second in plaintext, which its PERMISSIVE port accepts. Before, the caller
// originated TLS to both and every call to the second failed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../../src/runner/ports.ts';
import { APPS, apply, controlPlane, events, joinToken, service, tempDir, trellisRun, waitFor, workloads, type Running } from '../run/harness.ts';


async function started(r: Running, what: string): Promise<void> {
  await waitFor(what, () => (events(r.stderr()).some((e) => e.event === 'app_started') ? true
    : r.child.exitCode !== null ? Promise.reject(new Error(r.stderr())) : undefined), 30_000);
}

test('a caller with an identity reaches workloads with and without one: mTLS to the first, plaintext to the second', { timeout: 90_000 }, async (t) => {
  const cp = await controlPlane(t);
  assert.ok(cp.identity, 'the control plane runs its CA');
  const dir = tempDir(t);
  await apply(cp, service('reviews', 9080, 'http'));
  await apply(cp, service('productpage', 9080, 'http'));
  // Round robin, and no retries hiding a failed attempt on the other workload.
  await apply(cp, { apiVersion: 'trellis.dev/v1alpha1', kind: 'LoadBalancerPolicy', metadata: { name: 'reviews-rr', namespace: 'default' }, spec: { targetRef: { kind: 'Service', name: 'reviews' }, type: 'roundRobin' } });

  const withId = await freePort();
  const a = trellisRun(t, cp, ['--service', 'reviews', '--workload', 'reviews-id', '--port', `${withId}:http`, '--', process.execPath, path.join(APPS, 'http-server.ts'), String(withId), 'with-identity'],
    { TRELLIS_JOIN_TOKEN: await joinToken(cp, 'reviews', 'reviews-id') });
  const without = await freePort();
  const b = trellisRun(t, cp, ['--service', 'reviews', '--workload', 'reviews-noid', '--port', `${without}:http`, '--', process.execPath, path.join(APPS, 'http-server.ts'), String(without), 'without-identity'],
    { TRELLIS_JOIN_TOKEN: '' });
  await started(a, 'reviews with an identity');
  await started(b, 'reviews without one');
  const labels = new Map((await workloads(cp)).map((w) => [w.name, (w as unknown as { labels: Record<string, string> }).labels['trellis.dev/tls-mode']]));
  assert.equal(labels.get('reviews-id'), 'mtls');
  assert.equal(labels.get('reviews-noid'), 'none');

  const out = path.join(dir, 'answers.json');
  const client = trellisRun(t, cp, ['--service', 'productpage', '--workload', 'productpage-id', '--port', `${await freePort()}:http`, '--', process.execPath, path.join(APPS, 'http-sampler.ts'), 'http://reviews:9080/mixed'],
    { OUT: out, COUNT: '40', TRELLIS_JOIN_TOKEN: await joinToken(cp, 'productpage', 'productpage-id') });
  const ce = await client.exit;
  assert.equal(ce.code, 0, client.stderr());
  const answers = JSON.parse(readFileSync(out, 'utf8')) as { status: number; app?: string; peer?: string; error?: string }[];
  const failed = answers.filter((x) => x.status !== 200);
  assert.deepEqual(failed, [], 'every call answered');
  const byApp = new Map<string, Set<string>>();
  for (const x of answers) {
    const peers = byApp.get(x.app ?? '?') ?? new Set<string>();
    peers.add(x.peer ?? 'plaintext');
    byApp.set(x.app ?? '?', peers);
  }
  assert.deepEqual([...byApp.keys()].sort(), ['with-identity', 'without-identity'], 'both workloads served');
  assert.deepEqual([...byApp.get('with-identity')!], ['spiffe://' + cp.identity!.ca.trustDomain + '/ns/default/sa/productpage'], 'mTLS to the workload with an identity');
  assert.deepEqual([...byApp.get('without-identity')!], ['plaintext'], 'plaintext to the one without');
});
