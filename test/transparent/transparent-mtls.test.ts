// Mutual TLS between two pods under transparent capture: neither app knows
// about TLS (a plain http.get to http://reviews:9080/, a plain TCP write to
// db:7000); the sidecars get identities from the control plane's CA through
// the pod's identity relay, the caller's sidecar originates mTLS to the pod
// address, the callee's inbound capture terminates it and tells the app who
// called. With STRICT, plaintext from outside the mesh finds no chain.
// Root and Linux only; skips with the reason otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { allocateVip } from '../../src/control-plane/registry/vip.ts';
import { netnsName, transparentUnsupported } from '../../src/runner/transparent.ts';
import { APPS, apply, controlPlane, events, joinToken, service, tempDir, trellisRun, waitFor, workloads, type Running } from '../run/harness.ts';

const why = await transparentUnsupported();
if (why) console.log(`# transparent mTLS tests skipped: ${why}`);

function forceCleanup(name: string): void {
  if (!existsSync(`/run/netns/${netnsName(name)}`)) return;
  try {
    execFileSync('ip', ['netns', 'del', netnsName(name)]);
  } catch {
    // gone
  }
}


function stopAtEnd(t: { after(fn: () => unknown): void }, r: Running): void {
  t.after(async () => {
    if (r.child.exitCode === null && r.child.signalCode === null) {
      r.child.kill('SIGTERM');
      await r.exit;
    }
  });
}

async function appStarted(r: Running, what: string): Promise<void> {
  await waitFor(what, () => (events(r.stderr()).some((e) => e.event === 'app_started') ? true
    : r.child.exitCode !== null ? Promise.reject(new Error(r.stderr())) : undefined), 60_000);
}

/** A raw TCP exchange from the host: what came back before the close. */
function tcpExchange(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect(port, host, () => sock.write('ping'));
    let got = '';
    sock.setEncoding('utf8').on('data', (d: string) => (got += d));
    sock.on('close', () => resolve(got));
    sock.on('error', () => undefined);
    sock.setTimeout(5000, () => sock.destroy());
  });
}

test('mTLS between two pods under transparent capture; STRICT closes plaintext from outside the mesh', { skip: why, timeout: 120_000 }, async (t) => {
  const cp = await controlPlane(t);
  assert.ok(cp.identity, 'the control plane runs its CA');
  const dir = tempDir(t);
  await apply(cp, service('reviews', 9080, 'http'));
  await apply(cp, service('productpage', 9080, 'http'));
  await apply(cp, service('db', 7000, 'tcp'));
  await apply(cp, { apiVersion: 'trellis.dev/v1alpha1', kind: 'MeshTLS', metadata: { name: 'default', namespace: 'default' }, spec: { mode: 'STRICT' } });
  for (const name of ['reviews', 'db']) assert.ok((await allocateVip(cp.store, 'default', name)).ok);
  for (const n of ['reviews-m1', 'productpage-m1', 'db-m1']) t.after(() => forceCleanup(n));

  const db = trellisRun(t, cp, ['--transparent', '--service', 'db', '--workload', 'db-m1', '--port', '7000:tcp', '--', process.execPath, path.join(APPS, 'tcp-echo.ts'), '7000', 'db-pod'],
    { TRELLIS_JOIN_TOKEN: await joinToken(cp, 'db', 'db-m1') });
  stopAtEnd(t, db);
  const reviews = trellisRun(t, cp, ['--transparent', '--service', 'reviews', '--workload', 'reviews-m1', '--port', '9080:http', '--', process.execPath, path.join(APPS, 'http-server.ts'), '9080', 'reviews-pod'],
    { TRELLIS_JOIN_TOKEN: await joinToken(cp, 'reviews', 'reviews-m1') });
  stopAtEnd(t, reviews);
  await appStarted(reviews, 'reviews app started in its pod');
  await appStarted(db, 'db app started in its pod');
  const reg = (await workloads(cp)).find((x) => x.name === 'reviews-m1') as unknown as { address: string; labels: Record<string, string> };
  assert.equal(reg.labels['trellis.dev/meshed'], 'true', 'a pod is registered as meshed (peers originate mTLS to it)');

  const out = path.join(dir, 'client.json');
  const client = trellisRun(t, cp, ['--transparent', '--service', 'productpage', '--workload', 'productpage-m1', '--port', '9080:http', '--', process.execPath, path.join(APPS, 'plain-client.ts'), 'http://reviews:9080/over-mtls', 'db:7000'],
    { OUT: out, TRELLIS_JOIN_TOKEN: await joinToken(cp, 'productpage', 'productpage-m1') });
  const ce = await client.exit;
  const rec = existsSync(out) ? (JSON.parse(readFileSync(out, 'utf8')) as { result?: { body: string; headers: Record<string, string> }; tcp?: string; errors: string[] }) : undefined;
  assert.equal(ce.code, 0, `client failed: ${JSON.stringify(rec)}\n${client.stderr()}`);
  assert.equal(rec?.result?.body, 'reviews-pod /over-mtls');
  // The callee's sidecar verified the caller's certificate: its SPIFFE ID reached the app.
  assert.match(rec?.result?.headers['x-peer'] ?? '', /^spiffe:\/\/[^/]+\/ns\/default\/sa\/productpage$/);
  assert.equal(rec?.tcp, 'db-pod: ping', 'TCP by VIP over mTLS');

  // STRICT: a plaintext caller outside the mesh (the host) reaches the pods'
  // inbound capture and never reaches the app: plaintext HTTP is answered
  // 403 MTLS_REQUIRED by the sidecar itself (the reason in a header, issue
  // 17), plaintext TCP is closed without a byte.
  const plain = await fetch(`http://${reg.address}:9080/plaintext`, { signal: AbortSignal.timeout(5000) }).then(
    (r) => `status ${r.status} ${r.headers.get('x-trellis-proxy-error') ?? '-'}`,
    (e: Error) => `failed: ${e.message}`,
  );
  assert.equal(plain, 'status 403 MTLS_REQUIRED');
  const dbReg = (await workloads(cp)).find((x) => x.name === 'db-m1') as unknown as { address: string };
  assert.equal(await tcpExchange(dbReg.address, 7000), '', 'no echo over plaintext');
});
