// The API's credentials, on a control plane bound beyond loopback (an
// address on a private test bridge) and on loopback with requireAuth:
// anonymous writes 401, a viewer cannot write (403), a registrar registers
// only its own identity, cross-origin and cookie-without-CSRF writes are
// refused; and the CLI's contexts (`trellis login`, --context).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.ts';
import { createTestNetwork, hostsUnsupported } from '../util/hosts.ts';
import { main } from '../../src/cli/main.ts';
import { loadConfig, resolveConnection } from '../../src/cli/contexts.ts';
import { tlsFetch } from '../../src/lib/tls-fetch.ts';

const svc = (name: string) => ({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 9080 }] } });
const workload = (name: string, namespace: string, serviceAccount: string) => ({ name, namespace, serviceAccount, address: '198.19.0.99', ports: [{ port: 9080, protocol: 'http' }], labels: { app: name }, ttlSeconds: 60 });

interface Answer { status: number; json: any; headers: Headers }
/** The CA an https control plane's certificate chains to (set once it started). */
let meshCa: string | undefined;
async function call(base: string, method: string, p: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers = {
    ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
    ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
    ...opts.headers,
  };
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  const res = base.startsWith('https:')
    ? await tlsFetch(`${base}${p}`, { method, headers, ...(body === undefined ? {} : { body }), ca: meshCa! })
    : await fetch(`${base}${p}`, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null, headers: res.headers };
}

