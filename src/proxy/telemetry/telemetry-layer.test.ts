import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compose, getHeader, type Dispatch, type HeaderList, type ProxyRequest, type RequestContext, type ResponseHandler } from '../http/exchange.ts';
import { ProxyError } from '../errors.ts';
import { Registry } from '../stats.ts';
import { AccessLog, type AccessLogEntry } from './access-log.ts';
import { TapHub, REDACTED } from './tap.ts';
import { createTelemetryStats } from './telemetry-stats.ts';
import { telemetryLayer } from './telemetry-layer.ts';

const clock = { t: 1000 };

function request(direction: RequestContext['direction'], o: { path?: string; authority?: string; headers?: HeaderList; peerIdentity?: string; grpc?: boolean } = {}): ProxyRequest {
  return {
    head: { method: 'GET', scheme: 'http', authority: o.authority ?? 'reviews.shop:9080', path: o.path ?? '/r/1?x=1', headers: o.headers ?? [], httpVersion: '1.1' },
    body: null,
    ctx: {
      listener: direction === 'inbound' ? 'inbound|9080' : 'outbound',
      direction,
      downstream: { remoteAddress: '127.0.0.1', remotePort: 4000, localAddress: '127.0.0.1', localPort: 15001, ...(o.peerIdentity ? { peerIdentity: o.peerIdentity, tls: true } : {}) },
      startTime: clock.t,
      deadline: null,
      responseFlags: [],
      grpc: o.grpc ?? false,
      attempts: 0,
      attrs: new Map(),
    },
  };
}

/** A terminal that routes like the router and answers `status`. */
function terminal(status: number | ProxyError, seen: ProxyRequest[] = [], trailers: HeaderList | null = null): Dispatch {
  return (req, handler) => {
    seen.push(req);
    req.ctx.route = 'shop/reviews/rule-0/match-0';
    req.ctx.cluster = 'reviews.shop.svc:9080';
    req.ctx.upstreamEndpoint = '10.0.0.7:9080';
    if (status instanceof ProxyError) {
      handler.onError(status);
      return;
    }
    handler.onStart({ resume() {}, abort() {} });
    handler.onHeaders({ status, headers: ['set-cookie', 'sid=1', 'content-type', 'text/plain'] });
    handler.onData(Buffer.from('hello'));
    handler.onEnd(trailers);
  };
}

const sink = (): ResponseHandler & { done: Promise<void> } => {
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  return { done, onStart() {}, onHeaders: () => true, onData: () => true, onEnd: () => resolve(), onError: () => resolve() };
};

function setup(direction: RequestContext['direction'], final: Dispatch, extra: { accessLog?: AccessLog; tap?: TapHub } = {}) {
  const registry = new Registry();
  const stats = createTelemetryStats(registry, { maxTuples: 5 });
  const d = compose(
    [telemetryLayer({ stats, self: { workload: direction === 'inbound' ? 'reviews-v1' : 'web', namespace: 'shop' }, direction, endpoints: (c, e) => (c === 'reviews.shop.svc:9080' && e === '10.0.0.7:9080' ? { workload: 'reviews-v1', mtls: false } : undefined), now: () => (clock.t += 12), ...extra })],
    final,
  );
  return { registry, d };
}

