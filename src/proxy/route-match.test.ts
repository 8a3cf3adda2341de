import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRouteConfiguration, formatErrors } from './config/envoy.ts';
import type { RouteConfigSpec } from './config/types.ts';
import type { RequestHead } from './http/exchange.ts';
import { compileRouteTable, compileStringMatch, selectRoute, stripPort, type RouteTable } from './route-match.ts';

function table(json: unknown): RouteTable {
  const r = parseRouteConfiguration(json);
  if (!r.ok) assert.fail(formatErrors(r.errors));
  return compileRouteTable(r.value as RouteConfigSpec);
}

function head(authority: string, path = '/', extra: Partial<RequestHead> = {}): RequestHead {
  return { method: 'GET', scheme: 'http', authority, path, headers: [], httpVersion: '1.1', ...extra };
}

/** A route per virtual host that answers with the vhost's name. */
function vh(name: string, domains: string[]) {
  return { name, domains, routes: [{ name, match: { prefix: '/' }, directResponse: { status: 200 } }] };
}

function pickVh(t: RouteTable, authority: string): string | undefined {
  return selectRoute(t, head(authority))?.vhost.name;
}

test('virtual host precedence: exact, longest suffix wildcard, longest prefix wildcard, then *', () => {
  const t = table({
    name: 'rc',
    virtualHosts: [
      vh('any', ['*']),
      vh('prefix-short', ['api.*']),
      vh('prefix-long', ['api.internal.*']),
      vh('suffix-short', ['*.com']),
      vh('suffix-long', ['*.example.com']),
      vh('exact', ['www.example.com', 'Mixed.Case.org']),
    ],
  });
  assert.equal(pickVh(t, 'www.example.com'), 'exact');
  assert.equal(pickVh(t, 'WWW.EXAMPLE.COM'), 'exact', 'domains match case-insensitively');
  assert.equal(pickVh(t, 'mixed.case.ORG'), 'exact');
  assert.equal(pickVh(t, 'shop.example.com'), 'suffix-long');
  assert.equal(pickVh(t, 'other.com'), 'suffix-short');
  assert.equal(pickVh(t, 'api.example.com'), 'suffix-long', 'suffix wildcards beat prefix wildcards');
  assert.equal(pickVh(t, 'api.internal.local'), 'prefix-long');
  assert.equal(pickVh(t, 'api.local'), 'prefix-short');
  assert.equal(pickVh(t, 'example.com'), 'suffix-short', '"*.example.com" needs at least one character before the suffix');
  assert.equal(pickVh(t, 'nothing.else'), 'any');
});

test('virtual host ports: stripped unless a domain names one', () => {
  const t = table({ name: 'rc', virtualHosts: [vh('plain', ['svc']), vh('port', ['svc:8080']), vh('v6', ['[::1]']), vh('any', ['*'])] });
  assert.equal(pickVh(t, 'svc:8080'), 'port');
  assert.equal(pickVh(t, 'svc:9090'), 'plain');
  assert.equal(pickVh(t, 'svc'), 'plain');
  assert.equal(pickVh(t, '[::1]:80'), 'v6');
  const noDefault = table({ name: 'rc', virtualHosts: [vh('a', ['a.com'])] });
  assert.equal(pickVh(noDefault, 'a.com:443'), 'a');
  assert.equal(selectRoute(noDefault, head('b.com')), null);
  assert.equal(stripPort('[::1]:80'), '[::1]');
  assert.equal(stripPort('host'), 'host');
});

function routes(rs: unknown[]): RouteTable {
  return table({ name: 'rc', virtualHosts: [{ name: 'vh', domains: ['*'], routes: rs }] });
}
const named = (name: string, match: Record<string, unknown>) => ({ name, match, directResponse: { status: 200 } });
function pick(t: RouteTable, h: Partial<RequestHead> & { path?: string }): string | undefined {
  return selectRoute(t, head('x', h.path ?? '/', h))?.route.name;
}

test('routes are first-match in order; prefix vs exact vs regex vs path-separated prefix', () => {
  const t = routes([
    named('exact', { path: '/api/v1' }),
    named('regex', { safeRegex: { regex: '/api/v[0-9]+/users/[0-9]+' } }),
    named('sep', { pathSeparatedPrefix: '/docs' }),
    named('ci', { prefix: '/CaSe', caseSensitive: false }),
    named('prefix', { prefix: '/api' }),
    named('shadowed', { path: '/api/v2' }),
    named('root', { prefix: '/' }),
  ]);
  assert.equal(pick(t, { path: '/api/v1' }), 'exact');
  assert.equal(pick(t, { path: '/api/v1?x=1' }), 'exact', 'the query string is not part of the path');
  assert.equal(pick(t, { path: '/api/v1/' }), 'prefix');
  assert.equal(pick(t, { path: '/api/v3/users/42' }), 'regex');
  assert.equal(pick(t, { path: '/api/v3/users/42/x' }), 'prefix', 'regex must match the whole path');
  assert.equal(pick(t, { path: '/api/v2' }), 'prefix', 'first match wins, even over a later exact match');
  assert.equal(pick(t, { path: '/docs' }), 'sep');
  assert.equal(pick(t, { path: '/docs/a' }), 'sep');
  assert.equal(pick(t, { path: '/docsx' }), 'root');
  assert.equal(pick(t, { path: '/case/x' }), 'ci');
  assert.equal(pick(t, { path: '/elsewhere' }), 'root');
  const exactCi = routes([named('e', { path: '/A', caseSensitive: false })]);
  assert.equal(pick(exactCi, { path: '/a' }), 'e');
  const exactCs = routes([named('e', { path: '/A' })]);
  assert.equal(pick(exactCs, { path: '/a' }), undefined);
});

