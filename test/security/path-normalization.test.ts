// Authorization bypass by path (issue 13): a DENY policy on /admin and
// /admin/* must hold whatever spelling the caller uses, and the backend must
// be sent the path that was authorized. Real proxy, real app, raw requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { rbacFilter, startApp, startInboundProxy } from '../authz/kit.ts';
import { buildProxyConfig } from '../../src/proxy/config/envoy.ts';
import { get, rawRequest } from './raw.ts';

const denyAdmin = rbacFilter('DENY', {
  'ns[shop]-policy[no-admin]-rule[0]': {
    permissions: [{ orRules: { rules: [{ urlPath: { path: { exact: '/admin' } } }, { urlPath: { path: { prefix: '/admin/' } } }] } }],
    principals: [{ any: true }],
  },
});

async function proxyWith(t: Parameters<typeof startApp>[0], hcm: Record<string, unknown>): Promise<number> {
  const app = await startApp(t);
  return (await startInboundProxy(t, app, [denyAdmin], { hcm })).port;
}

test('every spelling of /admin from the issue is denied or normalized, and the app sees the normalized path', async (t) => {
  const port = await proxyWith(t, {});
  for (const p of ['/admin', '/admin/users', '/public/../admin', '/./admin', '/%61dmin', '/admin;x', '/admin/;x/users', '/%2e%2e/admin', '/public/..;/admin', '/a\\..\\admin']) {
    const r = await rawRequest(port, get(p));
    assert.equal(r.status, 403, `${p}: ${r.head}`);
  }
  // Escaped slashes are refused by default.
  const esc = await rawRequest(port, get('/admin%2f..'));
  assert.equal(esc.status, 400, esc.head);
  assert.match(esc.body, /escaped slash/);
  // Allowed requests reach the app normalized; the query is untouched.
  const ok = await rawRequest(port, get('/shop/./items/../cart;x?q=/../a'));
  assert.equal(ok.status, 200, ok.head);
  assert.equal(JSON.parse(ok.body).path, '/shop/cart?q=/../a');
  const up = await rawRequest(port, get('/%7euser/%41'));
  assert.equal(JSON.parse(up.body).path, '/~user/A');
  // Case is kept: /ADMIN is another path (docs/security.md says so).
  const upper = await rawRequest(port, get('/ADMIN'));
  assert.equal(upper.status, 200);
  assert.equal(JSON.parse(upper.body).path, '/ADMIN');
});

test('merge slashes and the escaped-slash actions, as the listener says', async (t) => {
  const merge = await proxyWith(t, { mergeSlashes: true, pathWithEscapedSlashesAction: 'UNESCAPE_AND_FORWARD' });
  assert.equal((await rawRequest(merge, get('//admin'))).status, 403);
  assert.equal((await rawRequest(merge, get('/public%2F..%2Fadmin'))).status, 403);
  assert.equal(JSON.parse((await rawRequest(merge, get('/a//b%2fc'))).body).path, '/a/b/c');

  const redirect = await proxyWith(t, { mergeSlashes: true, pathWithEscapedSlashesAction: 'UNESCAPE_AND_REDIRECT' });
  const r = await rawRequest(redirect, get('/x%2F..%2Fadmin?a=1'));
  assert.equal(r.status, 307, r.head);
  assert.match(r.head, /\r\nlocation: \/admin\?a=1\r\n/i);

  const keep = await proxyWith(t, { normalizePath: true, pathWithEscapedSlashesAction: 'KEEP_UNCHANGED' });
  const k = await rawRequest(keep, get('/files/a%2fb'));
  assert.equal(k.status, 200);
  assert.equal(JSON.parse(k.body).path, '/files/a%2Fb');
  // Without merge, //admin is a different path (an empty first segment).
  assert.equal((await rawRequest(keep, get('//admin'))).status, 200);
});

test('HTTP/2 requests are normalized the same way', async (t) => {
  const port = await proxyWith(t, {});
  const client = http2.connect(`http://127.0.0.1:${port}`);
  t.after(() => client.close());
  const ask = (path: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const s = client.request({ ':path': path, ':authority': 'app.shop' });
    let body = '';
    let status = 0;
    s.on('response', (h) => (status = Number(h[':status'])));
    s.on('data', (c: Buffer) => (body += c));
    s.on('end', () => resolve({ status, body }));
    s.on('error', reject);
    s.end();
  });
  assert.equal((await ask('/public/../admin')).status, 403);
  assert.equal((await ask('/%61dmin/x')).status, 403);
  assert.equal(JSON.parse((await ask('/a/./b/../c')).body).path, '/a/c');
});

test('the HCM fields are read strictly: normalizePath, mergeSlashes, pathWithEscapedSlashesAction', () => {
  const listener = (extra: object) => ({
    version: '1',
    listeners: [{
      name: 'l', address: { socketAddress: { address: '127.0.0.1', portValue: 0 } },
      filterChains: [{ filters: [{ name: 'hcm', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', statPrefix: 'l', routeConfig: { name: 'r', virtualHosts: [] }, httpFilters: [{ name: 'envoy.filters.http.router' }], ...extra } }] }],
    }],
    clusters: [],
  });
  const read = (extra: object) => {
    const b = buildProxyConfig(listener(extra));
    assert.ok(b.ok, JSON.stringify(b));
    return b.config.listeners[0]!.filterChains[0]!.http!.pathNormalization;
  };
  assert.equal(read({}), undefined);
  assert.deepEqual(read({ mergeSlashes: true }), { normalize: true, mergeSlashes: true, escapedSlashes: 'reject' });
  assert.deepEqual(read({ normalizePath: false, pathWithEscapedSlashesAction: 'UNESCAPE_AND_REDIRECT' }), { normalize: false, mergeSlashes: false, escapedSlashes: 'unescape-and-redirect' });
  assert.deepEqual(read({ pathWithEscapedSlashesAction: 1 }), { normalize: true, mergeSlashes: false, escapedSlashes: 'keep' });
  const bad = buildProxyConfig(listener({ pathWithEscapedSlashesAction: 'DECODE' }));
  assert.ok(!bad.ok);
  assert.match(JSON.stringify(bad), /pathWithEscapedSlashesAction/);
});
