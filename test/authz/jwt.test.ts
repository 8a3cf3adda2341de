// JWT request authentication through a real proxy: valid / expired / wrong
// audience / wrong key / missing tokens, claims in RBAC rules, an HTTPS JWKS
// on a loopback server with a test CA, a JWKS refresh on an unknown kid, and
// gRPC callers getting UNAUTHENTICATED.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { jwks, jwtFilter, metric, nowS, rbacFilter, request, signer, startApp, startInboundProxy, startJwksServer, testCert, token } from './kit.ts';

const ISS = 'https://issuer.test';
const rsa = signer('RS256', 'rsa-1');
const ec = signer('ES256', 'ec-1');
const stranger = signer('RS256', 'rsa-1'); // same kid, another key

const good = (extra: Record<string, unknown> = {}) => ({ iss: ISS, sub: 'alice', aud: 'orders', exp: nowS() + 600, ...extra });
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

function provider(jwksSource: object, extra: object = {}): object {
  return { issuer: ISS, audiences: ['orders'], payloadInMetadata: 'payload', ...jwksSource, ...extra };
}

/** Istio's shape: a token is optional, but if present it must be valid. */
const optional = (name: string) => ({ rules: [{ match: { prefix: '/' }, requires: { requiresAny: { requirements: [{ providerName: name }, { allowMissing: {} }] } } }] });

test('valid, expired, wrong audience, wrong key, not yet valid, missing tokens (RS256 and ES256, inline JWKS)', async (t) => {
  const app = await startApp(t);
  const { proxy, port } = await startInboundProxy(t, app, [
    jwtFilter({ providers: { main: provider({ localJwks: { inlineString: jwks(rsa, ec) } }) }, ...optional('main') }),
  ]);
  const ok = await request(port, { headers: bearer(token(rsa, good())) });
  assert.equal(ok.status, 200);
  assert.equal(JSON.parse(ok.body).authorization, null, 'the token is not forwarded by default');
  assert.equal((await request(port, { headers: bearer(token(ec, good())) })).status, 200);
  assert.equal((await request(port, { path: `/?access_token=${token(ec, good())}` })).status, 200);
  assert.equal((await request(port)).status, 200, 'no token: allowed (allowMissing)');

  const expired = await request(port, { headers: bearer(token(rsa, good({ exp: nowS() - 3600 }))) });
  assert.equal(expired.status, 401);
  assert.equal(expired.headers['x-trellis-proxy-error'], 'UNAUTHENTICATED');
  assert.match(String(expired.headers['www-authenticate']), /^Bearer realm=".*", error="invalid_token"$/);
  assert.match(expired.body, /JWT_EXPIRED/);
  // Within the default 60 s clock skew: still valid.
  assert.equal((await request(port, { headers: bearer(token(rsa, good({ exp: nowS() - 20 }))) })).status, 200);
  assert.equal((await request(port, { headers: bearer(token(rsa, good({ nbf: nowS() + 3600 }))) })).status, 401);
  const aud = await request(port, { headers: bearer(token(rsa, good({ aud: ['billing'] }))) });
  assert.equal(aud.status, 401);
  assert.match(aud.body, /JWT_BAD_AUDIENCE/);
  const sig = await request(port, { headers: bearer(token(stranger, good())) });
  assert.equal(sig.status, 401);
  assert.match(sig.body, /JWT_BAD_SIGNATURE/);
  assert.equal((await request(port, { headers: bearer('not.a.jwt') })).status, 401);
  assert.equal((await request(port, { headers: bearer(token(rsa, good({ iss: 'https://evil.test' }))) })).status, 401);
  assert.equal(metric(proxy, 'trellis_jwt_authn_failures_total', { reason: 'JWT_EXPIRED' }), 1);
  assert.equal(metric(proxy, 'trellis_jwt_authn_failures_total', { reason: 'JWT_BAD_SIGNATURE' }), 1);
});

test('forward keeps the Authorization header; a required provider refuses a missing token', async (t) => {
  const app = await startApp(t);
  const { port } = await startInboundProxy(t, app, [
    jwtFilter({
      providers: { main: provider({ localJwks: { inlineString: jwks(rsa) } }, { forward: true }) },
      rules: [{ match: { prefix: '/health' } }, { match: { prefix: '/' }, requires: { providerName: 'main' } }],
    }),
  ]);
  const tok = token(rsa, good());
  const ok = await request(port, { headers: bearer(tok) });
  assert.equal(ok.status, 200);
  assert.equal(JSON.parse(ok.body).authorization, `Bearer ${tok}`);
  const missing = await request(port);
  assert.equal(missing.status, 401);
  assert.match(missing.body, /Jwt is missing/);
  assert.equal((await request(port, { path: '/health' })).status, 200, 'a rule without requires skips verification');
});

