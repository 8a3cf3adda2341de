// The README's flow across hosts: the control plane on one host (a network
// namespace with its own address), workloads on two others, nothing crossing
// hosts over 127.0.0.1. The control plane binds its host's address, so its
// API is HTTPS with credentials and xDS is mutual TLS only; the CLI pins its
// CA; each `trellis run` has only a join token (which pins the CA too).
// Shown: apply, run workloads, a canary moved from v1 to v2, mutual TLS
// between hosts (the app sees the caller's SPIFFE ID), the golden metrics of
// the workloads on both remote hosts (scraped over mTLS; an anonymous client
// on another host cannot read them), STRICT, and an
// AuthorizationPolicy that lets one caller in and keeps another out; then the
// control plane's host cut off (its veth down) for 3 s under load: no request
// fails, and the proxies are connected again afterwards; then a workload's
// host cut off mid-load: callers fail over to the other host (the success
// rate is reported).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { createTestNetwork, hostsUnsupported, type TestHost } from '../util/hosts.ts';
import { tlsFetch } from '../../src/lib/tls-fetch.ts';
import { rootsMatchingPin } from '../../src/lib/ca-pin.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const TRELLIS = path.join(ROOT, 'bin', 'trellis.ts');
const APPS = path.join(ROOT, 'test', 'run', 'apps');

interface Proc { child: ChildProcess; out(): string; exit: Promise<number | null>; stop(): Promise<void> }

/** Processes to stop before the hosts go (newest first). */
const procs: Proc[] = [];