test('outbound: counts exact, labels from own identity and endpoint metadata, peer header stamped', async () => {
  const seen: ProxyRequest[] = [];
  const { registry, d } = setup('outbound', terminal(200, seen));
  for (let i = 0; i < 3; i++) {
    const s = sink();
    d(request('outbound', { headers: ['x-trellis-peer', 'evil/spoof'] }), s);
    await s.done;
  }
  assert.equal(getHeader(seen[0]!.head.headers, 'x-trellis-peer'), 'shop/web');
  const text = registry.expose();
  const labels = 'direction="outbound",source_workload="web",source_namespace="shop",destination_workload="reviews-v1",destination_namespace="shop",destination_service="reviews.shop.svc.cluster.local",route="shop/reviews/rule-0/match-0",response_code="200",grpc_status="",protocol="http1",mtls="false",response_flags="-",parent_service="reviews.shop.svc.cluster.local"';
  assert.match(text, new RegExp(`^trellis_requests_total\\{${labels}\\} 3$`, 'm'));
  assert.match(text, new RegExp(`^trellis_request_duration_seconds_count\\{${labels}\\} 3$`, 'm'));
  // 24 ms per request (head at +12 ms, end at +24 ms): in the 25 ms bucket.
  assert.match(text, new RegExp(`^trellis_request_duration_seconds_bucket\\{${labels},le="0.01"\\} 0$`, 'm'));
  assert.match(text, new RegExp(`^trellis_request_duration_seconds_bucket\\{${labels},le="0.025"\\} 3$`, 'm'));
  assert.match(text, new RegExp(`^trellis_response_bytes_total\\{${labels}\\} 15$`, 'm'));
  assert.doesNotMatch(text, /route="\/r\/1/);
});

test('inbound: source from the peer header, mTLS namespace wins, header removed before the app', async () => {
  const seen: ProxyRequest[] = [];
  const { registry, d } = setup('inbound', terminal(503, seen));
  const s1 = sink();
  d(request('inbound', { headers: ['x-trellis-peer', 'shop/web'], peerIdentity: 'spiffe://td/ns/shop/sa/web' }), s1);
  await s1.done;
  const s2 = sink();
  d(request('inbound', { headers: ['x-trellis-peer', 'shop/web'], peerIdentity: 'spiffe://td/ns/other/sa/x' }), s2);
  await s2.done;
  assert.equal(getHeader(seen[0]!.head.headers, 'x-trellis-peer'), undefined);
  const text = registry.expose();
  assert.match(text, /^trellis_requests_total\{direction="inbound",source_workload="web",source_namespace="shop",destination_workload="reviews-v1",destination_namespace="shop",destination_service="reviews.shop.svc.cluster.local",route="shop\/reviews\/rule-0\/match-0",response_code="503",grpc_status="",protocol="http1",mtls="true",response_flags="-",parent_service="reviews.shop.svc.cluster.local"\} 1$/m);
  assert.match(text, /^trellis_requests_total\{direction="inbound",source_workload="unknown",source_namespace="other",[^}]*\} 1$/m);
});

test('errors count with the rescue status and flag; gRPC status from trailers or the error', async () => {
  const { registry, d } = setup('outbound', terminal(new ProxyError('NO_HEALTHY_UPSTREAM')));
  const s = sink();
  d(request('outbound', { grpc: true }), s);
  await s.done;
  const ok = setup('outbound', terminal(200, [], ['grpc-status', '5']));
  const s2 = sink();
  ok.d(request('outbound', { grpc: true }), s2);
  await s2.done;
  assert.match(registry.expose(), /response_code="503",grpc_status="14",protocol="grpc",mtls="false",response_flags="UH",parent_service="[^"]*"\} 1$/m);
  assert.match(ok.registry.expose(), /response_code="200",grpc_status="5",protocol="grpc",[^}]*\} 1$/m);
});

test('label tuples beyond the bound fold into "other"', async () => {
  // Distinct routes through a terminal that names them.
  let n = 0;
  const many = setup('outbound', (req, h) => {
    h.onStart({ resume() {}, abort() {} });
    req.ctx.route = `route-${n++}`;
    h.onHeaders({ status: 200, headers: [] });
    h.onEnd(null);
  });
  for (let i = 0; i < 8; i++) {
    const s = sink();
    many.d(request('outbound'), s);
    await s.done;
  }
  const text = many.registry.expose();
  assert.equal((text.match(/^trellis_requests_total\{/gm) ?? []).length, 6);
  assert.match(text, /^trellis_requests_total\{direction="outbound",source_workload="other",[^}]*route="other"[^}]*\} 3$/m);
  assert.match(text, /^trellis_telemetry_series_overflow_total\{metric="trellis_requests_total"\} 3$/m);
});

