// Locality from the command line: `trellis run`, `trellis node-proxy` and
// `trellis gateway` take --region/--zone, register the workload's endpoints
// in that locality and put it on their proxy's node. A LoadBalancerPolicy
// with preferZone then keeps each caller in its own zone, and fails over to
// the other zone when its own has no endpoint left.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../../src/runner/ports.ts';
import { APPS, ROOT, TRELLIS, apply, controlPlane, events, service, tempDir, trellisRun, waitFor } from './harness.ts';
import type { ControlPlane } from '../../src/control-plane/control-plane.ts';
import type { TestContext } from 'node:test';

const ZONE = { a: ['--region', 'r1', '--zone', 'zone-a'], b: ['--region', 'r1', '--zone', 'zone-b'] };

/** Which apps answered COUNT GETs of http://geo:9080/ from a client run in `zone`. */
async function answeredFrom(t: TestContext, cp: ControlPlane, dir: string, name: string, zone: string[]): Promise<Record<string, number>> {
  const out = path.join(dir, `${name}.json`);
  const client = trellisRun(t, cp, ['--service', 'caller', '--workload', name, ...zone, '--', process.execPath, path.join(APPS, 'http-sampler.ts'), 'http://geo:9080/'], { OUT: out, COUNT: '20' });
  assert.equal((await client.exit).code, 0, client.stderr());
  return tally((JSON.parse(readFileSync(out, 'utf8')) as { status: number; app?: string }[]).map((a) => (a.status === 200 ? a.app ?? '?' : String(a.status))));
}

function tally(xs: string[]): Record<string, number> {
  const o: Record<string, number> = {};
  for (const x of xs) o[x] = (o[x] ?? 0) + 1;
  return o;
}

/** 20 GETs to 127.0.0.1:port with Host geo:9080 (absolute-form when `proxy`), tallied by answering app. */
async function getsVia(port: number, proxy: boolean): Promise<Record<string, number>> {
  const seen: string[] = [];
  for (let i = 0; i < 20; i++) {
    seen.push(await new Promise<string>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port, path: proxy ? 'http://geo:9080/' : '/', headers: { host: proxy ? 'geo:9080' : 'geo.example' }, agent: false }, (res) => {
        res.resume().on('end', () => resolve(res.statusCode === 200 ? String(res.headers['x-app']) : `${res.statusCode} ${res.headers['x-trellis-proxy-error'] ?? ''}`));
      });
      req.setTimeout(3000, () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve(e.message));
      req.end();
    }));
  }
  return tally(seen);
}

function spawnTrellis(t: TestContext, args: string[]): { stderr(): string } {
  const child = spawn(process.execPath, [TRELLIS, ...args], { cwd: ROOT, env: { ...process.env, NODE_NO_WARNINGS: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exit = new Promise<void>((r) => child.once('exit', () => r()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(killer);
    }
  });
  return { stderr: () => err };
}

test('--region/--zone on run, node-proxy and gateway: preferZone keeps callers in their zone, failover leaves it', async (t) => {
  const cp = await controlPlane(t);
  const dir = tempDir(t);
  await apply(cp, service('geo', 9080, 'http'));
  await apply(cp, service('caller', 9080, 'http'));
  await apply(cp, { apiVersion: 'trellis.dev/v1alpha1', kind: 'LoadBalancerPolicy', metadata: { name: 'geo', namespace: 'default' }, spec: { targetRef: { kind: 'Service', name: 'geo' }, type: 'roundRobin', locality: { preferZone: true } } });
  await apply(cp, { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'edge', namespace: 'default' }, spec: { gatewayClassName: 'trellis', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } });
  await apply(cp, { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'geo', namespace: 'default' }, spec: { parentRefs: [{ name: 'edge' }], rules: [{ backendRefs: [{ name: 'geo', port: 9080 }] }] } });

  const servers: Record<string, ReturnType<typeof trellisRun>> = {};
  for (const [name, zone] of [['geo-a', ZONE.a], ['geo-b', ZONE.b]] as const) {
    const port = await freePort();
    servers[name] = trellisRun(t, cp, ['--service', 'geo', '--workload', name, ...zone, '--port', `${port}:http`, '--', process.execPath, path.join(APPS, 'http-server.ts'), String(port), name]);
  }
  for (const name of ['geo-a', 'geo-b']) await waitFor(`${name} started`, () => (events(servers[name]!.stderr()).some((e) => e.event === 'app_started') ? true : undefined));
  const reg = (await (await fetch(`${cp.apiUrl}/api/v1/registry/workloads`)).json()) as { items: { name: string; locality?: { region?: string; zone?: string } }[] };
  assert.deepEqual(reg.items.find((w) => w.name === 'geo-a')?.locality, { region: 'r1', zone: 'zone-a' }, 'registered in its zone');

  // Explicit-mode callers stay in their own zone.
  assert.deepEqual(await answeredFrom(t, cp, dir, 'caller-a', ZONE.a), { 'geo-a': 20 });
  assert.deepEqual(await answeredFrom(t, cp, dir, 'caller-b', ZONE.b), { 'geo-b': 20 });

  // The node proxy and the gateway carry their zone to their balancers too.
  const [npPort, npAdmin, gwPort] = [await freePort(), await freePort(), await freePort()];
  spawnTrellis(t, ['node-proxy', '--server', cp.apiUrl, '--port', String(npPort), '--admin-port', String(npAdmin), ...ZONE.b]);
  const gw = spawnTrellis(t, ['gateway', '--name', 'edge', '--server', cp.apiUrl, '--listen-address', '127.0.0.1', '--port-map', `80=${gwPort}`, '--admin-port', '0', '--drain-ms', '0', ...ZONE.b]);
  await waitFor('node proxy routes geo', async () => ((await getsVia(npPort, true))['geo-b'] ? true : undefined));
  assert.deepEqual(await getsVia(npPort, true), { 'geo-b': 20 }, 'the node proxy stays in zone b');
  await waitFor('gateway routes geo', async () => ((await getsVia(gwPort, false))['geo-b'] ? true : undefined)).catch((e: Error) => assert.fail(`${e.message}\n${gw.stderr()}`));
  assert.deepEqual(await getsVia(gwPort, false), { 'geo-b': 20 }, 'the gateway stays in zone b');

  // Zone a's only endpoint leaves: its callers fail over to zone b.
  servers['geo-a']!.child.kill('SIGTERM');
  assert.equal((await servers['geo-a']!.exit).code, 0);
  assert.deepEqual(await answeredFrom(t, cp, dir, 'caller-a2', ZONE.a), { 'geo-b': 20 });
});

test('--zone with a bad value: exit 2, naming the flag', async (t) => {
  const cp = await controlPlane(t);
  const r = trellisRun(t, cp, ['--service', 'geo', '--zone', 'zone a', '--', 'true']);
  assert.equal((await r.exit).code, 2);
  assert.match(r.stderr(), /--zone "zone a": expected 1-128 letters/);
});
