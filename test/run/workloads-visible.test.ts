// Workloads started with `trellis run` are visible where an operator looks:
// `trellis get workloads` lists them beside declared ones, `trellis describe
// service` lists them as the service's endpoints, and they have readable
// names (service, version, a short suffix; never the PID). A run whose app
// port is already taken by another process refuses to start instead of
// pointing the endpoint at that process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import path from 'node:path';
import { freePort } from '../../src/runner/ports.ts';
import { APPS, TRELLIS, apply, controlPlane, events, service, tempDir, trellisRun, waitFor, workloads } from './harness.ts';
import { writeFileSync } from 'node:fs';

function cli(args: string[], server: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [TRELLIS, ...args], { env: { ...process.env, NODE_NO_WARNINGS: '1', TRELLIS_SERVER: server }, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('trellis run workloads: readable names, listed by get workloads and describe service; a taken app port is refused', { timeout: 90_000 }, async (t) => {
  const cp = await controlPlane(t);
  await apply(cp, service('reviews', 9080, 'http'));
  await apply(cp, {
    apiVersion: 'trellis.dev/v1alpha1', kind: 'Workload', metadata: { name: 'reviews-legacy', namespace: 'default', labels: { app: 'reviews', version: 'v0' } },
    spec: { address: '10.0.0.9', ports: [{ name: 'http', port: 9080 }] },
  });
  const started: string[] = [];
  for (const version of ['v1', 'v2']) {
    const port = await freePort();
    const r = trellisRun(t, cp, ['--service', 'reviews', '--label', `version=${version}`, '--port', `${port}:http`, '--', process.execPath, path.join(APPS, 'http-server.ts'), String(port), `reviews-${version}`]);
    await waitFor(`reviews ${version} app started`, () => (events(r.stderr()).some((e) => e.event === 'app_started') ? true : undefined));
  }
  for (const w of await waitFor('both registered', async () => {
    const ws = await workloads(cp);
    return ws.length === 2 ? ws : undefined;
  })) started.push(w.name);
  for (const [i, v] of ['v1', 'v2'].entries()) assert.match(started.sort()[i]!, new RegExp(`^reviews-${v}-[a-z0-9]{5}$`), 'service, version, short suffix');

  const get = await cli(['get', 'workloads'], cp.apiUrl);
  assert.equal(get.code, 0, get.stderr);
  const names = get.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0]);
  assert.deepEqual(names, ['reviews-legacy', ...started.sort()]);
  const byLabel = await cli(['get', 'workloads', '-l', 'version=v2', '-o', 'name'], cp.apiUrl);
  assert.equal(byLabel.stdout.trim(), `workload.trellis.dev/${started.find((n) => n.includes('-v2-'))}`);
  const one = await cli(['get', 'workload', started[0]!, '-o', 'json'], cp.apiUrl);
  assert.equal(one.code, 0, one.stderr);
  const doc = JSON.parse(one.stdout) as { metadata: { annotations: Record<string, string> }; spec: Record<string, unknown> };
  assert.ok(doc.metadata.annotations['trellis.dev/registered-at']);
  assert.equal(doc.spec.joinToken, undefined);

  const describe = await cli(['describe', 'service', 'reviews'], cp.apiUrl);
  assert.equal(describe.code, 0, describe.stderr);
  const endpoints = describe.stdout.slice(describe.stdout.indexOf('Endpoints:'));
  assert.match(endpoints, /^Endpoints:\n {2}Workload\s+Address\s+Ports\s+Version\s+Source\n/);
  assert.match(endpoints, /reviews-legacy\s+10\.0\.0\.9\s+9080->9080\s+v0\s+declared/);
  for (const n of started) assert.match(endpoints, new RegExp(`${n}\\s+127\\.0\\.0\\.1\\s+9080->\\d+ \\(sidecar \\d+\\)\\s+v[12]\\s+registered`));

  // STRICT would make the two workloads started without a join token unreachable: apply says so.
  const strictFile = path.join(tempDir(t), 'strict.yaml');
  writeFileSync(strictFile, 'apiVersion: trellis.dev/v1alpha1\nkind: MeshTLS\nmetadata: { name: strict, namespace: default }\nspec: { mode: STRICT }\n');
  const strict = await cli(['apply', '--dry-run', '-f', strictFile], cp.apiUrl);
  assert.equal(strict.code, 0, strict.stderr);
  assert.match(strict.stderr, new RegExp(`Warning: meshtls\\.trellis\\.dev/strict: STRICT locks out 2 workload\\(s\\) that have no mesh identity, .*: default/${started[0]}, default/${started[1]}; restart them with a join token`));

  // Another process already listens on the app's port: refused, not registered.
  const squatter = net.createServer();
  squatter.listen(0, '127.0.0.1');
  await once(squatter, 'listening');
  t.after(() => new Promise<void>((r) => squatter.close(() => r())));
  const taken = (squatter.address() as net.AddressInfo).port;
  const refused = trellisRun(t, cp, ['--service', 'reviews', '--label', 'version=v3', '--port', `${taken}:http`, '--', process.execPath, path.join(APPS, 'http-server.ts'), String(taken), 'reviews-v3']);
  assert.equal((await refused.exit).code, 1);
  assert.match(refused.stderr(), new RegExp(`trellis run: the app port 127\\.0\\.0\\.1:${taken} is already in use \\(another process is listening there\\): the workload's endpoint would reach that process, not this app\\. Stop it, or give the app another port with --port`));
  assert.ok(!(await workloads(cp)).some((w) => w.name.startsWith('reviews-v3-')), 'nothing registered for the refused run');
});
