import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BODY_CHUNKED, BODY_LENGTH, BODY_UNTIL_CLOSE, BodyDecoder } from './body-decoder.ts';

interface Run { data: string; done: boolean; error: string | null; trailers: string[] | null; rest: string }

/** Feed `input` split at the given offsets, the way a socket would. */
function feed(mode: 0 | 1 | 2, length: number, input: string, splits: number[]): Run {
  const d = new BodyDecoder();
  d.reset(mode, length);
  let data = '';
  let rest = '';
  let pending: Buffer | null = null;
  const bounds = [0, ...splits, input.length];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const piece = Buffer.from(input.slice(bounds[i], bounds[i + 1]), 'latin1');
    const buf: Buffer = pending === null ? piece : Buffer.concat([pending, piece]);
    const pos = d.decode(buf, 0, { bodyData: (c) => { data += c.toString('latin1'); return true; } });
    if (d.error !== null) break;
    pending = pos < buf.length ? buf.subarray(pos) : null;
    if (d.done) {
      rest = (pending?.toString('latin1') ?? '') + input.slice(bounds[i + 1]);
      break;
    }
  }
  return { data, done: d.done, error: d.error, trailers: d.trailers, rest };
}

const CHUNKED = '5;ext=1\r\nhello\r\n6 ;x\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Sum: 42\r\nX-B: b\r\n\r\nNEXT';

test('chunked: same result for every single split point and byte by byte', () => {
  const expected = { data: 'hello world0123456789', done: true, error: null, trailers: ['x-sum', '42', 'x-b', 'b'], rest: 'NEXT' };
  for (let i = 1; i < CHUNKED.length; i++) assert.deepEqual(feed(BODY_CHUNKED, 0, CHUNKED, [i]), expected, `split at ${i}`);
  const all = Array.from({ length: CHUNKED.length - 1 }, (_, i) => i + 1);
  assert.deepEqual(feed(BODY_CHUNKED, 0, CHUNKED, all), expected);
});

test('chunked without trailers ends at the empty line', () => {
  const r = feed(BODY_CHUNKED, 0, '3\r\nabc\r\n0\r\n\r\nGET', []);
  assert.deepEqual(r, { data: 'abc', done: true, error: null, trailers: null, rest: 'GET' });
});

test('chunked errors', () => {
  for (const [input, reason] of [
    ['zz\r\n', /invalid chunk size/],
    ['\r\n', /invalid chunk size/],
    ['-1\r\n', /invalid chunk size/],
    ['1111111111111\r\n', /too large/],
    ['3\nabc', /CRLF/],
    ['3\r\nabcX\r\n', /CRLF/],
    ['3\r\nabc\r\n0\r\nbad header\r\n\r\n', /colon/],
    ['3\r\nabc\r\n0\r\nX: 1\n\r\n', /bare LF/],
    ['3;a\x01\r\nabc', /extension/],
  ] as const) {
    const r = feed(BODY_CHUNKED, 0, input, []);
    assert.match(r.error ?? '', reason, JSON.stringify(input));
    assert.equal(r.done, false);
  }
});

test('content-length: stops at the length; until-close takes everything', () => {
  assert.deepEqual(feed(BODY_LENGTH, 5, 'hel' + 'loGET /', [3]), { data: 'hello', done: true, error: null, trailers: null, rest: 'GET /' });
  const d = new BodyDecoder();
  d.reset(BODY_UNTIL_CLOSE, 0);
  let got = '';
  d.decode(Buffer.from('abc'), 0, { bodyData: (c) => { got += c.toString(); return true; } });
  assert.equal(d.done, false);
  d.finishAtClose();
  assert.equal(d.done, true);
  assert.equal(got, 'abc');
});

test('a target returning false pauses decoding after that chunk', () => {
  const d = new BodyDecoder();
  d.reset(BODY_CHUNKED, 0);
  const buf = Buffer.from('2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n');
  const seen: string[] = [];
  const pos = d.decode(buf, 0, { bodyData: (c) => { seen.push(c.toString()); return false; } });
  assert.deepEqual(seen, ['ab']);
  assert.equal(d.paused, true);
  const pos2 = d.decode(buf, pos, { bodyData: (c) => { seen.push(c.toString()); return true; } });
  assert.deepEqual(seen, ['ab', 'cd']);
  assert.equal(d.done, true);
  assert.equal(pos2, buf.length);
});
