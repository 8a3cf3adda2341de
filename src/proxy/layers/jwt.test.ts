// The jwt_authn layer alone (fake clock, inline JWKS): a remembered token is
// still checked for expiry; claims land in ctx.attrs; requirements combine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { jwtAuthnLayer, JWT_CLAIMS_ATTR, JWT_METADATA_ATTR } from './jwt.ts';
import { JwksStore } from '../jwks.ts';
import type { JwtAuthnSpec, JwtProviderSpec, JwtRequirement } from '../config/envoy-jwt.ts';
import { fakeRequest, recorder } from './layers-test-kit.ts';
import type { ProxyRequest } from '../http/exchange.ts';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwks = JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'k' }] });
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
function token(claims: object): string {
  const input = `${b64({ alg: 'ES256', kid: 'k' })}.${b64(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

function provider(name: string, issuer: string): JwtProviderSpec {
  return { name, issuer, audiences: [], jwks: { kind: 'inline', json: jwks }, forward: false, fromHeaders: [{ name: 'authorization', prefix: 'Bearer ' }], fromParams: [], payloadInMetadata: 'payload', clockSkewSeconds: 0, requireExpiration: true };
}

function spec(requires: JwtRequirement, ...providers: JwtProviderSpec[]): JwtAuthnSpec {
  return { providers: new Map(providers.map((p) => [p.name, p])), rules: [{ match: { kind: 'prefix', value: '/' }, requires }] };
}

async function run(layer: ReturnType<typeof jwtAuthnLayer>, headers: string[]): Promise<{ passed: ProxyRequest | undefined; error: string | undefined }> {
  const rec = recorder();
  let passed: ProxyRequest | undefined;
  const done = new Promise<void>((resolve) => {
    const d = layer((req) => {
      passed = req;
      resolve();
    });
    const orig = rec.handler.onError;
    rec.handler.onError = (e) => {
      orig(e);
      resolve();
    };
    d(fakeRequest(headers), rec.handler);
  });
  await done;
  return { passed, error: rec.errors[0]?.code };
}

test('a remembered token is still refused once it expires; claims go to ctx.attrs; the header is stripped', async (t) => {
  let nowMs = 1_000_000_000_000;
  const store = new JwksStore();
  t.after(() => store.close());
  const layer = jwtAuthnLayer(spec({ kind: 'provider', name: 'a' }, provider('a', 'iss-a')), { jwks: store, now: () => nowMs });
  const tok = token({ iss: 'iss-a', sub: 'bob', exp: nowMs / 1000 + 10 });
  const first = await run(layer, ['authorization', `Bearer ${tok}`]);
  assert.equal(first.error, undefined);
  assert.equal((first.passed!.ctx.attrs.get(JWT_CLAIMS_ATTR) as { sub: string }).sub, 'bob');
  assert.equal((first.passed!.ctx.attrs.get(JWT_METADATA_ATTR) as { principal: string }).principal, 'iss-a/bob');
  assert.deepEqual(first.passed!.head.headers, [], 'authorization removed');
  assert.equal((await run(layer, ['authorization', `Bearer ${tok}`])).error, undefined, 'cached and valid');
  nowMs += 11_000;
  assert.equal((await run(layer, ['authorization', `Bearer ${tok}`])).error, 'UNAUTHENTICATED', 'cached but expired');
  assert.equal((await run(layer, ['authorization', `Bearer ${token({ iss: 'iss-a', sub: 'x' })}`])).error, 'UNAUTHENTICATED', 'requireExpiration');
});

test('requiresAny across issuers, requiresAll, allowMissingOrFailed', async (t) => {
  const store = new JwksStore();
  t.after(() => store.close());
  const a = provider('a', 'iss-a');
  const b = provider('b', 'iss-b');
  const exp = Math.floor(Date.now() / 1000) + 60;
  const any = jwtAuthnLayer(spec({ kind: 'any', of: [{ kind: 'provider', name: 'a' }, { kind: 'provider', name: 'b' }] }, a, b), { jwks: store });
  assert.equal((await run(any, ['authorization', `Bearer ${token({ iss: 'iss-b', exp })}`])).error, undefined);
  assert.equal((await run(any, ['authorization', `Bearer ${token({ iss: 'iss-c', exp })}`])).error, 'UNAUTHENTICATED');
  assert.equal((await run(any, [])).error, 'UNAUTHENTICATED', 'missing');
  const all = jwtAuthnLayer(spec({ kind: 'all', of: [{ kind: 'provider', name: 'a' }, { kind: 'provider', name: 'b' }] }, a, b), { jwks: store });
  assert.equal((await run(all, ['authorization', `Bearer ${token({ iss: 'iss-a', exp })}`])).error, 'UNAUTHENTICATED');
  const lenient = jwtAuthnLayer(spec({ kind: 'allowMissingOrFailed' }, a), { jwks: store });
  const bad = await run(lenient, ['authorization', 'Bearer junk']);
  assert.equal(bad.error, undefined);
  assert.equal(bad.passed!.ctx.attrs.get(JWT_CLAIMS_ATTR), undefined, 'no claims from a failed token');
});
