import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeRequestPath, removeDotSegments, type PathNormalization } from './path-normalize.ts';

const all: PathNormalization = { normalize: true, mergeSlashes: true, escapedSlashes: 'reject' };
const ok = (p: string, o: PathNormalization = all) => {
  const r = normalizeRequestPath(p, o);
  assert.equal(r.kind, 'ok', `${p}: ${JSON.stringify(r)}`);
  return (r as { path: string }).path;
};

test('RFC 3986 5.2.4 examples and edge cases of dot-segment removal', () => {
  assert.equal(removeDotSegments('/a/b/c/./../../g'), '/a/g');
  assert.equal(removeDotSegments('/mid/content=5/../6'), '/mid/6');
  assert.equal(removeDotSegments('/..'), '/');
  assert.equal(removeDotSegments('/a/..'), '/');
  assert.equal(removeDotSegments('/a/b/..'), '/a/');
  assert.equal(removeDotSegments('/a/.'), '/a/');
  assert.equal(removeDotSegments('/../../x'), '/x');
  assert.equal(removeDotSegments('/a..b/.c/'), '/a..b/.c/');
});

test('the issue\'s bypasses all become /admin; the query is kept as sent', () => {
  for (const p of ['/public/../admin', '/./admin', '//admin', '/%61dmin', '/admin;x', '/%2e%2e/admin', '/public/..;x/admin', '/a\\..\\admin', '/admin/.']) {
    assert.match(ok(p), /^\/admin\/?$/, p);
  }
  assert.equal(ok('/x/../admin?a=/../b&c=%61'), '/admin?a=/../b&c=%61');
  assert.equal(ok('/admin;jsessionid=1/users;v=2'), '/admin/users');
});

test('escapes: unreserved decoded, others upper-cased, malformed refused, raw unsafe bytes encoded', () => {
  assert.equal(ok('/a%7e%2D%5f%41'), '/a~-_A');
  assert.equal(ok('/a%3fb%20c'), '/a%3Fb%20c');
  assert.equal(ok('/caf\u00e9'), '/caf%E9');
  assert.equal(normalizeRequestPath('/a%zz', all).kind, 'reject');
  assert.equal(normalizeRequestPath('/a%4', all).kind, 'reject');
  assert.equal(ok('/ADMIN'), '/ADMIN'); // case is kept (paths are case-sensitive)
});

test('escaped slashes: keep, reject, unescape-and-forward, unescape-and-redirect', () => {
  assert.equal(ok('/admin%2f..', { ...all, escapedSlashes: 'keep' }), '/admin%2F..');
  assert.deepEqual(normalizeRequestPath('/admin%2f..', all), { kind: 'reject', reason: 'escaped slash (%2F or %5C) in the path' });
  assert.equal(ok('/public%2F..%2Fadmin', { ...all, escapedSlashes: 'unescape-and-forward' }), '/admin');
  assert.deepEqual(normalizeRequestPath('/public%5c..%5cadmin?q=1', { ...all, escapedSlashes: 'unescape-and-redirect' }), { kind: 'redirect', path: '/admin?q=1' });
  // No escaped slash: no redirect, whatever else changes.
  assert.equal(ok('/public/../admin', { ...all, escapedSlashes: 'unescape-and-redirect' }), '/admin');
});

test('each step can be switched off; non-origin targets pass', () => {
  const none: PathNormalization = { normalize: false, mergeSlashes: false, escapedSlashes: 'keep' };
  assert.equal(ok('//a/../%61;x', none), '//a/../%61;x');
  assert.equal(ok('//a//b', { ...all, mergeSlashes: false }), '//a//b');
  assert.equal(ok('*'), '*');
  assert.equal(ok(''), '');
});
