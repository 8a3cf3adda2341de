import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compose, getHeader, getHeaderAll, type Dispatch } from '../http/exchange.ts';
import { ProxyError } from '../errors.ts';
import { forwardedLayer } from './forwarded.ts';
import { timeoutLayer } from './timeout.ts';
import { metricsLayer } from './metrics.ts';
import { createProxyStats } from '../proxy-stats.ts';
import { fakeController, fakeRequest, recorder } from './layers-test-kit.ts';

const ok: Dispatch = (_req, h) => {
  h.onStart(fakeController());
  h.onHeaders({ status: 200, headers: [] });
  h.onData(Buffer.from('hello'));
  h.onEnd(null);
};

test('forwarded: appends XFF (IPv4-mapped shown plain), sets XFP and x-request-id only when absent, via both ways', () => {
  let seen: string[] = [];
  const next: Dispatch = (req, h) => {
    seen = [...req.head.headers];
    ok(req, h);
  };
  const d = forwardedLayer({ via: 'trellis' })(next);
  const rec = recorder();
  d(fakeRequest(['x-forwarded-for', '1.1.1.1', 'x-request-id', 'keep-me', 'x-forwarded-proto', 'https', 'via', '1.1 lb']), rec.handler);
  assert.equal(getHeader(seen, 'x-forwarded-for'), '1.1.1.1, 10.1.2.3');
  assert.equal(getHeader(seen, 'x-request-id'), 'keep-me');
  assert.deepEqual(getHeaderAll(seen, 'x-forwarded-proto'), ['https']);
  assert.equal(getHeader(seen, 'via'), '1.1 lb, trellis');
  assert.equal(getHeader(rec.heads[0]!.headers, 'via'), 'trellis');

  forwardedLayer()(next)(fakeRequest(), recorder().handler);
  assert.equal(getHeader(seen, 'x-forwarded-for'), '10.1.2.3');
  assert.equal(getHeader(seen, 'x-forwarded-proto'), 'http');
  assert.match(getHeader(seen, 'x-request-id') ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4/);
  assert.equal(getHeader(seen, 'via'), undefined);
});

test('timeout: a listener request timeout aborts the exchange and reports REQUEST_TIMEOUT once', async () => {
  const ctl = fakeController();
  let inner: Parameters<Dispatch>[1] | undefined;
  const hang: Dispatch = (_req, h) => {
    inner = h;
    h.onStart(ctl);
  };
  const rec = recorder();
  const req = fakeRequest();
  timeoutLayer({ requestTimeoutMs: 30 })(hang)(req, rec.handler);
  await new Promise((r) => setTimeout(r, 80));
  assert.deepEqual(rec.events, ['start', 'error REQUEST_TIMEOUT']);
  assert.equal(ctl.aborted[0]?.code, 'REQUEST_TIMEOUT');
  assert.deepEqual(req.ctx.responseFlags, ['UT']);
  // The aborted pool's late callbacks are swallowed.
  inner!.onError(new ProxyError('UPSTREAM_RESET'));
  inner!.onEnd(null);
  assert.equal(rec.events.length, 2);
});

test('timeout: the deadline the router sets while dispatching (route timeout) is enforced', async () => {
  const ctl = fakeController();
  const router: Dispatch = (req, h) => {
    req.ctx.deadline = req.ctx.startTime + 20;
    h.onStart(ctl);
  };
  const rec = recorder();
  timeoutLayer()(router)(fakeRequest(), rec.handler);
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(rec.events, ['start', 'error REQUEST_TIMEOUT']);
});

test('timeout: gRPC grpc-timeout sets the deadline; a queued exchange started after the timeout is aborted at once', async () => {
  let late: Parameters<Dispatch>[1] | undefined;
  const queued: Dispatch = (_req, h) => {
    late = h; // the pool has not started it yet
  };
  const rec = recorder();
  const req = fakeRequest(['content-type', 'application/grpc', 'grpc-timeout', '20m'], { grpc: true });
  timeoutLayer()(queued)(req, rec.handler);
  // startTime is fractional (performance.now): (t + 20) - t is 20 only up to rounding.
  assert.ok(req.ctx.deadline !== null && Math.abs(req.ctx.deadline - req.ctx.startTime - 20) < 1e-6, `deadline ${req.ctx.deadline} for start ${req.ctx.startTime}`);
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(rec.events, ['error REQUEST_TIMEOUT']);
  const ctl = fakeController();
  late!.onStart(ctl);
  assert.equal(ctl.aborted[0]?.code, 'REQUEST_TIMEOUT');
  assert.deepEqual(rec.events, ['error REQUEST_TIMEOUT'], 'the downstream handler saw no second start');
});

