import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeGrpcMessage, formatGrpcTimeout, grpcDeadline, grpcStatusTrailers, isGrpcContentType, isGrpcRequest, parseGrpcTimeout,
} from './grpc.ts';

test('gRPC is recognised by content-type', () => {
  for (const ct of ['application/grpc', 'application/grpc+proto', 'application/grpc+json', 'application/grpc; charset=utf-8', 'Application/GRPC', 'application/grpc-web', 'application/grpc-web-text+proto']) {
    assert.equal(isGrpcContentType(ct), true, ct);
  }
  for (const ct of [undefined, '', 'application/json', 'application/grpcx', 'text/grpc', 'application/grpc-webx']) {
    assert.equal(isGrpcContentType(ct), false, String(ct));
  }
  assert.equal(isGrpcRequest(['x', 'y', 'content-type', 'application/grpc']), true);
  assert.equal(isGrpcRequest(['content-length', '3']), false);
});

test('grpc-timeout parses every unit and rejects malformed values with the reason', () => {
  const cases: Array<[string, number]> = [['1H', 3_600_000], ['2M', 120_000], ['3S', 3000], ['200m', 200], ['1500u', 1.5], ['2000000n', 2], ['0m', 0], ['99999999S', 99_999_999_000]];
  for (const [v, ms] of cases) assert.deepEqual(parseGrpcTimeout(v), { ok: true, ms }, v);
  for (const v of ['', '100', 'm', '123456789m', '1.5S', '-1S', '10s', '10 S', ' 10S']) {
    const r = parseGrpcTimeout(v);
    assert.equal(r.ok, false, v);
    if (!r.ok) assert.match(r.error, /^grpc-timeout: .*1-8 digits/);
  }
});

test('grpc-timeout formatting picks the finest unit that fits in 8 digits and never shortens', () => {
  assert.equal(formatGrpcTimeout(200), '200m');
  assert.equal(formatGrpcTimeout(0.5), '500u');
  assert.equal(formatGrpcTimeout(1.0004), '1001u');
  assert.equal(formatGrpcTimeout(99_999_999), '99999999m');
  assert.equal(formatGrpcTimeout(100_000_000), '100000S');
  assert.equal(formatGrpcTimeout(100_000_001), '100001S');
  assert.equal(formatGrpcTimeout(0), '0m');
  assert.equal(formatGrpcTimeout(-5), '0m');
  assert.equal(formatGrpcTimeout(1e12), '16666667M');
  assert.equal(formatGrpcTimeout(1e15), '99999999H'); // the largest value the header can say
  for (const ms of [1, 7.25, 999, 1234567, 98_765_432_109]) {
    const s = formatGrpcTimeout(ms);
    const r = parseGrpcTimeout(s);
    assert.ok(r.ok && r.ms >= ms, `${ms} -> ${s}`);
  }
});

test('grpcDeadline reads grpc-timeout relative to the start time', () => {
  assert.equal(grpcDeadline(['grpc-timeout', '5S'], 1000), 6000);
  assert.equal(grpcDeadline(['grpc-timeout', 'soon'], 1000), null);
  assert.equal(grpcDeadline([], 1000), null);
});

test('status trailers carry the code and a percent-encoded message', () => {
  assert.deepEqual(grpcStatusTrailers(5), ['grpc-status', '5']);
  assert.deepEqual(grpcStatusTrailers(14, 'no way: 100%', ['x-a', 'b']), ['grpc-status', '14', 'grpc-message', 'no way%3A 100%25', 'x-a', 'b']);
  assert.equal(decodeGrpcMessage('no way%3A 100%25'), 'no way: 100%');
  assert.equal(decodeGrpcMessage('bad %E0 escape'), 'bad %E0 escape');
});