test('claims in authorization rules; no token passes authn but not a rule requiring a principal', async (t) => {
  const app = await startApp(t);
  const claim = (key: string, value: string) => ({
    metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }, { key }], value: { stringMatch: { exact: value } } },
  });
  const { proxy, port } = await startInboundProxy(t, app, [
    jwtFilter({ providers: { main: provider({ localJwks: { inlineString: jwks(rsa) } }) }, ...optional('main') }),
    rbacFilter('ALLOW', {
      'ns[shop]-policy[admins]-rule[0]': {
        permissions: [{ urlPath: { path: { prefix: '/admin' } } }],
        principals: [{ andIds: { ids: [claim('iss', ISS), { metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }, { key: 'groups' }], value: { listMatch: { oneOf: { stringMatch: { exact: 'admin' } } } } } }] } }],
      },
      'ns[shop]-policy[admins]-rule[1]': {
        permissions: [{ notRule: { urlPath: { path: { prefix: '/admin' } } } }],
        principals: [{ metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'principal' }], value: { presentMatch: true } } }],
      },
    }),
  ]);
  assert.equal((await request(port, { path: '/admin/x', headers: bearer(token(rsa, good({ groups: ['admin', 'dev'] }))) })).status, 200);
  assert.equal((await request(port, { path: '/admin/x', headers: bearer(token(rsa, good({ groups: ['dev'] }))) })).status, 403);
  assert.equal((await request(port, { path: '/orders', headers: bearer(token(rsa, good())) })).status, 200);
  assert.equal((await request(port, { path: '/orders' })).status, 403, 'no token: authn passes, authz needs a principal');
  assert.equal(metric(proxy, 'trellis_authz_denied_total', { policy: 'admins', namespace: 'shop' }), 2);
});

test('HTTPS JWKS from a loopback server trusted through the proxy option; unknown kid refreshes the set', async (t) => {
  const cert = await testCert();
  const server = await startJwksServer(t, jwks(rsa), cert);
  const app = await startApp(t);
  const { port } = await startInboundProxy(t, app, [
    jwtFilter({ providers: { main: provider({ remoteJwks: { httpUri: { uri: server.url, cluster: 'jwks', timeout: '2s' }, cacheDuration: '300s' } }) }, ...optional('main') }),
  ], { security: { jwks: { ca: cert.cert, minRefreshIntervalMs: 0, backoffBaseMs: 10 } } });
  assert.equal((await request(port, { headers: bearer(token(rsa, good())) })).status, 200);
  const before = server.hits;
  assert.ok(before >= 1);
  // The issuer rotates in a new key: the first token with its kid triggers a refetch.
  const rsa2 = signer('RS256', 'rsa-2');
  server.body = jwks(rsa, rsa2);
  assert.equal((await request(port, { headers: bearer(token(rsa2, good())) })).status, 200);
  assert.equal(server.hits, before + 1);
  // A kid nobody knows: refetched, still unknown -> 401.
  const ghost = signer('ES256', 'ghost');
  const r = await request(port, { headers: bearer(token(ghost, good())) });
  assert.equal(r.status, 401);
  assert.match(r.body, /JWT_UNKNOWN_KID/);
  assert.equal(server.hits, before + 2);
});

test('an untrusted HTTPS JWKS server is unavailable: tokens are refused, no token still passes', async (t) => {
  const cert = await testCert();
  const server = await startJwksServer(t, jwks(rsa), cert);
  const app = await startApp(t);
  const { port } = await startInboundProxy(t, app, [
    jwtFilter({ providers: { main: provider({ remoteJwks: { httpUri: { uri: server.url, cluster: 'jwks', timeout: '2s' } } }) }, ...optional('main') }),
  ], { security: { jwks: { backoffBaseMs: 10 } } });
  const r = await request(port, { headers: bearer(token(rsa, good())) });
  assert.equal(r.status, 401);
  assert.match(r.body, /JWKS_UNAVAILABLE/);
  assert.equal((await request(port)).status, 200);
});

test('gRPC callers with an invalid token get UNAUTHENTICATED', async (t) => {
  const app = await startApp(t);
  const { port } = await startInboundProxy(t, app, [
    jwtFilter({ providers: { main: provider({ localJwks: { inlineString: jwks(rsa) } }) }, ...optional('main') }),
  ]);
  const client = http2.connect(`http://127.0.0.1:${port}`);
  t.after(() => client.close());
  const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    const s = client.request({ ':method': 'POST', ':path': '/shop.Orders/Get', 'content-type': 'application/grpc', te: 'trailers', authorization: `Bearer ${token(stranger, good())}` });
    s.on('response', (h) => resolve(h));
    s.on('error', reject);
    s.end(Buffer.from([0, 0, 0, 0, 0]));
    s.resume();
  });
  assert.equal(headers[':status'], 200);
  assert.equal(headers['grpc-status'], '16');
  assert.equal(headers['x-trellis-proxy-error'], 'UNAUTHENTICATED');
});