function start(_t: TestContext, host: TestHost, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = host.spawn(process.execPath, [TRELLIS, ...args], { cwd: ROOT, env: { ...process.env, NODE_NO_WARNINGS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(killer);
    }
  };
  const p = { child, out: () => out, exit, stop };
  procs.push(p);
  return p;
}

/** Bounded polling; generous: the machine is shared and often loaded. */
async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 90_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('the mesh across three hosts: HTTPS API with credentials, mTLS xDS, canary, mTLS and authorization between hosts; the control plane, then a workload host, cut off under load', { timeout: 300_000 }, async (t) => {
  const why = await hostsUnsupported();
  if (why) return t.skip(why);
  const net = await createTestNetwork();
  t.after(async () => {
    for (const p of procs.splice(0).reverse()) await p.stop();
    await net.close();
  });
  const [cpHost, hostA, hostB] = [await net.addHost('cp'), await net.addHost('a'), await net.addHost('b')];
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-hosts-'));
  chmodSync(dir, 0o700);
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  // 1. The control plane on its own host, bound to that host's address.
  const cp = start(t, cpHost, ['control-plane', '--host', cpHost.address, '--data-dir', path.join(dir, 'cp'), '--san', 'cp.mesh.test']);
  const ready = await waitFor('the control plane', () => {
    const line = cp.out().split('\n').find((l) => l.includes('"event":"ready"'));
    return line ? (JSON.parse(line) as { api: string; xdsTls: string; caPin: string; xds: string }) : undefined;
  });
  assert.equal(ready.api, `https://${cpHost.address}:15080`);
  assert.equal(ready.xdsTls, `${cpHost.address}:15012`);
  assert.doesNotMatch(cp.out(), /127\.0\.0\.1/, 'nothing of the control plane listens on loopback');
  // The operator learns the CA from the pin it printed, never on first use.
  const bundle = await waitFor('the trust bundle', async () => {
    const r = await tlsFetch(`${ready.api}/api/v1/identity/trust-bundle`, { insecureSkipVerify: true });
    const b = ((await r.json()) as { trustBundle: string }).trustBundle;
    return rootsMatchingPin(b, ready.caPin).length > 0 ? b : undefined;
  });
  const admin = readFileSync(path.join(dir, 'cp', 'admin-token'), 'utf8').trim();
  const api = async (method: string, p: string, body?: unknown, token: string | undefined = admin): Promise<{ status: number; json: any }> => {
    const res = await tlsFetch(`${ready.api}${p}`, {
      method, ca: bundle,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null };
  };
  assert.equal((await api('POST', '/api/v1/apply', [], '')).status, 401, 'anonymous writes are refused beyond loopback');

  // 2. Declare the services, STRICT mTLS, and who may call reviews.
  const svc = (name: string, selector: Record<string, string>) => ({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name }, spec: { selector, ports: [{ name: 'http', port: 9080, targetPort: 'http', protocol: 'http' }] } });
  const canary = (v1: number, v2: number) => ({
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'reviews' },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'reviews', port: 9080 }], rules: [{ backendRefs: [{ name: 'reviews-v1', port: 9080, weight: v1 }, { name: 'reviews-v2', port: 9080, weight: v2 }] }] },
  });
  const applied = await api('POST', '/api/v1/apply', [
    svc('reviews', { app: 'reviews' }), svc('reviews-v1', { app: 'reviews', version: 'v1' }), svc('reviews-v2', { app: 'reviews', version: 'v2' }),
    canary(100, 0),
    { apiVersion: 'trellis.dev/v1alpha1', kind: 'MeshTLS', metadata: { name: 'default' }, spec: { mode: 'STRICT' } },
    { apiVersion: 'trellis.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'reviews-callers' }, spec: { targetRef: { kind: 'Service', name: 'reviews' }, action: 'ALLOW', rules: [{ from: [{ source: { serviceAccounts: ['client'] } }] }] } },
  ]);
  assert.equal(applied.status, 200, JSON.stringify(applied.json));
  const token = async (sa: string, workload: string): Promise<string> => {
    const r = await api('POST', '/api/v1/identity/join-tokens', { namespace: 'default', serviceAccount: sa, workload });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    return r.json.token as string;
  };

  // 3. reviews v1 on host a, v2 on host b: each with only its join token.
  const run = (host: TestHost, args: string[], joinToken: string, env: NodeJS.ProcessEnv = {}): Proc =>
    start(t, host, ['run', '--server', ready.api, '--address', host.address, '--drain-ms', '300', ...args], { TRELLIS_JOIN_TOKEN: joinToken, ...env });
  const v1 = run(hostA, ['--service', 'reviews', '--workload', 'reviews-1', '--label', 'version=v1', '--port', '9081:http', '--', process.execPath, path.join(APPS, 'http-server.ts'), '9081', 'v1'], await token('reviews', 'reviews-1'));
  const v2 = run(hostB, ['--service', 'reviews', '--workload', 'reviews-2', '--label', 'version=v2', '--port', '9082:http', '--', process.execPath, path.join(APPS, 'http-server.ts'), '9082', 'v2'], await token('reviews', 'reviews-2'));
  await waitFor('both reviews registered', async () => {
    const r = await api('GET', '/api/v1/registry/workloads');
    const items = (r.json?.items ?? []) as { name: string; address: string; labels: Record<string, string> }[];
    return items.length === 2 ? items : undefined;
  }, 90_000).then((items) => {
    for (const w of items) {
      assert.notEqual(w.address, '127.0.0.1');
      assert.equal(w.labels['trellis.dev/tls-mode'], 'mtls', `${w.name}: its identity was proven`);
    }
  }).catch((err: Error) => assert.fail(`${err.message}\nv1: ${v1.out()}\nv2: ${v2.out()}`));

  // The control plane scrapes both sidecars over mutual TLS before any
  // traffic (a series first seen in a target's first scrape is its baseline).
  const targets = await waitFor('both sidecars scraped over mTLS', async () => {
    const items = ((await api('GET', '/api/v1/metrics/targets')).json?.items ?? []) as { address: string; ok: boolean }[];
    return [hostA, hostB].every((h) => items.some((x) => x.address.startsWith(`${h.address}:`) && x.ok)) ? items : undefined;
  }, 60_000).catch(async (err: Error) => assert.fail(`${err.message}\ntargets: ${JSON.stringify((await api('GET', '/api/v1/metrics/targets')).json)}\n${cp.out().split('\n').filter((l) => l.includes('metrics')).join('\n')}`));

  // 4. A caller on host a samples reviews through its sidecar.
  const sample = async (sa: string, name: string, during?: () => Promise<void>, env: NodeJS.ProcessEnv = {}): Promise<{ status: number; app?: string; peer?: string; error?: string }[]> => {
    const out = path.join(dir, `${name}.json`);
    const c = run(hostA, ['--service', sa, '--workload', name, '--port', '9000', '--', process.execPath, path.join(APPS, 'http-sampler.ts'), 'http://reviews:9080/'], await token(sa, name), { OUT: out, COUNT: '20', ...env });
    if (during) {
      await waitFor('the sampler started', () => (c.out().includes('"event":"app_started"') ? true : undefined));
      await during();
    }
    const code = await c.exit;
    assert.equal(code, 0, c.out());
    return JSON.parse(readFileSync(out, 'utf8')) as { status: number; app?: string; peer?: string }[];
  };
  let answers = await sample('client', 'client-1');
  assert.deepEqual([...new Set(answers.map((a) => `${a.status} ${a.app}`))], ['200 v1'], JSON.stringify(answers));
  // mTLS across hosts: the app on host a... or b sees the caller's SPIFFE ID from the verified certificate.
  assert.ok(answers.every((a) => a.peer === 'spiffe://cluster.local/ns/default/sa/client'), JSON.stringify(answers[0]));

  // 5. The canary moves to v2 (host b).
  assert.equal((await api('POST', '/api/v1/apply', canary(0, 100))).status, 200);
  await new Promise((r) => setTimeout(r, 1000));
  answers = await sample('client', 'client-2');
  assert.deepEqual([...new Set(answers.map((a) => `${a.status} ${a.app}`))], ['200 v2'], JSON.stringify(answers));

  // 5b. Telemetry across hosts: the control plane scrapes the sidecars on
  // hosts a and b over mutual TLS (their admin ports stay on their own
  // loopback), so the golden metrics show both workloads' traffic.
  const golden = await waitFor('golden metrics for reviews-1 (host a) and reviews-2 (host b)', async () => {
    const r = await api('GET', '/api/v1/metrics/workloads?window=5m');
    const rows = ((r.json?.items ?? []) as { name: string; requests: number }[]).filter((w) => w.name.startsWith('reviews-') && w.requests > 0);
    return rows.length === 2 ? rows : undefined;
  }, 30_000).catch(async (err: Error) => assert.fail(`${err.message}\nworkloads: ${JSON.stringify((await api('GET', '/api/v1/metrics/workloads?window=5m')).json)}`));
  t.diagnostic(`golden metrics across hosts: ${golden.map((w) => `${w.name} ${w.requests} requests`).join(', ')}`);
  const onA = targets.find((x) => x.address.startsWith(`${hostA.address}:`))!;
  // From host b, a client without the control plane's certificate cannot read host a's metrics listener.
  const probe = `const tls=require('node:tls');const [h,p]=process.argv[1].split(':');let data='';const s=tls.connect({host:h,port:+p,rejectUnauthorized:false},()=>s.write('GET /stats/prometheus HTTP/1.1\\r\\nhost: x\\r\\nconnection: close\\r\\n\\r\\n'));s.on('data',(d)=>data+=d);s.on('error',(e)=>{console.log(JSON.stringify({data,error:e.code||e.message}));process.exit(0)});s.on('close',()=>{console.log(JSON.stringify({data}));process.exit(0)});setTimeout(()=>{console.log(JSON.stringify({data,error:'timeout'}));process.exit(0)},10000);`;
  const anon = await new Promise<string>((resolve) => {
    const c = hostB.spawn(process.execPath, ['-e', probe, onA.address], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.once('exit', () => resolve(out));
  });
  const got = JSON.parse(anon) as { data: string; error?: string };
  assert.doesNotMatch(got.data, /istio_requests_total/, 'an anonymous client read the metrics');
  assert.ok(got.error !== undefined, `refused in the handshake: ${anon}`);

  // 6. Authorization: another identity is refused by reviews' sidecar.
  answers = await sample('intruder', 'intruder-1');
  assert.deepEqual([...new Set(answers.map((a) => a.status))], [403], JSON.stringify(answers));

  // 7. The control plane's host cut off for 3 s while a caller sends a
  // request every 100 ms: the data plane keeps serving its last config, and
  // the proxies reconnect once it is back.
  let cutAt = 0;
  answers = await sample('client', 'client-3', async () => {
    await new Promise((r) => setTimeout(r, 500));
    await cpHost.setLink(false);
    cutAt = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    await cpHost.setLink(true);
  }, { COUNT: '60', INTERVAL_MS: '100' });
  assert.ok(cutAt > 0);
  assert.deepEqual([...new Set(answers.map((a) => `${a.status} ${a.app}`))], ['200 v2'], `requests failed while the control plane was away: ${JSON.stringify(answers.filter((a) => a.status !== 200))}`);
  const back = await waitFor('the proxies reconnected to the control plane', async () => {
    const r = await api('GET', '/api/v1/proxies');
    const ids = ((r.json?.proxies ?? []) as { nodeId: string }[]).map((p) => p.nodeId);
    return ids.includes('default/reviews-1') && ids.includes('default/reviews-2') ? ids : undefined;
  }, 60_000);
  assert.ok(back.length >= 2);

  // 8. A workload host cut off mid-load: with v1 (host a) and v2 (host b)
  // both behind reviews, retries and outlier detection, host b's veth goes
  // down while a caller sends a request every 50 ms; calls fail over to v1.
  assert.equal((await api('DELETE', '/api/v1/resources/HTTPRoute/default/reviews')).status, 200);
  const policies = await api('POST', '/api/v1/apply', [
    { apiVersion: 'trellis.dev/v1alpha1', kind: 'RetryPolicy', metadata: { name: 'reviews-retries' }, spec: { targetRef: { kind: 'Service', name: 'reviews' }, attempts: 2, perTryTimeout: '300ms', retryOn: ['5xx', 'reset', 'connect-failure', 'gateway-error'] } },
    { apiVersion: 'trellis.dev/v1alpha1', kind: 'OutlierDetectionPolicy', metadata: { name: 'reviews-outliers' }, spec: { targetRef: { kind: 'Service', name: 'reviews' }, consecutiveGatewayErrors: 2, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 50 } },
  ]);
  assert.equal(policies.status, 200, JSON.stringify(policies.json));
  await new Promise((r) => setTimeout(r, 1000));
  answers = await sample('client', 'client-4', async () => {
    await new Promise((r) => setTimeout(r, 1000));
    await hostB.setLink(false);
  }, { COUNT: '100', INTERVAL_MS: '50' });
  await hostB.setLink(true);
  const ok = answers.filter((a) => a.status === 200).length;
  const apps = new Set(answers.filter((a) => a.status === 200).map((a) => a.app));
  t.diagnostic(`host b cut off mid-load: ${ok}/${answers.length} requests succeeded (${((100 * ok) / answers.length).toFixed(1)}%), answered by ${[...apps].sort().join(', ')}`);
  assert.ok(apps.has('v1') && apps.has('v2'), 'both hosts answered before the cut');
  assert.ok(ok / answers.length >= 0.9, `success rate ${ok}/${answers.length}: ${JSON.stringify(answers.filter((a) => a.status !== 200).slice(0, 5))}`);
  assert.ok(answers.slice(-20).every((a) => a.status === 200 && a.app === 'v1'), `after the cut only v1 answers: ${JSON.stringify(answers.slice(-20))}`);
});