function tempDir(t: { after(fn: () => unknown): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-auth-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('bound beyond loopback: 401 without credentials, 403 for the wrong role, registrars register only their identity', async (t) => {
  const why = await hostsUnsupported();
  if (why) return t.skip(why);
  const net = await createTestNetwork();
  t.after(() => net.close());
  const dataDir = path.join(tempDir(t), 'data');
  const cp: ControlPlane = await startControlPlane({ dataDir, host: net.gateway, apiPort: 0, xdsPort: 0, log: () => {} });
  t.after(() => cp.close());
  assert.equal(cp.authRequired, true);
  const base = cp.apiUrl;
  assert.ok(base.startsWith(`https://${net.gateway}:`), `beyond loopback the API is HTTPS: ${base}`);
  meshCa = cp.identity!.ca.trustBundle().pem;

  // Public: health, the trust bundle, the dashboard's files.
  assert.equal((await call(base, 'GET', '/healthz')).status, 200);
  assert.equal((await call(base, 'GET', '/api/v1/identity/trust-bundle')).status, 200);

  // Anonymous: 401 with how to fix it.
  let r = await call(base, 'POST', '/api/v1/apply', { body: svc('reviews') });
  assert.equal(r.status, 401);
  assert.equal(r.json.error.code, 'unauthenticated');
  assert.match(r.json.error.message, /trellis login --server/);
  assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
  for (const [m, p, body] of [['GET', '/api/v1/resources/services'], ['POST', '/api/v1/registry/workloads', workload('w', 'shop', 'cart')], ['POST', '/api/v1/identity/join-tokens', { namespace: 'shop', workload: 'w' }], ['GET', '/api/v1/metrics/services']] as const) {
    assert.equal((await call(base, m, p, body === undefined ? {} : { body })).status, 401, `${m} ${p}`);
  }
  r = await call(base, 'POST', '/api/v1/apply', { body: svc('reviews'), token: `tat_${'A'.repeat(43)}` });
  assert.equal(r.status, 401);
  assert.match(r.json.error.message, /unknown or revoked/);

  // The first admin token: written 0600 in a 0700 data directory.
  assert.ok(cp.adminTokenFile);
  assert.equal(statSync(cp.adminTokenFile).mode & 0o777, 0o600);
  assert.equal(statSync(dataDir).mode & 0o777, 0o700);
  const admin = readFileSync(cp.adminTokenFile, 'utf8').trim();
  assert.ok(!JSON.stringify(await cp.store.list('/trellis/auth/')).includes(admin), 'only the hash is stored');
  r = await call(base, 'POST', '/api/v1/apply', { body: svc('reviews'), token: admin });
  assert.equal(r.status, 200, JSON.stringify(r.json));

  // A viewer reads but cannot write.
  r = await call(base, 'POST', '/api/v1/auth/tokens', { token: admin, body: { name: 'ci-viewer', role: 'viewer' } });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const viewer = r.json.token as string;
  const viewerId = r.json.id as string;
  assert.equal((await call(base, 'GET', '/api/v1/resources/services/default/reviews', { token: viewer })).status, 200);
  r = await call(base, 'POST', '/api/v1/apply', { body: svc('ratings'), token: viewer });
  assert.equal(r.status, 403);
  assert.equal(r.json.error.code, 'forbidden');
  assert.match(r.json.error.message, /ci-viewer \(viewer\) may not POST \/api\/v1\/apply: that needs the admin role/);
  assert.equal((await call(base, 'DELETE', '/api/v1/resources/services/default/reviews', { token: viewer })).status, 403);
  assert.equal((await call(base, 'POST', '/api/v1/auth/tokens', { token: viewer, body: { name: 'x', role: 'admin' } })).status, 403);
  assert.equal((await call(base, 'POST', '/api/v1/registry/workloads', { token: viewer, body: workload('w', 'shop', 'cart') })).status, 403);

  // A registrar for shop/cart: its own identity only, and nothing else.
  r = await call(base, 'POST', '/api/v1/auth/tokens', { token: admin, body: { name: 'cart-registrar', role: 'registrar', namespace: 'shop', serviceAccount: 'cart' } });
  assert.equal(r.status, 201);
  const registrar = r.json.token as string;
  r = await call(base, 'POST', '/api/v1/registry/workloads', { token: registrar, body: workload('cart-1', 'shop', 'cart') });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  r = await call(base, 'POST', '/api/v1/registry/workloads', { token: registrar, body: workload('pay-1', 'shop', 'payments') });
  assert.equal(r.status, 403);
  assert.match(r.json.error.message, /may register workloads of shop\/cart only, not shop\/payments/);
  assert.equal((await call(base, 'POST', '/api/v1/registry/workloads', { token: registrar, body: workload('cart-2', 'other', 'cart') })).status, 403);
  // Someone else's workload: no heartbeat, no deregistration.
  assert.equal((await call(base, 'POST', '/api/v1/registry/workloads', { token: admin, body: workload('pay-1', 'shop', 'payments') })).status, 201);
  assert.equal((await call(base, 'PUT', '/api/v1/registry/workloads/shop/pay-1/heartbeat', { token: registrar, body: {} })).status, 403);
  assert.equal((await call(base, 'DELETE', '/api/v1/registry/workloads/shop/pay-1', { token: registrar })).status, 403);
  assert.equal((await call(base, 'PUT', '/api/v1/registry/workloads/shop/cart-1/heartbeat', { token: registrar, body: {} })).status, 200);
  assert.equal((await call(base, 'POST', '/api/v1/apply', { token: registrar, body: svc('x') })).status, 403);
  assert.equal((await call(base, 'GET', '/api/v1/resources/services', { token: registrar })).status, 403);
  assert.equal((await call(base, 'DELETE', '/api/v1/registry/workloads/shop/cart-1', { token: registrar })).status, 204);

  // A browser on another site cannot write even with a valid token.
  r = await call(base, 'POST', '/api/v1/apply', { body: svc('x'), token: admin, headers: { origin: 'http://evil.example' } });
  assert.equal(r.status, 403);
  assert.match(r.json.error.message, /cross-origin/);

  // The dashboard's session cookie: reads work, writes need the CSRF header.
  r = await call(base, 'POST', '/api/v1/auth/session', { body: { token: admin } });
  assert.equal(r.status, 200);
  const csrf = r.json.csrfToken as string;
  const cookies = r.headers.getSetCookie();
  assert.ok(cookies.some((c) => /^trellis_session=.*HttpOnly.*SameSite=Strict/.test(c)), cookies.join('\n'));
  const cookie = cookies.map((c) => c.split(';')[0]).join('; ');
  assert.equal((await call(base, 'GET', '/api/v1/resources/services', { headers: { cookie } })).status, 200);
  r = await call(base, 'POST', '/api/v1/apply', { body: svc('x'), headers: { cookie } });
  assert.equal(r.status, 403);
  assert.match(r.json.error.message, /x-trellis-csrf/);
  assert.equal((await call(base, 'POST', '/api/v1/apply', { body: svc('x'), headers: { cookie, 'x-trellis-csrf': 'forged' } })).status, 403);
  assert.equal((await call(base, 'POST', '/api/v1/apply', { body: svc('x'), headers: { cookie, 'x-trellis-csrf': csrf } })).status, 200);

  // Revoked: 401 from then on; the last admin token cannot be revoked.
  r = await call(base, 'GET', '/api/v1/auth/tokens', { token: admin });
  assert.deepEqual(r.json.items.map((x: { name: string }) => x.name).sort(), ['bootstrap-admin', 'cart-registrar', 'ci-viewer']);
  assert.ok(!JSON.stringify(r.json).includes(viewer), 'listing shows no secrets');
  assert.equal((await call(base, 'DELETE', `/api/v1/auth/tokens/${viewerId}`, { token: admin })).status, 200);
  assert.equal((await call(base, 'GET', '/api/v1/resources/services', { token: viewer })).status, 401);
  const adminId = (r.json.items as { id: string; role: string }[]).find((x) => x.role === 'admin')!.id;
  assert.equal((await call(base, 'DELETE', `/api/v1/auth/tokens/${adminId}`, { token: admin })).status, 409);

  // The CLI over HTTPS: it trusts the mesh CA only once told which (its pin), never on first use.
  const config = path.join(tempDir(t), 'config');
  const saved = process.env.TRELLIS_CONFIG;
  process.env.TRELLIS_CONFIG = config;
  t.after(() => {
    if (saved === undefined) delete process.env.TRELLIS_CONFIG;
    else process.env.TRELLIS_CONFIG = saved;
  });
  const pin = cp.identity!.ca.caPin();
  assert.equal(await main(['login', '--server', base, '--token', admin, '--context', 'remote']), 1, 'no pin, no CA file: refused');
  assert.equal(await main(['login', '--server', base, '--token', admin, '--context', 'remote', '--ca-pin', `sha256:${'0'.repeat(64)}`]), 1, 'a wrong pin: refused');
  assert.equal(loadConfig(config).contexts.length, 0);
  assert.equal(await main(['login', '--server', base, '--token', admin, '--context', 'remote', '--ca-pin', pin]), 0);
  assert.match(loadConfig(config).contexts[0]!.certificateAuthority ?? '', /BEGIN CERTIFICATE/);
  assert.equal(await main(['get', 'services', '--context', 'remote']), 0, 'https with the pinned CA and the saved token');
});

test('loopback: anonymous callers are admin unless requireAuth; a rebinding Host header is refused', async (t) => {
  const dataDir = tempDir(t);
  const open = await startControlPlane({ dataDir: path.join(dataDir, 'a'), apiPort: 0, xdsPort: 0, log: () => {}, identity: false });
  t.after(() => open.close());
  assert.equal(open.authRequired, false);
  assert.equal(open.adminTokenFile, undefined);
  assert.equal((await call(open.apiUrl, 'POST', '/api/v1/apply', { body: svc('reviews') })).status, 200);
  // A stale dashboard cookie (another control plane's token) does not lock the browser out here.
  assert.equal((await call(open.apiUrl, 'GET', '/api/v1/resources/services', { headers: { cookie: `trellis_session=tat_${'C'.repeat(43)}` } })).status, 200);
  // fetch() sets Host itself: a raw request names another host, as a DNS-rebinding page would.
  const rebound = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const u = new URL(open.apiUrl);
    const req = http.request({ host: u.hostname, port: u.port, method: 'POST', path: '/api/v1/apply', headers: { host: 'attacker.example:15080', 'content-type': 'application/json' } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(svc('reviews')));
  });
  assert.equal(rebound.status, 403);
  assert.match(rebound.body, /loopback only/);

  const locked = await startControlPlane({ dataDir: path.join(dataDir, 'b'), apiPort: 0, xdsPort: 0, log: () => {}, identity: false, requireAuth: true });
  t.after(() => locked.close());
  assert.equal(locked.authRequired, true);
  const r = await call(locked.apiUrl, 'POST', '/api/v1/apply', { body: svc('reviews') });
  assert.equal(r.status, 401);
  const admin = readFileSync(locked.adminTokenFile!, 'utf8').trim();
  assert.equal((await call(locked.apiUrl, 'POST', '/api/v1/apply', { body: svc('reviews'), token: admin })).status, 200);

  // The CLI: `trellis login` saves a context (0600), commands use it.
  const config = path.join(dataDir, 'cli', 'config');
  const saved = process.env.TRELLIS_CONFIG;
  process.env.TRELLIS_CONFIG = config;
  t.after(() => {
    if (saved === undefined) delete process.env.TRELLIS_CONFIG;
    else process.env.TRELLIS_CONFIG = saved;
  });
  assert.equal(await main(['get', 'services', '--server', locked.apiUrl]), 1, 'no context, no token: refused');
  assert.equal(await main(['login', '--server', locked.apiUrl, '--token', `tat_${'B'.repeat(43)}`, '--context', 'lab']), 1, 'a bad token is not saved');
  assert.equal(await main(['login', '--server', locked.apiUrl, '--token', admin, '--context', 'lab']), 0);
  assert.equal(statSync(config).mode & 0o777, 0o600);
  assert.equal(loadConfig(config).currentContext, 'lab');
  assert.equal(await main(['get', 'services']), 0, 'the current context carries the token');
  assert.equal(await main(['get', 'services', '--context', 'lab']), 0);
  assert.equal(await main(['get', 'services', '--context', 'nope']), 2);
  // --server elsewhere never receives the context's token.
  assert.equal(resolveConnection({ server: 'http://198.51.100.7:15080' }).token, undefined);
  assert.equal(resolveConnection({}).token, admin);
  assert.equal(await main(['token', 'create', 'ro', '--role', 'viewer']), 0);
  assert.equal(await main(['token', 'create', 'bad', '--role', 'root']), 1);
});
