// Transparent capture in real network namespaces created by the test: two
// pods on a bridge, each app unmodified (a plain http.get to
// http://reviews:9080/), iptables REDIRECT to the pod's sidecar, the
// original destination recovered with SO_ORIGINAL_DST, no loops. Root and
// Linux only; skips with the reason otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { allocateVip } from '../../src/control-plane/registry/vip.ts';
import { netnsName, transparentUnsupported } from '../../src/runner/transparent.ts';
import { APPS, apply, controlPlane, events, service, tempDir, trellisRun, waitFor, workloads } from '../run/harness.ts';

const why = await transparentUnsupported();
if (why) console.log(`# transparent tests skipped: ${why}`);

function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${netnsName(name)}`);
}

function forceCleanup(name: string): void {
  if (netnsExists(name)) {
    try {
      execFileSync('ip', ['netns', 'del', netnsName(name)]);
    } catch {
      // gone
    }
  }
}

test('two pods talk through their sidecars with transparent capture', { skip: why }, async (t) => {
  const cp = await controlPlane(t);
  const dir = tempDir(t);
  await apply(cp, service('reviews', 9080, 'http'));
  await apply(cp, service('productpage', 9080, 'http'));
  await apply(cp, service('db', 7000, 'tcp'));
  // VIPs (the control plane hands them out; allocated here directly).
  for (const name of ['reviews', 'db']) assert.ok((await allocateVip(cp.store, 'default', name)).ok);
  for (const n of ['reviews-t1', 'productpage-t1', 'db-t1']) t.after(() => forceCleanup(n));

  // A TCP server in a third pod: reached by VIP and port (no Host header),
  // so only the original destination can route it.
  const proxyLog = (pod: string): string => path.join(dir, `${pod}-proxy.log`);
  const tail = (file: string): string => (existsSync(file) ? readFileSync(file, 'utf8').slice(-4000) : '(no log)');
  const db = trellisRun(t, cp, ['--transparent', '--service', 'db', '--workload', 'db-t1', '--port', '7000:tcp', '--proxy-log', proxyLog('db'), '--', process.execPath, path.join(APPS, 'tcp-echo.ts'), '7000', 'db-pod']);
  t.after(async () => {
    if (db.child.exitCode === null) {
      db.child.kill('SIGTERM');
      await db.exit;
    }
  });

  const reviews = trellisRun(t, cp, ['--transparent', '--service', 'reviews', '--workload', 'reviews-t1', '--port', '9080:http', '--', process.execPath, path.join(APPS, 'http-server.ts'), '9080', 'reviews-pod']);
  t.after(async () => {
    if (reviews.child.exitCode === null) {
      reviews.child.kill('SIGTERM');
      await reviews.exit;
    }
  });
  await waitFor('reviews app started in its pod', () => (events(reviews.stderr()).some((e) => e.event === 'app_started') ? true : events(reviews.stderr()).some((e) => e.event === 'sidecar_not_ready') || reviews.child.exitCode !== null ? Promise.reject(new Error(reviews.stderr())) : undefined), 60_000);
  const w = (await workloads(cp)).find((x) => x.name === 'reviews-t1') as unknown as { address: string; ports: { port: number; proxyPort?: number }[] };
  assert.match(w.address, /^198\.18\.0\.\d+$/);
  assert.equal(w.ports[0]!.proxyPort, undefined, 'peers dial the app port itself');
  assert.ok(netnsExists('reviews-t1'));
  await waitFor('db app started in its pod', () => (events(db.stderr()).some((e) => e.event === 'app_started') ? true : db.child.exitCode !== null ? Promise.reject(new Error(db.stderr())) : undefined), 60_000);

  // Inbound capture on its own: a caller outside the mesh (the host) dials
  // the pod's address on the app port; PREROUTING hands it to the sidecar,
  // which delivers it to the app listening on the pod's loopback only.
  // (The app may still be binding: retry, bounded.)
  const direct = await waitFor('the app answering through inbound capture', async () => {
    const res = await fetch(`http://${w.address}:9080/from-host`, { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
    const body = await res?.text();
    return res?.status === 200 ? body : undefined;
  });
  assert.equal(direct, 'reviews-pod /from-host');

  const out = path.join(dir, 'client.json');
  const client = trellisRun(t, cp, ['--transparent', '--service', 'productpage', '--workload', 'productpage-t1', '--port', '9080:http', '--proxy-log', proxyLog('client'), '--', process.execPath, path.join(APPS, 'plain-client.ts'), 'http://reviews:9080/through-the-mesh', 'db:7000'], { OUT: out });
  const ce = await client.exit;
  const rec = existsSync(out) ? (JSON.parse(readFileSync(out, 'utf8')) as { result?: { body: string; headers: Record<string, string> }; tcp?: string; errors: string[] }) : undefined;
  assert.equal(ce.code, 0, `client failed: ${JSON.stringify(rec)}\n${client.stderr()}`);
  // Outbound captured (name -> VIP -> REDIRECT -> original destination ->
  // route by Host), then inbound captured in the reviews pod and delivered
  // to the app on loopback.
  assert.equal(rec?.result?.body, 'reviews-pod /through-the-mesh');
  assert.equal(rec?.result?.headers['x-app'], 'reviews-pod');
  assert.equal(rec?.tcp, 'db-pod: ping', `TCP by VIP: the original destination picked the chain; client: ${JSON.stringify(rec)}\ndb pod: ${db.stderr().slice(-3000)}\nclient pod: ${client.stderr().slice(-3000)}\ndb proxy: ${tail(proxyLog('db'))}\nclient proxy: ${tail(proxyLog('client'))}`);
  assert.equal(netnsExists('productpage-t1'), false, 'the client pod was removed on exit');

  reviews.child.kill('SIGTERM');
  assert.equal((await reviews.exit).code, 0);
  assert.equal(netnsExists('reviews-t1'), false, 'the server pod was removed on exit');
  assert.equal(existsSync('/etc/netns/trl-reviews-t1'), false);
  db.child.kill('SIGTERM');
  assert.equal((await db.exit).code, 0);
  assert.equal(netnsExists('db-t1'), false);
});
