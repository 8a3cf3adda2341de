import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withSpinner } from './spinner.ts';

test('spinner: drawn on a terminal only for waits long enough to notice, erased after', async () => {
  const tty: string[] = [];
  const out = { isTTY: true, write: (s: string) => tty.push(s) };
  assert.equal(await withSpinner('quick', async () => 1, out), 1);
  assert.deepEqual(tty, [], 'a fast answer shows no spinner');
  await withSpinner('slow', () => new Promise((r) => setTimeout(r, 300)), out);
  assert.match(tty[0]!, /^\r. slow$/);
  assert.equal(tty[tty.length - 1], '\r\x1b[2K');
  const piped: string[] = [];
  await withSpinner('slow', () => new Promise((r) => setTimeout(r, 300)), { isTTY: false, write: (s: string) => piped.push(s) });
  assert.deepEqual(piped, []);
});
