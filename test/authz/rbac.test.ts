// RBAC through a real proxy: ALLOW / DENY by path, method, headers and source
// IP; DENY evaluated first and winning; deny-all; the denial metric with the
// policy's name; gRPC callers get PERMISSION_DENIED.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { metric, rbacFilter, request, startApp, startInboundProxy } from './kit.ts';

const anyone = [{ any: true }];

test('ALLOW by path prefix and method; everything else is 403 and counted with the policy name', async (t) => {
  const app = await startApp(t);
  const { proxy, port } = await startInboundProxy(t, app, [
    rbacFilter('ALLOW', {
      'ns[shop]-policy[public-read]-rule[0]': {
        permissions: [{ andRules: { rules: [{ urlPath: { path: { prefix: '/public/' } } }, { header: { name: ':method', stringMatch: { exact: 'GET' } } }] } }],
        principals: anyone,
      },
    }),
  ]);
  assert.equal((await request(port, { path: '/public/a?x=1' })).status, 200);
  const post = await request(port, { method: 'POST', path: '/public/a' });
  assert.equal(post.status, 403);
  assert.equal(post.headers['x-trellis-proxy-error'], 'FORBIDDEN');
  // The reason names the policy and the caller, in a header and in the body.
  const reason = 'no ALLOW rule of AuthorizationPolicy shop/public-read matched; caller: a caller without a mesh identity (plaintext)';
  assert.equal(post.headers['x-trellis-proxy-error-reason'], reason);
  assert.equal(post.body, `forbidden by authorization policy: ${reason}\n`);
  const priv = await request(port, { path: '/private' });
  assert.equal(priv.status, 403);
  assert.equal(metric(proxy, 'trellis_authz_denied_total', { policy: 'public-read', namespace: 'shop' }), 2);
});

test('DENY is evaluated first and wins over a matching ALLOW', async (t) => {
  const app = await startApp(t);
  const { proxy, port } = await startInboundProxy(t, app, [
    rbacFilter('DENY', {
      'ns[shop]-policy[no-admin]-rule[0]': { permissions: [{ urlPath: { path: { prefix: '/admin' } } }], principals: anyone },
      'ns[shop]-policy[no-debug-header]-rule[0]': { permissions: [{ header: { name: 'x-debug', presentMatch: true } }], principals: anyone },
    }),
    rbacFilter('ALLOW', { 'ns[shop]-policy[allow-all]-rule[0]': { permissions: [{ any: true }], principals: anyone } }),
  ]);
  assert.equal((await request(port, { path: '/orders' })).status, 200);
  const admin = await request(port, { path: '/admin/users' });
  assert.equal(admin.status, 403);
  assert.match(admin.headers['x-trellis-proxy-error-reason'] as string, /^denied by AuthorizationPolicy shop\/no-admin \(a DENY rule matched\); caller: /);
  assert.equal((await request(port, { path: '/orders', headers: { 'x-debug': '1' } })).status, 403);
  assert.equal(metric(proxy, 'trellis_authz_denied_total', { policy: 'no-admin', namespace: 'shop' }), 1);
  assert.equal(metric(proxy, 'trellis_authz_denied_total', { policy: 'no-debug-header', namespace: 'shop' }), 1);
  assert.equal(metric(proxy, 'trellis_authz_denied_total', { policy: 'allow-all', namespace: 'shop' }), 0);
});

test('deny-all: an ALLOW config whose only policy never matches denies every request', async (t) => {
  const app = await startApp(t);
  const { proxy, port } = await startInboundProxy(t, app, [
    rbacFilter('ALLOW', { 'ns[shop]-policy[deny-all]-rule[0]': { permissions: [{ notRule: { any: true } }], principals: [{ notId: { any: true } }] } }),
  ]);
  for (const path of ['/', '/x', '/admin']) assert.equal((await request(port, { path })).status, 403);
  assert.equal(metric(proxy, 'trellis_authz_denied_total', { policy: 'deny-all', namespace: 'shop' }), 3);
});

test('header values, hosts and source IP blocks as conditions', async (t) => {
  const app = await startApp(t);
  const { port } = await startInboundProxy(t, app, [
    rbacFilter('ALLOW', {
      'ns[shop]-policy[by-header]-rule[0]': {
        permissions: [{ andRules: { rules: [{ header: { name: 'x-tenant', stringMatch: { exact: 'acme' } } }, { header: { name: ':authority', stringMatch: { prefix: 'app.' } } }] } }],
        principals: [{ directRemoteIp: { addressPrefix: '127.0.0.0', prefixLen: 8 } }],
      },
      'ns[shop]-policy[from-elsewhere]-rule[0]': {
        permissions: [{ urlPath: { path: { exact: '/other' } } }],
        principals: [{ directRemoteIp: { addressPrefix: '10.0.0.0', prefixLen: 8 } }],
      },
    }),
  ]);
  assert.equal((await request(port, { headers: { 'x-tenant': 'acme' } })).status, 200);
  assert.equal((await request(port, { headers: { 'x-tenant': 'globex' } })).status, 403);
  assert.equal((await request(port, { headers: { 'x-tenant': 'acme' }, host: 'other.shop' })).status, 403);
  // /other is allowed only from 10/8: the loopback caller is refused.
  assert.equal((await request(port, { path: '/other' })).status, 403);
});

test('gRPC callers are refused with PERMISSION_DENIED (trailers-only)', async (t) => {
  const app = await startApp(t);
  const { port } = await startInboundProxy(t, app, [
    rbacFilter('DENY', { 'ns[shop]-policy[no-grpc-delete]-rule[0]': { permissions: [{ urlPath: { path: { exact: '/shop.Orders/Delete' } } }], principals: anyone } }),
  ]);
  const client = http2.connect(`http://127.0.0.1:${port}`);
  t.after(() => client.close());
  const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    const s = client.request({ ':method': 'POST', ':path': '/shop.Orders/Delete', 'content-type': 'application/grpc', te: 'trailers' });
    s.on('response', (h) => resolve(h));
    s.on('error', reject);
    s.end(Buffer.from([0, 0, 0, 0, 0]));
    s.resume();
  });
  assert.equal(headers[':status'], 200);
  assert.equal(headers['grpc-status'], '7');
  assert.equal(headers['x-trellis-proxy-error'], 'FORBIDDEN');
});
