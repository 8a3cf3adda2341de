// Root rotation end to end with real sidecars (`trellis run`, a real control
// plane, the `trellis identity` CLI): activating a new root makes proxies
// renew onto it (the bundle lists the active root first); `rotate retire`
// is refused while a live proxy still holds a certificate under the
// old root and names it, `trellis identity` shows who depends on which root,
// `trellis identity renew` forces the laggard to renew, then retire succeeds
// and traffic keeps working: through the caller's sidecar, and on brand-new
// mTLS connections trusting only the new root.
// Before, retire succeeded at once and new connections then failed with
// "unable to get local issuer certificate".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { freePort } from '../../src/runner/ports.ts';
import { createCaClient } from '../../src/proxy/identity/ca-client.ts';
import { createWorkloadIdentity } from '../../src/proxy/identity/workload-identity.ts';
import { APPS, ROOT, TRELLIS, apply, controlPlane, events, joinToken, service, trellisRun, waitFor, workloads, type Running } from '../run/harness.ts';

interface IdentityReport { root: string | null; rootActive: boolean; rotations: number; trustBundle: { fingerprint: string }[] }

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [TRELLIS, ...args], { cwd: ROOT, env: { ...process.env, NODE_NO_WARNINGS: '1' }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function identityOf(admin: string): Promise<IdentityReport> {
  const res = await fetch(`http://${admin}/identity`, { signal: AbortSignal.timeout(3000) });
  return (await res.json()) as IdentityReport;
}

async function started(r: Running, what: string): Promise<void> {
  await waitFor(what, () => (events(r.stderr()).some((e) => e.event === 'app_started') ? true
    : r.child.exitCode !== null ? Promise.reject(new Error(r.stderr())) : undefined), 30_000);
}

/** GET through a sidecar's outbound listener (as an app with HTTP_PROXY does): status and the callee's view of the caller. */
function viaSidecar(outbound: number, url: string): Promise<{ status: number; body: string; peer?: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: outbound, path: u.href, headers: { host: u.host }, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body, ...(typeof res.headers['x-peer'] === 'string' ? { peer: res.headers['x-peer'] } : {}) }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

test('root rotation with real sidecars: proxies renew onto the new root, retire waits for them, traffic keeps working', { timeout: 120_000 }, async (t) => {
  const cp = await controlPlane(t);
  assert.ok(cp.identity);
  const api = ['--api', cp.apiUrl];
  await apply(cp, service('reviews', 9080, 'http'));
  await apply(cp, service('productpage', 9080, 'http'));
  // reviews' sidecar would take an hour to follow a new root (it must be made
  // to renew); productpage's follows within a second.
  const reviewsPort = await freePort();
  const reviews = trellisRun(t, cp, ['--service', 'reviews', '--workload', 'reviews-r1', '--port', `${reviewsPort}:http`, '--', process.execPath, path.join(APPS, 'http-server.ts'), String(reviewsPort), 'reviews-v1'],
    { TRELLIS_JOIN_TOKEN: await joinToken(cp, 'reviews', 'reviews-r1'), TRELLIS_IDENTITY_ROLLOVER_WINDOW: '1h' });
  const ppPort = await freePort();
  const productpage = trellisRun(t, cp, ['--service', 'productpage', '--workload', 'productpage-r1', '--port', `${ppPort}:http`, '--', process.execPath, path.join(APPS, 'http-server.ts'), String(ppPort), 'productpage'],
    { TRELLIS_JOIN_TOKEN: await joinToken(cp, 'productpage', 'productpage-r1'), TRELLIS_IDENTITY_ROLLOVER_WINDOW: '1s' });
  await started(reviews, 'reviews started');
  await started(productpage, 'productpage started');
  const outbound = events(productpage.stderr()).find((e) => e.event === 'sidecar_ready')!.outbound as number;
  const admins = await waitFor('both proxies advertise their admin', async () => {
    const list = ((await (await fetch(`${cp.apiUrl}/api/v1/proxies`)).json()) as { proxies: { nodeId: string; admin?: string }[] }).proxies;
    const r = list.find((p) => p.nodeId === 'default/reviews-r1')?.admin;
    const p = list.find((x) => x.nodeId === 'default/productpage-r1')?.admin;
    return r && p ? { reviews: r, productpage: p } : undefined;
  });
  const td = cp.identity.ca.trustDomain;
  const call = async () => viaSidecar(outbound, 'http://reviews:9080/hello');
  // (the app listens a moment after it is started)
  const first = await waitFor('reviews answering through the sidecars', async () => {
    const r = await call().catch(() => undefined);
    return r?.status === 200 ? r : undefined;
  });
  assert.deepEqual(first, { status: 200, body: 'reviews-v1 /hello', peer: `spiffe://${td}/ns/default/sa/productpage` });

  // A certificate held by a workload that is neither connected nor registered
  // (it stopped): listed, but it does not block retiring its root.
  const tok = await cp.identity.ca.createJoinToken({ namespace: 'default', serviceAccount: 'tester', workload: 'tester-1' });
  assert.ok(tok.ok);
  const tester = createWorkloadIdentity({ ca: createCaClient({ baseUrl: cp.apiUrl, joinToken: tok.token }), bundlePollMs: 0 });
  t.after(() => tester.stop());
  assert.ok((await tester.start({ timeoutMs: 5000 })).ok);

  const oldRoot = cp.identity.ca.trustBundle().roots[0]!.fingerprint;
  assert.equal((await cli(['identity', 'rotate', 'stage', ...api])).code, 0);
  const newRoot = cp.identity.ca.trustBundle().roots.find((r) => r.state === 'staged')!.fingerprint;
  await waitFor('both proxies have the staged root in their bundle', async () => {
    const [a, b] = await Promise.all([identityOf(admins.reviews), identityOf(admins.productpage)]);
    return a.trustBundle.length === 2 && b.trustBundle.length === 2 ? true : undefined;
  });

  assert.equal((await cli(['identity', 'rotate', 'activate', ...api])).code, 0);
  // productpage's sidecar renews onto the new root by itself.
  await waitFor('productpage renewed onto the new root', async () => ((await identityOf(admins.productpage)).root === newRoot ? true : undefined), 15_000);
  assert.equal((await identityOf(admins.reviews)).root, oldRoot, 'reviews still on the old root');
  assert.equal((await call()).status, 200, 'traffic across roots during the overlap');

  // Retire is refused and names who still depends on the old root.
  const refused = await cli(['identity', 'rotate', 'retire', oldRoot, ...api]);
  assert.equal(refused.code, 1, refused.stdout);
  assert.match(refused.stderr, /default\/reviews-r1/);
  assert.doesNotMatch(refused.stderr, /productpage-r1|tester-1/);
  assert.equal(cp.identity.ca.trustBundle().roots.length, 2, 'the old root stays');
  const status = await cli(['identity', ...api]);
  assert.match(status.stdout, new RegExp(`^  ${oldRoot.replace(/:/g, '').slice(0, 16)} previous 2 workload\\(s\\): default/reviews-r1, default/tester-1 \\(gone: not connected, not registered\\)$`, 'm'));
  assert.match(status.stdout, /^default\/reviews-r1 .* previous /m);

  // `trellis identity renew` makes every connected proxy renew now.
  const renewed = await cli(['identity', 'renew', ...api]);
  assert.equal(renewed.code, 0, renewed.stdout + renewed.stderr);
  assert.match(renewed.stdout, /default\/reviews-r1 .*renewed: spiffe:\/\//);
  assert.equal((await identityOf(admins.reviews)).root, newRoot);

  const retired = await cli(['identity', 'rotate', 'retire', oldRoot, ...api]);
  assert.equal(retired.code, 0, retired.stderr);
  assert.deepEqual(cp.identity.ca.trustBundle().roots.map((r) => r.fingerprint), [newRoot]);
  await waitFor('both proxies dropped the old root', async () => {
    const [a, b] = await Promise.all([identityOf(admins.reviews), identityOf(admins.productpage)]);
    return a.trustBundle.length === 1 && b.trustBundle.length === 1 ? true : undefined;
  });

  // Traffic keeps working: through the caller's sidecar...
  assert.deepEqual(await call(), { status: 200, body: 'reviews-v1 /hello', peer: `spiffe://${td}/ns/default/sa/productpage` });
  // ...and on a brand-new mTLS connection from a client that trusts only the new root.
  const creds = await tester.rotateNow();
  assert.ok(creds.ok);
  assert.deepEqual(creds.credentials.root, newRoot);
  assert.equal(tester.describe().trustBundle.length, 1);
  const proxyPort = (await workloads(cp)).find((w) => w.name === 'reviews-r1')!.ports[0]!.proxyPort!;
  const fresh = await new Promise<{ status: number; peer: unknown }>((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port: proxyPort, path: '/fresh', agent: false, key: creds.credentials.privateKeyPem, cert: creds.credentials.certificateChain,
      ca: creds.credentials.trustBundle, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3', timeout: 5000,
    }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, peer: res.headers['x-peer'] }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.deepEqual(fresh, { status: 200, peer: `spiffe://${td}/ns/default/sa/tester` });
});