test('header matches: exact, StringMatch kinds, present, invert, pseudo-headers, repeated values', () => {
  const t = routes([
    named('exact', { prefix: '/', headers: [{ name: 'x-env', exactMatch: 'canary' }] }),
    named('ci', { prefix: '/', headers: [{ name: 'x-ci', stringMatch: { exact: 'YES', ignoreCase: true } }] }),
    named('suffix', { prefix: '/', headers: [{ name: 'x-s', stringMatch: { suffix: '.svc' } }] }),
    named('contains', { prefix: '/', headers: [{ name: 'x-c', stringMatch: { contains: 'mid' } }] }),
    named('regex', { prefix: '/', headers: [{ name: 'x-r', safeRegexMatch: { regex: '[0-9]{3}' } }] }),
    named('inverted', { prefix: '/', headers: [{ name: 'x-i', exactMatch: 'no', invertMatch: true }] }),
    named('absent', { prefix: '/', headers: [{ name: 'x-p', presentMatch: false }] }),
    named('host', { prefix: '/', headers: [{ name: ':authority', prefixMatch: 'pseudo' }] }),
    named('joined', { prefix: '/', headers: [{ name: 'x-j', exactMatch: 'a,b' }] }),
    named('rest', { prefix: '/' }),
  ]);
  const h = (headers: string[], authority = 'x') => selectRoute(t, head(authority, '/', { headers }))?.route.name;
  assert.equal(h(['x-p', '1', 'x-env', 'canary']), 'exact');
  assert.equal(h(['x-p', '1', 'x-env', 'Canary']), 'rest');
  assert.equal(h(['x-p', '1', 'x-ci', 'yes']), 'ci');
  assert.equal(h(['x-p', '1', 'x-s', 'a.svc']), 'suffix');
  assert.equal(h(['x-p', '1', 'x-c', 'amidb']), 'contains');
  assert.equal(h(['x-p', '1', 'x-r', '123']), 'regex');
  assert.equal(h(['x-p', '1', 'x-r', '1234']), 'rest', 'header regexes match the whole value');
  assert.equal(h(['x-p', '1', 'x-i', 'yes']), 'inverted');
  assert.equal(h(['x-p', '1', 'x-i', 'no']), 'rest');
  assert.equal(h(['x-p', '1']), 'rest', 'an inverted value match still needs the header');
  assert.equal(h([]), 'absent', 'presentMatch: false matches a missing header');
  assert.equal(h(['x-p', '1'], 'pseudo.host'), 'host');
  assert.equal(h(['x-p', '1', 'x-j', 'a', 'x-j', 'b']), 'joined');
  const inv = routes([named('not-present', { prefix: '/', headers: [{ name: 'x-debug', presentMatch: true, invertMatch: true }] })]);
  assert.equal(selectRoute(inv, head('x'))?.route.name, 'not-present');
  assert.equal(selectRoute(inv, head('x', '/', { headers: ['x-debug', '1'] })), null);
});

test('method, query parameter and gRPC matches', () => {
  const t = routes([
    named('post', { prefix: '/', headers: [{ name: ':method', exactMatch: 'POST' }] }),
    named('q', { prefix: '/', queryParameters: [{ name: 'v', stringMatch: { exact: '2' } }, { name: 'debug', presentMatch: true }] }),
    named('grpc', { prefix: '/', grpc: {} }),
    named('rest', { prefix: '/' }),
  ]);
  assert.equal(pick(t, { method: 'POST' }), 'post');
  assert.equal(pick(t, { path: '/a?debug&v=2' }), 'q');
  assert.equal(pick(t, { path: '/a?v=2&debug=' }), 'q');
  assert.equal(pick(t, { path: '/a?v=3&debug' }), 'rest');
  assert.equal(pick(t, { path: '/a?v=2' }), 'rest');
  assert.equal(pick(t, { path: '/a?v=2&v=3&debug' }), 'q', 'the first occurrence is matched');
  assert.equal(pick(t, { headers: ['content-type', 'application/grpc+proto'] }), 'grpc');
  assert.equal(pick(t, { headers: ['content-type', 'application/json'] }), 'rest');
});

test('compileStringMatch covers every kind', () => {
  assert.equal(compileStringMatch({ kind: 'exact', value: 'a' })('a'), true);
  assert.equal(compileStringMatch({ kind: 'exact', value: 'a' })(undefined), false);
  assert.equal(compileStringMatch({ kind: 'prefix', value: 'Ab', ignoreCase: true })('abc'), true);
  assert.equal(compileStringMatch({ kind: 'suffix', value: 'C', ignoreCase: true })('abc'), true);
  assert.equal(compileStringMatch({ kind: 'contains', value: 'b' })('abc'), true);
  assert.equal(compileStringMatch({ kind: 'contains', value: 'B' })('abc'), false);
  assert.equal(compileStringMatch({ kind: 'regex', value: 'a.c', regex: /^(?:a.c)$/ })('abc'), true);
  assert.equal(compileStringMatch({ kind: 'present', present: true })(''), true);
  assert.equal(compileStringMatch({ kind: 'present', present: false })(undefined), true);
});
