import { test } from 'node:test';
import assert from 'node:assert/strict';
import { faultLayer } from './fault.ts';
import { rateLimitLayer, RateLimitStore, callerIdentity } from './rate-limit.ts';
import { shadowAuthority } from './mirror.ts';
import { FakeClock, seededRandom } from './fake-clock.ts';
import { fakeRequest, recorder } from './layers-test-kit.ts';
import { rescue } from '../errors.ts';
import type { Dispatch } from '../http/exchange.ts';
import type { LocalRateLimitSpec } from '../config/envoy-resilience.ts';

const ok: Dispatch = (_req, h) => {
  h.onStart({ resume() {}, abort() {} });
  h.onHeaders({ status: 200, headers: [] });
  h.onEnd(null);
};

test('fault: abort rate within binomial bounds; gRPC aborts carry the configured status', () => {
  const clock = new FakeClock();
  const d = faultLayer(() => ({ abort: { kind: 'http', status: 503, fraction: 0.1 } }), { random: seededRandom(7), setTimer: clock.setTimer })(ok);
  let aborted = 0;
  for (let i = 0; i < 10_000; i++) {
    const rec = recorder();
    d(fakeRequest(), rec.handler);
    if (rec.errors[0]?.code === 'FAULT_ABORT') aborted++;
  }
  assert.ok(aborted > 880 && aborted < 1120, `${aborted} of 10000 (mean 1000, sd 30)`);
  const g = faultLayer(() => ({ abort: { kind: 'grpc', code: 8, fraction: 1 } }), { random: Math.random, setTimer: clock.setTimer })(ok);
  const rec = recorder();
  const req = fakeRequest([], { grpc: true });
  g(req, rec.handler);
  const r = rescue(rec.errors[0]!, true);
  assert.equal(r.headers[r.headers.indexOf('grpc-status') + 1], '8');
  assert.deepEqual(req.ctx.responseFlags, ['FI']);
});

test('fault: a delay holds the request; the caller aborting during it cancels it', () => {
  const clock = new FakeClock();
  let sent = 0;
  const d = faultLayer(() => ({ delay: { ms: 100, fraction: 1 } }), { random: Math.random, setTimer: clock.setTimer })((req, h) => {
    sent++;
    ok(req, h);
  });
  const rec = recorder();
  d(fakeRequest(), rec.handler);
  assert.equal(sent, 0);
  clock.advance(100);
  assert.equal(sent, 1);
  assert.deepEqual(rec.events, ['start', 'start', 'headers 200', 'end']);
  let controller: { abort(e: never): void } | undefined;
  const rec2 = recorder();
  d(fakeRequest(), { ...rec2.handler, onStart: (c) => (controller = c as never) });
  controller!.abort({ code: 'REQUEST_TIMEOUT' } as never);
  clock.advance(100);
  assert.equal(sent, 1, 'the aborted request never went upstream');
});

test('rate limit: 429 with Retry-After rounded up to seconds; gRPC gets RESOURCE_EXHAUSTED; per-caller buckets', () => {
  const clock = new FakeClock();
  const spec: LocalRateLimitSpec = { statPrefix: 's', tokenBucket: { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 2500 }, callers: [], status: 429, enabled: 1, enforced: 1 };
  const d = rateLimitLayer(() => ({ spec, key: 'k' }), { now: clock.now, random: Math.random, store: new RateLimitStore() })(ok);
  const a = recorder();
  d(fakeRequest(), a.handler);
  assert.equal(a.heads[0]?.status, 200);
  clock.advance(100);
  const b = recorder();
  d(fakeRequest([], { grpc: true }), b.handler);
  const err = b.errors[0]!;
  assert.equal(err.code, 'RATE_LIMITED');
  assert.deepEqual(err.headers, ['retry-after', '3']);
  const r = rescue(err, true);
  assert.equal(r.headers[r.headers.indexOf('grpc-status') + 1], '8');
  clock.advance(2400);
  const c = recorder();
  d(fakeRequest(), c.handler);
  assert.equal(c.heads[0]?.status, 200, 'refilled');

  const { tokenBucket: _routeBucket, ...noRouteBucket } = spec;
  const perCaller: LocalRateLimitSpec = { ...noRouteBucket, callers: [{ caller: 'spiffe://t/ns/x/sa/vip', tokenBucket: { maxTokens: 5, tokensPerFill: 5, fillIntervalMs: 1000 } }, { caller: '*', tokenBucket: { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 1000 } }] };
  const store = new RateLimitStore({ maxCallers: 2 });
  const p = rateLimitLayer(() => ({ spec: perCaller, key: 'k2' }), { now: clock.now, random: Math.random, store })(ok);
  const status = (req: ReturnType<typeof fakeRequest>) => {
    const rec = recorder();
    p(req, rec.handler);
    return rec.heads[0]?.status ?? rec.errors[0]?.status;
  };
  const vip = () => fakeRequest([], { downstream: { remoteAddress: '10.0.0.9', remotePort: 1, localAddress: '', localPort: 0, peerIdentity: 'spiffe://t/ns/x/sa/vip' } });
  assert.deepEqual([status(vip()), status(vip()), status(vip())], [200, 200, 200]);
  const from = (ip: string, headers: string[] = []) => fakeRequest(headers, { downstream: { remoteAddress: ip, remotePort: 1, localAddress: '', localPort: 0 } });
  assert.deepEqual([status(from('10.0.0.1')), status(from('10.0.0.1'))], [200, 429]);
  assert.equal(status(from('10.0.0.1', ['x-trellis-client-id', 'fresh'])), 429, 'a header the caller writes does not make a new bucket');
  assert.equal(status(from('10.0.0.2')), 200);
  assert.equal(status(from('10.0.0.3')), 200, 'a third caller evicts the oldest bucket (bounded)');
  assert.equal(callerIdentity(fakeRequest()), 'addr:10.1.2.3');
});

test('mirror: -shadow goes on the host, before the port', () => {
  assert.equal(shadowAuthority('api'), 'api-shadow');
  assert.equal(shadowAuthority('api.local:8080'), 'api.local-shadow:8080');
  assert.equal(shadowAuthority('[::1]:80'), '[::1]-shadow:80');
});
