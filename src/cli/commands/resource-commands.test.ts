// The resource commands as an operator runs them: `node bin/trellis.ts ...`
// child processes against a real API server on an ephemeral port.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { openMemoryStore } from '../../control-plane/store/memory.ts';
import { startApi, type StartedApi } from '../../control-plane/api/server.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(root, 'bin/trellis.ts');
let api: StartedApi;
let store: ReturnType<typeof openMemoryStore>;
let dir: string;

before(async () => {
  store = openMemoryStore();
  api = await startApi({ store, port: 0 });
  dir = mkdtempSync(path.join(tmpdir(), 'trellis-cli-'));
});
after(async () => {
  await api.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function trellis(args: string[], opts: { stdin?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [bin, ...args], { env: { ...process.env, TRELLIS_SERVER: api.url, NODE_NO_WARNINGS: '1' }, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(opts.stdin ?? '');
  });
}

const MANIFESTS = `apiVersion: trellis.dev/v1alpha1
kind: Service
metadata:
  name: reviews
  labels: {app: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata:
  name: reviews-v1
  labels: {app: reviews, version: v1}
spec:
  selector: {app: reviews, version: v1}
  ports: [{name: http, port: 9080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - backendRefs:
    - {name: reviews-v1, port: 9080, weight: 90}
    - {name: reviews-v2, port: 9080, weight: 10}
`;

test('apply, get, describe, dry-run diff, delete', async () => {
  const file = path.join(dir, 'reviews.yaml');
  writeFileSync(file, MANIFESTS);
  let r = await trellis(['apply', '-f', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, [
    'service.trellis.dev/reviews created',
    'service.trellis.dev/reviews-v1 created',
    'httproute.gateway.networking.k8s.io/reviews created',
    '',
  ].join('\n'));
  assert.equal(r.stderr, 'Warning: httproute.gateway.networking.k8s.io/reviews: spec.rules[0].backendRefs[1]: backend Service default/reviews-v2 not found\n');

  r = await trellis(['apply', '-f', dir]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^httproute\.gateway\.networking\.k8s\.io\/reviews unchanged$/m);

  writeFileSync(file, MANIFESTS.replace('weight: 10', 'weight: 20'));
  r = await trellis(['apply', '-f', file, '--dry-run']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.includes([
    '--- HTTPRoute default/reviews (current)',
    '+++ HTTPRoute default/reviews (applied)',
  ].join('\n')));
  assert.match(r.stdout, /^-\s+weight: 10\n\+\s+weight: 20$/m);
  assert.match(r.stdout, /^httproute\.gateway\.networking\.k8s\.io\/reviews configured \(dry run\)$/m);

  // Read-only commands run side by side (each is a process start).
  const [table, byLabel, asJson, described] = await Promise.all([
    trellis(['get', 'svc']),
    trellis(['get', 'services', '-l', 'version in (v1)', '-o', 'name']),
    trellis(['get', 'hr', 'reviews', '-o', 'json']),
    trellis(['describe', 'httproute', 'reviews']),
  ]);
  assert.equal(table.code, 0, table.stderr);
  assert.deepEqual(table.stdout.trimEnd().split('\n').map((l) => l.replace(/\d+s$/, '<age>')), [
    'NAME         PORTS       SELECTOR                 AGE',
    'reviews      9080/http   app=reviews              <age>',
    'reviews-v1   9080/http   app=reviews,version=v1   <age>',
  ]);
  assert.equal(byLabel.stdout, 'service.trellis.dev/reviews-v1\n');
  const obj = JSON.parse(asJson.stdout) as { status: { conditions: { type: string; reason: string }[] } };
  assert.equal(obj.status.conditions[1]?.reason, 'BackendNotFound');
  assert.equal(described.code, 0, described.stderr);
  assert.match(described.stdout, /^Rules:\n {2}\[0\] \* -> reviews-v1:9080 90%, reviews-v2:9080 10%$/m);
  assert.match(described.stdout, /^ {2}ResolvedRefs\s+False\s+BackendNotFound\s+backend not found: Service default\/reviews-v2$/m);
  assert.match(described.stdout, /^Warnings:\n {2}spec\.rules\[0\]\.backendRefs\[1\]: backend Service default\/reviews-v2 not found$/m);

  r = await trellis(['delete', '-f', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, [
    'service.trellis.dev "reviews" deleted',
    'service.trellis.dev "reviews-v1" deleted',
    'httproute.gateway.networking.k8s.io "reviews" deleted',
    '',
  ].join('\n'));
  r = await trellis(['delete', 'svc', 'reviews']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'Error from server (NotFound): Service default/reviews not found\n');
  r = await trellis(['get', 'hr']);
  assert.equal(r.stderr, 'No resources found in default namespace.\n');
});

test('errors name the file, line, resource and field; nothing is sent', async () => {
  const file = path.join(dir, 'bad.yaml');
  writeFileSync(file, MANIFESTS.replace('weight: 10', 'weight: -1').replace('ports: [{name: http, port: 9080}]\n---\napiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata:\n  name: reviews-v1', 'ports: [{name: http, port: 9080}]\n---\napiVersion: trellis.dev/v1alpha1\nkind: Service\nmetadata:\n  name: reviews-v1\n  colour: blue'));
  const r = await trellis(['apply', '-f', file]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, [
    `${file}:14: Service default/reviews-v1: metadata.colour: unknown field`,
    `${file}:29: HTTPRoute default/reviews: spec.rules[0].backendRefs[1].weight: must be >= 0`,
    '',
  ].join('\n'));
  // A port that was just free: nothing listens there.
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const closedPort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const [after, unreachable, usage, badSel] = await Promise.all([
    trellis(['get', 'svc', '-o', 'name']),
    trellis(['get', 'svc', '--server', `http://127.0.0.1:${closedPort}`]),
    trellis(['get']),
    trellis(['get', 'svc', '-l', 'a in (b']),
  ]);
  assert.equal(after.stdout, '', 'an invalid file applies nothing');
  assert.equal(unreachable.code, 1);
  assert.ok(unreachable.stderr.startsWith(`error: cannot reach the control plane at http://127.0.0.1:${closedPort} (ECONNREFUSED)`), unreachable.stderr);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /you must specify the type of resource to get/);
  assert.equal(badSel.stderr, 'Error from server (BadRequest): label selector "a in (b": unbalanced parentheses\n');
});

test('apply -f - reads manifests from stdin', async () => {
  const workload = 'apiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: reviews-1\n  namespace: shop\n  labels: {app: reviews}\nspec:\n  address: 10.0.0.7\n  ports: [{name: http, port: 9080}]\n';
  const r = await trellis(['apply', '-f', '-'], { stdin: workload });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'workload.trellis.dev/reviews-1 created\n');
  const bad = await trellis(['apply', '-f', '-'], { stdin: workload.replace('10.0.0.7', '"10.0.0.7 "') });
  assert.equal(bad.stderr, '<stdin>:8: Workload shop/reviews-1: spec.address: must be an IP address or a DNS name\n');
});

test('describe an AuthorizationPolicy: its target, action and rules; accepted as a policy, not a route', async () => {
  const manifest = `apiVersion: trellis.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: ratings-no-admin}
spec:
  selector: {app: ratings}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
`;
  const applied = await trellis(['apply', '-f', '-'], { stdin: manifest });
  assert.equal(applied.code, 0, applied.stderr);
  const r = await trellis(['describe', 'authorizationpolicy', 'ratings-no-admin']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Applies to:\n {2}workloads labelled app=ratings in namespace default$/m);
  assert.match(r.stdout, /^Action:\n {2}DENY: a request matching any rule is denied/m);
  assert.match(r.stdout, /^Rules:\n {2}\[0\] to paths=\/admin\*$/m);
  assert.match(r.stdout, /^ {2}Accepted\s+True\s+Accepted\s+Policy is accepted/m);
  assert.doesNotMatch(r.stdout, /Route is accepted|<no backends>|ResolvedRefs/);
  await trellis(['delete', 'authorizationpolicy', 'ratings-no-admin']);
});
