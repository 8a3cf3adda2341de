import { test } from 'node:test';
import assert from 'node:assert/strict';
import { b3DenyOnly, extractTraceContext, formatTraceparent, injectTraceContext, parseB3Single, parseTraceparent } from './trace-context.ts';
import { getHeader } from '../http/exchange.ts';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';

test('traceparent: valid, invalid ids, flags and future versions', () => {
  assert.deepEqual(parseTraceparent(`00-${T}-${S}-01`, 'k=v'), { traceId: T, spanId: S, sampled: true, tracestate: 'k=v', format: 'w3c' });
  assert.equal(parseTraceparent(`00-${T}-${S}-00`)?.sampled, false);
  assert.equal(parseTraceparent(`00-${'0'.repeat(32)}-${S}-01`), undefined);
  assert.equal(parseTraceparent(`00-${T}-${'0'.repeat(16)}-01`), undefined);
  assert.equal(parseTraceparent(`ff-${T}-${S}-01`), undefined);
  assert.equal(parseTraceparent(`00-${T}-${S}-01-extra`), undefined);
  assert.equal(parseTraceparent(`01-${T}-${S}-01-extra`)?.sampled, true);
  assert.equal(parseTraceparent('garbage'), undefined);
});

test('b3 single and multi, 64-bit trace ids padded, deferred sampling', () => {
  assert.deepEqual(parseB3Single(`${T}-${S}-1-${'1'.repeat(16)}`), { traceId: T, spanId: S, sampled: true, format: 'b3-single' });
  assert.equal(parseB3Single(`a3ce929d0e0e4736-${S}`)?.traceId, `0000000000000000a3ce929d0e0e4736`);
  assert.equal(parseB3Single(`${T}-${S}`)?.sampled, undefined);
  assert.equal(parseB3Single('0'), undefined);
  const multi = ['x-b3-traceid', T, 'x-b3-spanid', S, 'x-b3-sampled', '0'];
  assert.deepEqual(extractTraceContext(multi), { traceId: T, spanId: S, sampled: false, format: 'b3-multi' });
  assert.equal(extractTraceContext(['x-b3-traceid', T, 'x-b3-spanid', S, 'x-b3-flags', '1'])?.sampled, true);
  assert.equal(b3DenyOnly(['b3', '0']), true);
  assert.equal(b3DenyOnly(['x-b3-sampled', '0']), true);
  assert.equal(b3DenyOnly([]), false);
});

test('traceparent wins over b3; an invalid traceparent falls back to b3', () => {
  const h = ['traceparent', `00-${T}-${S}-01`, 'b3', `${'a'.repeat(32)}-${'b'.repeat(16)}-0`];
  assert.equal(extractTraceContext(h)?.format, 'w3c');
  assert.equal(extractTraceContext(['traceparent', 'bad', 'b3', `${T}-${S}-0`])?.format, 'b3-single');
});

test('inject writes traceparent and the incoming B3 form with the new parent', () => {
  const h = ['b3', `${T}-${S}-1`];
  injectTraceContext(h, { traceId: T, spanId: 'b'.repeat(16), sampled: true, parentSpanId: S }, 'b3-single');
  assert.equal(getHeader(h, 'traceparent'), formatTraceparent(T, 'b'.repeat(16), true));
  assert.equal(getHeader(h, 'b3'), `${T}-${'b'.repeat(16)}-1-${S}`);
  const m = ['x-b3-traceid', T, 'x-b3-spanid', S, 'x-b3-flags', '1'];
  injectTraceContext(m, { traceId: T, spanId: 'c'.repeat(16), sampled: false, parentSpanId: S }, 'b3-multi');
  assert.equal(getHeader(m, 'x-b3-spanid'), 'c'.repeat(16));
  assert.equal(getHeader(m, 'x-b3-parentspanid'), S);
  assert.equal(getHeader(m, 'x-b3-sampled'), '0');
  assert.equal(getHeader(m, 'x-b3-flags'), undefined);
  assert.equal(getHeader(m, 'traceparent'), `00-${T}-${'c'.repeat(16)}-00`);
});