test('timeout: with no timeout configured, a request without a deadline passes through unwrapped; one carrying a deadline is wrapped', async () => {
  const seen: Parameters<Dispatch>[1][] = [];
  const capture: Dispatch = (_req, h) => void seen.push(h);
  const layer = timeoutLayer({ routeTimeouts: false })(capture);
  const rec = recorder();
  layer(fakeRequest(), rec.handler);
  assert.equal(seen[0], rec.handler, 'no per-request wrapper or timer');
  layer(fakeRequest(['x-trellis-deadline-ms', '20']), rec.handler);
  layer(fakeRequest(['content-type', 'application/grpc', 'grpc-timeout', '20m'], { grpc: true }), rec.handler);
  timeoutLayer()(capture)(fakeRequest(), rec.handler);
  assert.ok(seen.slice(1).every((h) => h !== rec.handler), 'a deadline header, grpc-timeout, or possible route timeouts keep the wrapper');
  // The header's deadline (set by the resilience layer below) is enforced.
  const ctl = fakeController();
  const honour: Dispatch = (req, h) => {
    req.ctx.deadline = req.ctx.startTime + 20;
    h.onStart(ctl);
  };
  const rec2 = recorder();
  timeoutLayer({ routeTimeouts: false })(honour)(fakeRequest(['x-trellis-deadline-ms', '20']), rec2.handler);
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(rec2.events, ['start', 'error REQUEST_TIMEOUT']);
});

test('timeout: a response that completes in time clears the timers', async () => {
  const rec = recorder();
  const req = fakeRequest([], { deadline: performance.now() + 25 });
  timeoutLayer({ requestTimeoutMs: 25 })(ok)(req, rec.handler);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(rec.events, ['start', 'headers 200', 'data 5', 'end']);
});

test('timeout: the listener request timeout is disarmed once the response begins (Envoy request_timeout)', async () => {
  let h!: Parameters<Dispatch>[1];
  const streaming: Dispatch = (_req, handler) => {
    h = handler;
    handler.onStart(fakeController());
    handler.onHeaders({ status: 200, headers: [] });
  };
  const rec = recorder();
  const req = fakeRequest();
  timeoutLayer({ requestTimeoutMs: 20 })(streaming)(req, rec.handler);
  assert.equal(req.ctx.deadline, null, 'not an end-to-end deadline: nothing to propagate upstream');
  await new Promise((r) => setTimeout(r, 50));
  h.onData(Buffer.from('late but fine'));
  h.onEnd(null);
  assert.deepEqual(rec.events, ['start', 'headers 200', 'data 13', 'end']);
});

test('metrics: counts by cluster and status class, failures before headers by their rescue status, bytes and latency', () => {
  const stats = createProxyStats();
  const withCluster = (name: string, inner: Dispatch): Dispatch => (req, h) => {
    req.ctx.cluster = name;
    inner(req, h);
  };
  const fail: Dispatch = (_req, h) => h.onError(new ProxyError('UPSTREAM_CONNECT_FAILED'));
  const d = (inner: Dispatch): Dispatch => compose([metricsLayer({ stats, listener: 'out', direction: 'outbound' })], inner);
  d(withCluster('a', ok))(fakeRequest(), recorder().handler);
  d(withCluster('a', ok))(fakeRequest(), recorder().handler);
  d(withCluster('a', fail))(fakeRequest(), recorder().handler);
  d((_req, h) => h.onError(new ProxyError('NO_ROUTE')))(fakeRequest(), recorder().handler);
  const text = stats.registry.expose();
  assert.match(text, /^trellis_listener_requests_total\{listener="out",direction="outbound",cluster="a",code_class="2xx"\} 2$/m);
  assert.match(text, /^trellis_listener_requests_total\{listener="out",direction="outbound",cluster="a",code_class="5xx"\} 1$/m);
  assert.match(text, /^trellis_listener_requests_total\{listener="out",direction="outbound",cluster="none",code_class="4xx"\} 1$/m);
  assert.match(text, /^trellis_response_body_bytes_total\{listener="out",cluster="a"\} 10$/m);
  assert.match(text, /^trellis_listener_request_duration_seconds_count\{listener="out",direction="outbound",cluster="a"\} 3$/m);
});
