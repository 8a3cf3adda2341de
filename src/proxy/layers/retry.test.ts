import { test } from 'node:test';
import assert from 'node:assert/strict';
import { retryLayer, headConditions, DEADLINE_HEADER, type RetryDeps } from './retry.ts';
import { RetryBudget } from './retry-budget.ts';
import { FakeClock } from './fake-clock.ts';
import { fakeRequest, recorder } from './layers-test-kit.ts';
import { ProxyError } from '../errors.ts';
import { getHeader } from '../http/exchange.ts';
import type { Dispatch, ExchangeController, ProxyRequest, ResponseHandler } from '../http/exchange.ts';
import type { RetryOn, RetryPolicySpec } from '../config/envoy-resilience.ts';

function policy(p: Partial<RetryPolicySpec> & { on?: RetryOn[] } = {}): RetryPolicySpec {
  return {
    retryOn: new Set(p.on ?? ['5xx']),
    numRetries: p.numRetries ?? 2,
    perTryTimeoutMs: p.perTryTimeoutMs ?? 0,
    retriableStatusCodes: p.retriableStatusCodes ?? new Set(),
    backoffBaseMs: p.backoffBaseMs ?? 25,
    backoffMaxMs: p.backoffMaxMs ?? 250,
  };
}

/** A scripted upstream: each attempt gets the next behaviour. */
function upstream(script: Array<(h: ResponseHandler, req: ProxyRequest) => void>) {
  const seen: ProxyRequest[] = [];
  const aborted: ProxyError[] = [];
  const dispatch: Dispatch = (req, h) => {
    seen.push(req);
    const c: ExchangeController = { resume() {}, abort: (e) => { aborted.push(e); h.onError(e); } };
    h.onStart(c);
    const step = script[seen.length - 1] ?? script[script.length - 1]!;
    step(h, req);
  };
  return { dispatch, seen, aborted };
}

const respond = (status: number, headers: string[] = []) => (h: ResponseHandler) => {
  if (h.onHeaders({ status, headers })) {
    h.onData(Buffer.from('x'));
    h.onEnd(null);
  }
};

function deps(clock: FakeClock, over: Partial<RetryDeps> = {}): RetryDeps & { budgetObj: RetryBudget; active: { active: number } } {
  const budgetObj = new RetryBudget({ ratio: 0.2, minRetriesPerSecond: 10 });
  const active = { active: 0 };
  return { now: clock.now, random: () => 0.5, setTimer: clock.setTimer, budget: () => budgetObj, activeRetries: () => active, maxRetries: () => 3, budgetObj, active, ...over };
}

test('retry: a 503 head is discarded and the next attempt answers after a jittered backoff', () => {
  const clock = new FakeClock();
  const up = upstream([respond(503), respond(200)]);
  const d = deps(clock);
  const rec = recorder();
  const req = fakeRequest();
  retryLayer(() => policy(), d)(up.dispatch)(req, rec.handler);
  assert.equal(up.seen.length, 1);
  assert.equal(up.aborted.length, 1, 'the 503 attempt was aborted upstream');
  assert.deepEqual(rec.events, ['start'], 'nothing of the 503 reached the caller');
  clock.advance(12); // backoff = 0.5 x 25 ms
  assert.equal(up.seen.length, 1);
  clock.advance(1);
  assert.equal(up.seen.length, 2);
  assert.deepEqual(rec.events, ['start', 'start', 'headers 200', 'data 1', 'end']);
  assert.equal(req.ctx.attempts, 2);
  assert.equal(d.active.active, 0, 'the active retry count is back to zero');
  assert.deepEqual(req.ctx.responseFlags, []);
});

test('retry: POST is not retried on 5xx but is after a connect failure; exhaustion flags URX', () => {
  const clock = new FakeClock();
  const up = upstream([respond(503)]);
  const rec = recorder();
  const post = fakeRequest();
  post.head.method = 'POST';
  retryLayer(() => policy(), deps(clock))(up.dispatch)(post, rec.handler);
  assert.equal(up.seen.length, 1);
  assert.deepEqual(rec.events, ['start', 'headers 503', 'data 1', 'end']);

  const up2 = upstream([(h) => h.onError(new ProxyError('UPSTREAM_CONNECT_FAILED')), respond(200)]);
  const rec2 = recorder();
  const post2 = fakeRequest();
  post2.head.method = 'POST';
  retryLayer(() => policy({ on: ['connect-failure'] }), deps(clock))(up2.dispatch)(post2, rec2.handler);
  clock.advance(100);
  assert.equal(up2.seen.length, 2);
  assert.equal(rec2.heads[0]?.status, 200);

  const up3 = upstream([respond(503)]);
  const rec3 = recorder();
  const get = fakeRequest();
  retryLayer(() => policy({ numRetries: 2 }), deps(clock))(up3.dispatch)(get, rec3.handler);
  clock.advance(1000);
  assert.equal(up3.seen.length, 3);
  assert.equal(rec3.heads[0]?.status, 503, 'the last 503 is forwarded');
  assert.deepEqual(get.ctx.responseFlags, ['URX']);
});

test('retry: no retry once the head was forwarded (an error after it resets the caller)', () => {
  const clock = new FakeClock();
  const up = upstream([(h) => {
    h.onHeaders({ status: 200, headers: [] });
    h.onData(Buffer.from('part'));
    h.onError(new ProxyError('UPSTREAM_RESET'));
  }]);
  const rec = recorder();
  retryLayer(() => policy({ on: ['reset', '5xx'] }), deps(clock))(up.dispatch)(fakeRequest(), rec.handler);
  clock.advance(1000);
  assert.equal(up.seen.length, 1);
  assert.deepEqual(rec.events, ['start', 'headers 200', 'data 4', 'error UPSTREAM_RESET']);
});

