import { test } from 'node:test';
import assert from 'node:assert/strict';
import { unifiedDiff } from './unified-diff.ts';

test('identical text has no diff', () => {
  assert.equal(unifiedDiff('a\nb\n', 'a\nb\n'), '');
});

test('hunks carry three lines of context and correct ranges', () => {
  const old = 'a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n';
  const next = 'a\nB\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\n';
  assert.equal(unifiedDiff(old, next, { oldName: 'old', newName: 'new' }), [
    '--- old', '+++ new',
    '@@ -1,5 +1,5 @@', ' a', '-b', '+B', ' c', ' d', ' e',
    '@@ -9,3 +9,4 @@', ' i', ' j', ' k', '+l', '',
  ].join('\n'));
});

test('creation diffs against nothing', () => {
  assert.equal(unifiedDiff('', 'x\ny\n'), '--- current\n+++ applied\n@@ -0,0 +1,2 @@\n+x\n+y\n');
});
