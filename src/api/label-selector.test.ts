import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLabelSelector } from './label-selector.ts';

function sel(text: string) {
  const r = parseLabelSelector(text);
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.selector;
}

test('equality, inequality, set and existence requirements', () => {
  const s = sel('app=reviews, version!=v1,tier in (web, api),!canary,zone');
  assert.equal(s.requirements.length, 5);
  assert.equal(s.matches({ app: 'reviews', version: 'v2', tier: 'web', zone: 'a' }), true);
  assert.equal(s.matches({ app: 'reviews', tier: 'api', zone: 'a' }), true, 'missing version satisfies !=');
  assert.equal(s.matches({ app: 'reviews', version: 'v1', tier: 'web', zone: 'a' }), false);
  assert.equal(s.matches({ app: 'reviews', version: 'v2', tier: 'db', zone: 'a' }), false);
  assert.equal(s.matches({ app: 'reviews', version: 'v2', tier: 'web', zone: 'a', canary: 'true' }), false);
  assert.equal(s.matches({ app: 'reviews', version: 'v2', tier: 'web' }), false);
  assert.equal(sel('version notin (v1,v2)').matches({ version: 'v3' }), true);
  assert.equal(sel('version notin (v1,v2)').matches({}), true);
  assert.equal(sel('app==x').matches({ app: 'x' }), true);
  assert.equal(sel('').matches({}), true);
});

test('syntax errors name the requirement', () => {
  const bad = (text: string) => {
    const r = parseLabelSelector(text);
    assert.ok(!r.ok);
    return r.error;
  };
  assert.equal(bad('app in (a,b'), 'label selector "app in (a,b": unbalanced parentheses');
  assert.match(bad('app=reviews,,x'), /"": empty requirement/);
  assert.match(bad('a b c'), /"a b c": expected key/);
  assert.match(bad('-app=x'), /key name must/);
  assert.match(bad('app=x y'), /expected key/);
});
