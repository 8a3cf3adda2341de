import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateResource } from './validate.ts';
import { resolveKind } from './kinds.ts';

const ap = (spec: unknown) => ({ apiVersion: 'trellis.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'p', namespace: 'shop' }, spec });
const ra = (spec: unknown) => ({ apiVersion: 'trellis.dev/v1alpha1', kind: 'RequestAuthentication', metadata: { name: 'j', namespace: 'shop' }, spec });
const paths = (r: ReturnType<typeof validateResource>) => (r.ok ? [] : r.errors.map((e) => `${e.path}: ${e.message}`));

test('AuthorizationPolicy: Istio-shaped rules validate; bad CIDRs, globs, keys and combinations name the field', () => {
  assert.equal(resolveKind('authz')?.kind, 'AuthorizationPolicy');
  assert.equal(resolveKind('ra')?.kind, 'RequestAuthentication');
  const ok = validateResource(ap({
    selector: { app: 'orders' }, action: 'DENY',
    rules: [{ from: [{ source: { principals: ['td/ns/a/sa/*'], ipBlocks: ['10.0.0.0/8', '::1'], serviceAccounts: ['ops/admin'] } }], to: [{ operation: { ports: ['8080'], paths: ['/a/*', '*.js'] } }], when: [{ key: 'request.auth.claims[groups][0]', values: ['x'] }] }],
  }));
  assert.deepEqual(paths(ok), []);
  assert.deepEqual(paths(validateResource(ap({}))), [], 'allow-nothing');
  assert.deepEqual(paths(validateResource(ap({
    selector: { app: 'x' }, targetRef: { kind: 'Service', name: 'orders' },
    rules: [{
      from: [{ source: { ipBlocks: ['10.0.0.0/33'], principals: ['a*b*'] } }, { source: {} }],
      to: [{ operation: { ports: ['70000'] } }],
      when: [{ key: 'request.body', values: ['x'] }, { key: 'source.ip' }],
    }],
  }))), [
    'spec.targetRef: cannot be combined with selector',
    'spec.rules[0].from[0].source.principals[0]: a "*" may only stand alone, or at the start or the end',
    'spec.rules[0].from[0].source.ipBlocks[0]: must be an IP address or CIDR (got "10.0.0.0/33")',
    'spec.rules[0].from[1].source: must set at least one field',
    'spec.rules[0].to[0].operation.ports[0]: must be between 1 and 65535',
    'spec.rules[0].when[0].key: unsupported key "request.body" (supported: request.headers[<name>], request.auth.claims[<claim>], request.auth.principal, request.auth.audiences, request.auth.presenter, source.ip, source.namespace, source.principal)',
    'spec.rules[0].when[1]: needs values or notValues',
  ]);
  const unknown = validateResource(ap({ rules: [{ from: [{ principals: ['x'] }] }] }));
  assert.ok(!unknown.ok && unknown.errors[0]!.path.startsWith('spec.rules[0].from[0]'));
});

test('RequestAuthentication: one key source per issuer, unique issuers, JWKS must parse', () => {
  assert.deepEqual(paths(validateResource(ra({ jwtRules: [{ issuer: 'https://i', jwksUri: 'https://i/jwks', audiences: ['a'] }] }))), []);
  assert.deepEqual(paths(validateResource(ra({
    jwtRules: [
      { issuer: 'https://i', jwksUri: 'ftp://i/jwks' },
      { issuer: 'https://i', jwks: '{"nokeys": 1}', jwksFile: '/x' },
      { issuer: 'https://k', jwks: 'nope' },
    ],
  }))), [
    'spec.jwtRules[0].jwksUri: must be an http:// or https:// URL',
    'spec.jwtRules[1].issuer: duplicate issuer "https://i"',
    'spec.jwtRules[1]: exactly one of jwksUri, jwks, jwksFile is required',
    'spec.jwtRules[1].jwks: must be a JWKS document with a "keys" list',
    'spec.jwtRules[2].jwks: must be JSON (a JWKS document)',
  ]);
  assert.ok(!validateResource(ra({ jwtRules: [] })).ok);
});