test('access log: off by default, switchable, all fields, sampling, per-service override', async () => {
  const lines: string[] = [];
  const log = new AccessLog({ sink: (l) => lines.push(l) });
  const { d } = setup('outbound', terminal(200), { accessLog: log });
  const run = async (): Promise<void> => {
    const s = sink();
    d(request('outbound', { headers: ['x-request-id', 'rid-1', 'user-agent', 'curl/8', 'traceparent', `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`] }), s);
    await s.done;
  };
  await run();
  assert.equal(lines.length, 0);
  log.setEnabled(true);
  await run();
  assert.equal(lines.length, 1);
  const e = JSON.parse(lines[0]!) as AccessLogEntry;
  assert.equal(e.method, 'GET');
  assert.equal(e.authority, 'reviews.shop:9080');
  assert.equal(e.path, '/r/1?x=1');
  assert.equal(e.response_code, 200);
  assert.equal(e.duration_ms, 24);
  assert.equal(e.response_ms, 12);
  assert.equal(e.bytes_sent, 5);
  assert.equal(e.upstream_host, '10.0.0.7:9080');
  assert.equal(e.source_workload, 'web');
  assert.equal(e.destination_workload, 'reviews-v1');
  assert.equal(e.destination_service, 'reviews.shop.svc.cluster.local');
  assert.equal(e.request_id, 'rid-1');
  assert.equal(e.response_flags, '-');
  assert.ok(!Number.isNaN(Date.parse(e.start_time)));
  // Sampling: a rate of 0.5 with a fixed random source logs every other request.
  const sampled: string[] = [];
  let r = 0;
  const half = new AccessLog({ enabled: true, sampleRate: 0.5, sink: (l) => sampled.push(l), random: () => ((r++ % 2) === 0 ? 0.1 : 0.9) });
  const h = setup('outbound', terminal(200), { accessLog: half });
  for (let i = 0; i < 4; i++) {
    const s = sink();
    h.d(request('outbound'), s);
    await s.done;
  }
  assert.equal(sampled.length, 2);
  // Per-service config: this service is on while the global switch is off.
  const per: string[] = [];
  const svcLog = new AccessLog({ services: { 'reviews.shop.svc.cluster.local': true }, sink: (l) => per.push(l) });
  assert.equal(svcLog.active, true);
  assert.equal(svcLog.wants('ratings.shop.svc.cluster.local'), false);
  const p = setup('outbound', terminal(200), { accessLog: svcLog });
  const s = sink();
  p.d(request('outbound'), s);
  await s.done;
  assert.equal(per.length, 1);
});

test('tap: filter, redaction, inactive hub builds nothing, slow subscriber drops and counts', async () => {
  const tap = new TapHub();
  const { d } = setup('outbound', terminal(200), { tap });
  const send = async (path: string, headers: HeaderList = []): Promise<void> => {
    const s = sink();
    d(request('outbound', { path, headers }), s);
    await s.done;
  };
  let built = 0;
  const publish = tap.publish.bind(tap);
  tap.publish = (p, b) => publish(p, () => (built++, b()));
  await send('/nobody-listening');
  assert.equal(tap.active, false);
  assert.equal(built, 0);
  const got: string[] = [];
  const sub = tap.subscribe({ pathPrefix: '/r/', method: 'get', responseCode: 200 }, { write: (l) => got.push(l), backlog: () => 0 });
  await send('/other');
  await send('/r/2', ['authorization', 'Bearer s3cret', 'cookie', 'a=b', 'x-api-key', 'k', 'x-session-token', 't', 'accept', 'text/plain']);
  assert.equal(got.length, 1);
  const ev = JSON.parse(got[0]!) as { path: string; request_headers: Record<string, string>; response_headers: Record<string, string> };
  assert.equal(ev.path, '/r/2');
  for (const h of ['authorization', 'cookie', 'x-api-key', 'x-session-token']) assert.equal(ev.request_headers[h], REDACTED, h);
  assert.equal(ev.request_headers['accept'], 'text/plain');
  assert.equal(ev.response_headers['set-cookie'], REDACTED);
  assert.doesNotMatch(got[0]!, /s3cret|hello/);
  sub.close();
  assert.equal(tap.active, false);
  // A lagging subscriber: backlog above the bound drops, then a marker.
  let backlog = 1_000_000;
  const slow: string[] = [];
  const s2 = tap.subscribe({}, { write: (l) => slow.push(l), backlog: () => backlog }, { maxBacklogBytes: 1000 });
  await send('/a');
  await send('/b');
  assert.equal(s2.dropped(), 2);
  backlog = 0;
  await send('/c');
  assert.deepEqual(JSON.parse(slow[0]!), { type: 'dropped', count: 2 });
  assert.equal((JSON.parse(slow[1]!) as { path: string }).path, '/c');
  s2.close();
});
