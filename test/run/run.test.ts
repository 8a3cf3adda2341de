// `trellis run` end to end with a real control plane: a workload registers,
// its sidecar gets its config, the app starts only then (its first call
// through HTTP_PROXY succeeds), signals reach the app, the runner exits with
// the app's code and deregisters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../../src/runner/ports.ts';
import { PROXY_NODE_FLAGS, proxyEnv } from '../../src/proxy/runtime.ts';
import { APPS, apply, controlPlane, events, service, tempDir, trellisRun, waitFor, workloads } from './harness.ts';

test('trellis run: app after sidecar ready, HTTP_PROXY routing, SIGTERM forwarded, exit codes, deregistration', async (t) => {
  const cp = await controlPlane(t);
  const dir = tempDir(t);
  await apply(cp, service('reviews', 9080, 'http'));
  await apply(cp, service('productpage', 9080, 'http'));

  // The upstream: an ordinary HTTP server run in the mesh.
  const reviewsPort = await freePort();
  const mark = path.join(dir, 'reviews.sigterm');
  const reviews = trellisRun(t, cp, ['--service', 'reviews', '--workload', 'reviews-1', '--port', `${reviewsPort}:http`, '--', process.execPath, path.join(APPS, 'http-server.ts'), String(reviewsPort), 'reviews-v1'], { MARK: mark });
  await waitFor('reviews registered with a proxy port', async () => (await workloads(cp)).find((w) => w.name === 'reviews-1' && w.ports[0]?.proxyPort !== undefined));
  await waitFor('reviews app started', () => (events(reviews.stderr()).some((e) => e.event === 'app_started') ? true : undefined));

  // The client: its very first call through the proxy must work.
  const out = path.join(dir, 'client.json');
  const client = trellisRun(t, cp, ['--service', 'productpage', '--workload', 'productpage-1', '--port', `${await freePort()}:http`, '--', process.execPath, path.join(APPS, 'http-client.ts'), 'http://reviews:9080/hello'], { OUT: out, EXIT_CODE: '7' });
  const ce = await client.exit;
  assert.equal(ce.code, 7, `runner exit = the app's exit code; stderr:\n${client.stderr()}`);
  const rec = JSON.parse(readFileSync(out, 'utf8')) as { attempts: number; body: string; started: number; reachedAt: number; env: Record<string, string> };
  assert.equal(rec.attempts, 1, `first call through the sidecar failed: ${JSON.stringify(rec)}`);
  assert.equal(rec.body, 'reviews-v1 /hello');
  assert.match(rec.env.HTTP_PROXY ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.match(rec.env.NO_PROXY ?? '', /127\.0\.0\.1/);
  const ev = events(client.stderr()).map((e) => e.event);
  assert.ok(ev.indexOf('sidecar_ready') < ev.indexOf('app_started'), ev.join(','));
  assert.ok(ev.indexOf('app_exited') < ev.indexOf('deregister_failed') || !ev.includes('deregister_failed'));
  assert.equal((await workloads(cp)).some((w) => w.name === 'productpage-1'), false, 'client deregistered');

  // The inbound side is reached only through the sidecar: the registered
  // endpoint is the proxy port, which forwards to the app on loopback.
  const w = (await workloads(cp)).find((x) => x.name === 'reviews-1')!;
  const viaSidecar = await fetch(`http://127.0.0.1:${w.ports[0]!.proxyPort}/direct`);
  assert.equal(await viaSidecar.text(), 'reviews-v1 /direct');

  // The sidecar dies: the runner restarts it while the app keeps running.
  const firstPid = events(reviews.stderr()).find((e) => e.event === 'sidecar_started')?.pid as number;
  // Started with the proxy's V8 options (src/proxy/runtime.ts).
  const argv = readFileSync(`/proc/${firstPid}/cmdline`, 'utf8').split('\0');
  for (const flag of PROXY_NODE_FLAGS) assert.ok(argv.indexOf(flag) > 0 && argv.indexOf(flag) < argv.indexOf('proxy'), `${flag} before the script: ${argv.join(' ')}`);
  const environ = readFileSync(`/proc/${firstPid}/environ`, 'utf8').split('\0');
  const cache = proxyEnv(process.env).NODE_COMPILE_CACHE;
  if (!process.env.NODE_DISABLE_COMPILE_CACHE) assert.ok(environ.includes(`NODE_COMPILE_CACHE=${cache}`), `Node's compile cache (${cache}) on for the sidecar`);
  process.kill(firstPid, 'SIGKILL');
  await waitFor('sidecar restarted', () => (events(reviews.stderr()).some((e) => e.event === 'sidecar_restarted') ? true : undefined));
  const again = await waitFor('inbound through the restarted sidecar', async () => {
    const res = await fetch(`http://127.0.0.1:${w.ports[0]!.proxyPort}/again`).catch(() => undefined);
    return res?.status === 200 ? res.text() : undefined;
  });
  assert.equal(again, 'reviews-v1 /again');
  assert.equal(reviews.child.exitCode, null, 'the runner and its app kept running');

  // SIGTERM to the runner reaches the app, which exits 0 -> runner exits 0.
  reviews.child.kill('SIGTERM');
  const re = await reviews.exit;
  assert.equal(re.code, 0, reviews.stderr());
  assert.equal(existsSync(mark) && readFileSync(mark, 'utf8'), 'sigterm');
  assert.equal((await workloads(cp)).some((x) => x.name === 'reviews-1'), false, 'reviews deregistered');
  assert.ok(events(reviews.stderr()).some((e) => e.event === 'signal_forwarded' && e.signal === 'SIGTERM'));
});

test('trellis run: a failing command and bad flags', async (t) => {
  const cp = await controlPlane(t);
  const r = trellisRun(t, cp, ['--service', 'batch', '--', process.execPath, '-e', 'process.exit(3)']);
  assert.equal((await r.exit).code, 3, r.stderr());
  const bad = trellisRun(t, cp, ['--service', 'batch', '--port', 'x:http', '--', 'true']);
  assert.equal((await bad.exit).code, 2);
  assert.match(bad.stderr(), /--port "x:http": expected PORT/);
  const tlsAlone = trellisRun(t, cp, ['--service', 'batch', '--xds-tls', '--', 'true'], { TRELLIS_XDS: undefined });
  assert.equal((await tlsAlone.exit).code, 2);
  assert.match(tlsAlone.stderr(), /--xds-tls: only with --xds/);
  const closed = await freePort();
  const noCp = trellisRun(t, cp, ['--service', 'batch', '--server', `http://127.0.0.1:${closed}`, '--', 'true']);
  assert.equal((await noCp.exit).code, 1);
  assert.match(noCp.stderr(), new RegExp(`cannot reach the control plane API at http://127\\.0\\.0\\.1:${closed} \\(from --server\\): ECONNREFUSED`));
  const missing = trellisRun(t, cp, ['--service', 'batch', '--', '/nonexistent/cmd']);
  assert.equal((await missing.exit).code, 127, missing.stderr());
});