test('retry: per-try timeout aborts the attempt; the deadline header carries the smaller budget', () => {
  const clock = new FakeClock();
  clock.t = 1000;
  const hang = () => {};
  const up = upstream([hang, respond(200)]);
  const rec = recorder();
  const req = fakeRequest([], { deadline: 1000 + 5000 });
  retryLayer(() => policy({ perTryTimeoutMs: 100 }), deps(clock))(up.dispatch)(req, rec.handler);
  assert.equal(getHeader(up.seen[0]!.head.headers, DEADLINE_HEADER), '100');
  assert.equal(req.ctx.deadline, 6000, 'the request deadline is restored after dispatch');
  clock.advance(100);
  assert.equal(up.aborted[0]?.code, 'PER_TRY_TIMEOUT');
  clock.advance(50);
  assert.equal(up.seen.length, 2);
  assert.equal(rec.heads[0]?.status, 200);

  const up2 = upstream([hang]);
  const rec2 = recorder();
  const req2 = fakeRequest();
  retryLayer(() => policy({ perTryTimeoutMs: 100, numRetries: 0 }), deps(clock))(up2.dispatch)(req2, rec2.handler);
  clock.advance(100);
  assert.equal(rec2.errors[0]?.code, 'PER_TRY_TIMEOUT');
  assert.deepEqual(req2.ctx.responseFlags, ['UT']);
});

test('retry: the budget and the max_retries breaker stop retries', () => {
  const clock = new FakeClock();
  const exhausted: string[] = [];
  const d = deps(clock, { budget: () => new RetryBudget({ ratio: 0, minRetriesPerSecond: 0 }), onBudgetExhausted: (c) => exhausted.push(c) });
  const up = upstream([(h) => h.onError(new ProxyError('UPSTREAM_RESET'))]);
  const rec = recorder();
  const req = fakeRequest([], { cluster: 'c' });
  retryLayer(() => policy({ on: ['reset'] }), d)(up.dispatch)(req, rec.handler);
  assert.equal(up.seen.length, 1);
  assert.equal(rec.errors[0]?.code, 'RETRY_BUDGET_EXHAUSTED');
  assert.deepEqual(exhausted, ['c']);
  assert.deepEqual(req.ctx.responseFlags, ['URX']);

  const overflow: string[] = [];
  const d2 = deps(clock, { maxRetries: () => 0, onRetryOverflow: (c) => overflow.push(c) });
  const up2 = upstream([respond(503)]);
  const rec2 = recorder();
  retryLayer(() => policy(), d2)(up2.dispatch)(fakeRequest([], { cluster: 'c' }), rec2.handler);
  assert.equal(up2.seen.length, 1);
  assert.equal(rec2.heads[0]?.status, 503);
  assert.deepEqual(overflow, ['c']);
});

test('retry: the caller aborting during backoff cancels the retry', () => {
  const clock = new FakeClock();
  const up = upstream([respond(503), respond(200)]);
  const d = deps(clock);
  let controller: ExchangeController | undefined;
  const rec = recorder();
  const h: ResponseHandler = { ...rec.handler, onStart: (c) => { controller = c; rec.events.push('start'); } };
  retryLayer(() => policy(), d)(up.dispatch)(fakeRequest(), h);
  assert.equal(d.active.active, 1, 'the retry in backoff counts as active');
  controller!.abort(new ProxyError('DOWNSTREAM_CLOSED'));
  assert.equal(d.active.active, 0);
  clock.advance(1000);
  assert.equal(up.seen.length, 1, 'no attempt after the abort');
  assert.deepEqual(rec.events, ['start', 'error DOWNSTREAM_CLOSED']);
});

test('retry: gRPC trailers-only statuses are retried only when named', () => {
  const p = policy({ on: ['unavailable'] });
  assert.deepEqual(headConditions({ status: 200, headers: ['grpc-status', '14'] }, p), ['unavailable']);
  assert.deepEqual(headConditions({ status: 200, headers: ['grpc-status', '3'] }, p), []);
  const clock = new FakeClock();
  const up = upstream([respond(200, ['content-type', 'application/grpc', 'grpc-status', '14']), respond(200, ['grpc-status', '0'])]);
  const rec = recorder();
  const req = fakeRequest([], { grpc: true });
  req.head.method = 'POST';
  retryLayer(() => p, deps(clock))(up.dispatch)(req, rec.handler);
  clock.advance(100);
  assert.equal(up.seen.length, 2);
  assert.equal(getHeader(rec.heads[0]!.headers, 'grpc-status'), '0');
});

test('retry: a retry avoids the endpoint the failed attempt used', () => {
  const clock = new FakeClock();
  const up = upstream([respond(503), respond(200)]);
  const req = fakeRequest();
  const dispatch: Dispatch = (r, h) => {
    r.ctx.upstreamEndpoint = `10.0.0.${up.seen.length + 1}:80`;
    up.dispatch(r, h);
  };
  retryLayer(() => policy(), deps(clock))(dispatch)(req, recorder().handler);
  clock.advance(100);
  assert.deepEqual([...(req.ctx.attrs.get('trellis.avoidEndpoints') as Set<string>)], ['10.0.0.1:80']);
});
