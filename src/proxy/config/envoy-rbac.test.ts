// Strict reading of the RBAC and jwt_authn HTTP filter configs: what is
// understood, what is an error (naming the field), what only warns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Issues, formatFieldError } from './field-error.ts';
import { FieldReader } from './field-reader.ts';
import { readRbac } from './envoy-rbac.ts';
import { readJwtAuthn } from './envoy-jwt.ts';

function run<T>(json: unknown, read: (r: FieldReader) => T): { value: T | undefined; errors: string[]; warnings: readonly string[] } {
  const issues = new Issues();
  const r = FieldReader.of(json, 'f', issues);
  const value = r ? read(r) : undefined;
  return { value, errors: issues.errors.map(formatFieldError), warnings: issues.warnings };
}

test('RBAC: rules with nested permissions and principals; absent rules allow everything', () => {
  const ok = run({
    '@type': 'x', // read by the HCM parser before us
    rules: {
      action: 'DENY',
      policies: {
        b: { permissions: [{ andRules: { rules: [{ urlPath: { path: { prefix: '/a' } } }, { notRule: { header: { name: ':method', exactMatch: 'GET' } } }] } }, { destinationPortRange: { start: 8000, end: 8100 } }],
          principals: [{ orIds: { ids: [{ authenticated: { principalName: { exact: 'spiffe://td/ns/a/sa/b' } } }, { sourceIp: { addressPrefix: '::1', prefixLen: 128 } }] } }] },
        a: { permissions: [{ any: true }], principals: [{ metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }, { key: 'aud' }], value: { listMatch: { oneOf: { stringMatch: { exact: 'x' } } } } } }] },
      },
    },
    shadowRules: { action: 'ALLOW' },
  }, (r) => (r.raw('@type'), readRbac(r)));
  assert.deepEqual(ok.errors, []);
  assert.equal(ok.value!.action, 'DENY');
  assert.deepEqual(ok.value!.policies.map((p) => p.name), ['a', 'b'], 'sorted by name, as Envoy orders a map');
  assert.deepEqual(ok.value!.policies[1]!.permissions[1], { kind: 'port', start: 8000, end: 8099 });
  assert.ok(ok.warnings.some((w) => w.includes('shadow rules are not evaluated')));
  assert.deepEqual(run({}, readRbac).value, { action: 'NONE', policies: [] });
});

test('RBAC: unsupported matchers, typos, empty lists and bad CIDRs are errors naming the field', () => {
  const bad = run({
    rules: {
      action: 'MAYBE',
      policies: {
        p: { permissions: [{ requestedServerName: { exact: 'x' } }], principals: [{ directRemoteIp: { addressPrefix: '10.0.0.300', prefixLen: 8 } }], condition: {} },
        q: { permissions: [], principals: [{ any: false }] },
        r: { permisions: [{ any: true }], principals: [{ any: true }] },
      },
    },
  }, readRbac);
  assert.equal(bad.value, undefined);
  assert.deepEqual(bad.errors, [
    'f.rules.action: must be one of ALLOW, DENY, LOG (got "MAYBE")',
    'f.rules.policies.p.permissions[0].requestedServerName: not supported by the Trellis proxy (supported: any, andRules, orRules, notRule, header, urlPath, destinationPort, destinationPortRange)',
    'f.rules.policies.p.principals[0].directRemoteIp.addressPrefix: must be an IPv4 or IPv6 address (got "10.0.0.300")',
    'f.rules.policies.p.condition: CEL conditions are not supported',
    'f.rules.policies.q.permissions: must not be empty',
    'f.rules.policies.q.principals[0].any: must be true',
    'f.rules.policies.r.permissions: required',
    'f.rules.policies.r.permisions: unknown field (did you mean "permissions"?); not in the supported subset (docs/proxy-config.md)',
  ]);
});

test('jwt_authn: providers, defaults, requirements; unknown providers and sources are errors', () => {
  const ok = run({
    providers: {
      remote: { issuer: 'https://i', audiences: ['a'], remoteJwks: { httpUri: { uri: 'https://127.0.0.1:9/jwks', cluster: 'c', timeout: '2s' }, cacheDuration: '60s' }, payloadInMetadata: 'payload' },
      local: { localJwks: { filename: '/etc/jwks.json' }, fromHeaders: [{ name: 'X-Token' }], forward: true, clockSkewSeconds: 5 },
    },
    rules: [{ match: { prefix: '/open' } }, { match: { prefix: '/' }, requires: { requiresAny: { requirements: [{ providerName: 'remote' }, { allowMissing: {} }] } } }],
  }, readJwtAuthn);
  assert.deepEqual(ok.errors, []);
  const remote = ok.value!.providers.get('remote')!;
  assert.deepEqual(remote.jwks, { kind: 'remote', uri: 'https://127.0.0.1:9/jwks', timeoutMs: 2000, cacheMs: 60_000 });
  assert.deepEqual(remote.fromHeaders, [{ name: 'authorization', prefix: 'Bearer ' }]);
  assert.deepEqual(remote.fromParams, ['access_token']);
  assert.equal(remote.clockSkewSeconds, 60);
  const local = ok.value!.providers.get('local')!;
  assert.deepEqual(local.fromHeaders, [{ name: 'x-token', prefix: '' }]);
  assert.deepEqual(local.fromParams, []);
  assert.equal(ok.value!.rules[0]!.requires, undefined);
  assert.deepEqual(ok.value!.rules[1]!.requires, { kind: 'any', of: [{ kind: 'provider', name: 'remote' }, { kind: 'allowMissing' }] });

  const bad = run({
    providers: { p: { issuer: 'x', remoteJwks: { httpUri: { uri: 'ftp://x' } } }, q: { issuer: 'y' } },
    rules: [{ match: { prefix: '/' }, requires: { providerName: 'nope' } }],
  }, readJwtAuthn);
  assert.equal(bad.value, undefined);
  assert.deepEqual(bad.errors, [
    'f.providers.p.remoteJwks.httpUri.uri: must be an http:// or https:// URL (got "ftp://x")',
    'f.providers.q: one of localJwks, remoteJwks is required',
    'f.rules[0].requires.providerName: no provider named "nope" (have: none)',
  ]);
});

test('jwt_authn rules match by path only: other match fields are errors', () => {
  const bad = run({ providers: { p: { localJwks: { inlineString: '{"keys":[]}' } } }, rules: [{ match: { prefix: '/', headers: [{ name: 'x' }] } }] }, readJwtAuthn);
  assert.deepEqual(bad.errors, ['f.rules[0].match.headers: not supported: jwt_authn rules match by path only (prefix, path, pathSeparatedPrefix, safeRegex)']);
});
