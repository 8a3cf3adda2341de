// Distributed tracing across three sidecars: client -> web's sidecar ->
// reviews (app forwards the trace headers) -> ratings. Spans are exported
// over OTLP/HTTP protobuf to a fake collector, decoded, and the trace is
// reassembled from parent links.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { app, call, startSidecar, type Sidecar } from './mesh-fixture.ts';
import { SPAN_KIND, type DecodedSpan } from './otlp-decode.ts';
import { collector } from './collector.ts';
import { bootstrapDoc, httpBackend, httpListener, parse, portOf, request, routeConfig, runProxy, staticCluster } from '../proxy/helpers.ts';
import { bootstrapFromJson } from '../../src/proxy/config/bootstrap.ts';

const TRACE_HEADERS = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'];

async function threeServices(t: TestContext, collectorUrl: string) {
  // Exports happen on flush() only (a timer export racing the flush is not
  // awaited by it).
  const tracing = { collectorUrl, samplingRate: 1, exportDelayMs: 60_000 };
  const seenByRatings: http.IncomingHttpHeaders[] = [];
  const ratingsApp = await app(t, (req, res) => {
    seenByRatings.push(req.headers);
    req.resume();
    res.end('5 stars');
  });
  const ratings = await startSidecar(t, { workload: 'ratings-v1', namespace: 'shop', appPort: ratingsApp, telemetry: { tracing } });
  let reviews: Sidecar | undefined;
  const reviewsApp = await app(t, (req, res) => {
    req.resume();
    // A well-behaved app copies the trace headers onto the calls it makes.
    const fwd: http.OutgoingHttpHeaders = {};
    for (const h of TRACE_HEADERS) if (req.headers[h] !== undefined) fwd[h] = req.headers[h];
    call(reviews!.outboundPort!, 'ratings.shop:9080', '/ratings/1', fwd).then(
      (r) => res.end(`reviews + ${r.body}`),
      () => res.writeHead(502).end(),
    );
  });
  reviews = await startSidecar(t, {
    workload: 'reviews-v1',
    namespace: 'shop',
    appPort: reviewsApp,
    upstreams: [{ service: 'ratings', namespace: 'shop', port: 9080, inboundPort: ratings.inboundPort!, workload: 'ratings-v1' }],
    telemetry: { tracing },
  });
  const web = await startSidecar(t, {
    workload: 'web',
    namespace: 'shop',
    upstreams: [{ service: 'reviews', namespace: 'shop', port: 9080, inboundPort: reviews.inboundPort!, workload: 'reviews-v1' }],
    telemetry: { tracing },
  });
  const flush = async (): Promise<void> => {
    for (const s of [web, reviews, ratings]) await s.proxy.telemetry.tracer!.flush();
  };
  return { web, reviews, ratings, flush, seenByRatings };
}

test('a trace spanning three services is reassembled from OTLP exports with the right parents', async (t) => {
  const c = await collector(t);
  const { web, flush, seenByRatings } = await threeServices(t, c.url);
  const r = await call(web.outboundPort!, 'reviews.shop:9080', '/reviews/1');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'reviews + 5 stars');
  await flush();
  assert.ok(c.contentTypes.has('application/x-protobuf'));
  assert.equal(c.spans.length, 4, JSON.stringify(c.spans.map((s) => [s.service, s.kind])));
  const traceIds = new Set(c.spans.map((s) => s.traceId));
  assert.equal(traceIds.size, 1, 'one trace');
  const byId = new Map(c.spans.map((s) => [s.spanId, s]));
  const root = c.spans.filter((s) => s.parentSpanId === '' || !byId.has(s.parentSpanId));
  assert.equal(root.length, 1);
  // Walk the chain from the root: each span has exactly one child.
  const chain: DecodedSpan[] = [root[0]!];
  for (;;) {
    const kids = c.spans.filter((s) => s.parentSpanId === chain[chain.length - 1]!.spanId);
    if (kids.length === 0) break;
    assert.equal(kids.length, 1);
    chain.push(kids[0]!);
  }
  assert.deepEqual(chain.map((s) => [s.service, s.kind]), [
    ['web', SPAN_KIND.CLIENT],
    ['reviews-v1', SPAN_KIND.SERVER],
    ['reviews-v1', SPAN_KIND.CLIENT],
    ['ratings-v1', SPAN_KIND.SERVER],
  ]);
  assert.equal(root[0]!.parentSpanId, '');
  for (const s of chain) {
    assert.equal(s.attributes['http.request.method'], 'GET');
    assert.equal(s.attributes['http.response.status_code'], 200);
    assert.equal(s.statusCode, 0);
  }
  assert.equal(chain[0]!.attributes['url.path'], '/reviews/1');
  assert.equal(chain[0]!.attributes['trellis.route'], 'shop/reviews/rule-0/match-0');
  assert.equal(chain[0]!.name, 'GET shop/reviews/rule-0/match-0');
  assert.equal(chain[3]!.attributes['url.path'], '/ratings/1');
  // The ratings app saw the context of the last hop.
  assert.equal(seenByRatings[0]!.traceparent, `00-${chain[3]!.traceId}-${chain[3]!.spanId}-01`);
});

test('the caller\'s decision is respected: unsampled traces export nothing but still propagate; B3 in, B3 out', async (t) => {
  const c = await collector(t);
  const { web, flush, seenByRatings } = await threeServices(t, c.url);
  const traceId = 'aa'.repeat(16);
  await call(web.outboundPort!, 'reviews.shop:9080', '/unsampled', { traceparent: `00-${traceId}-${'bb'.repeat(8)}-00` });
  await flush();
  assert.equal(c.spans.length, 0);
  assert.match(String(seenByRatings[0]!.traceparent), new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`));

  const b3Trace = 'cc'.repeat(16);
  const b3Span = 'dd'.repeat(8);
  await call(web.outboundPort!, 'reviews.shop:9080', '/b3', { 'x-b3-traceid': b3Trace, 'x-b3-spanid': b3Span, 'x-b3-sampled': '1' });
  await flush();
  assert.equal(c.spans.length, 4);
  assert.ok(c.spans.every((s) => s.traceId === b3Trace));
  const first = c.spans.find((s) => s.service === 'web')!;
  assert.equal(first.parentSpanId, b3Span);
  const seen = seenByRatings[1]!;
  assert.equal(seen['x-b3-traceid'], b3Trace);
  const last = c.spans.find((s) => s.service === 'ratings-v1')!;
  assert.equal(seen['x-b3-spanid'], last.spanId);
  assert.equal(seen['x-b3-sampled'], '1');
});

/** HttpConnectionManager.tracing as the control plane writes it. */
function otelTracing(uri: string, percent: number, serviceName?: string): object {
  return {
    randomSampling: { value: percent },
    provider: {
      name: 'envoy.tracers.opentelemetry',
      typedConfig: {
        '@type': 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig',
        httpService: { httpUri: { uri, cluster: 'otel-collector', timeout: '1s' } },
        ...(serviceName ? { serviceName } : {}),
      },
    },
  };
}

test('tracing from the listener config (HCM tracing): spans exported, switched off by the next config; bad settings name the field', async (t) => {
  const c = await collector(t);
  const seen: Array<string | undefined> = [];
  const be = await httpBackend(t, 'be', (req, res) => {
    seen.push(req.headers.traceparent as string | undefined);
    req.resume();
    res.end('ok');
  });
  const doc = (tracing?: object) => bootstrapDoc({
    listeners: [httpListener('edge', { routeConfigName: 'r', ...(tracing ? { tracing } : {}) })],
    clusters: [staticCluster('be', [be.port])],
    routes: [routeConfig('r', [{ cluster: 'be' }])],
  });
  const proxy = await runProxy(t, doc(otelTracing(c.url, 100, 'edge-gw')));
  const port = portOf(proxy, 'edge');
  assert.equal((await request(port, { agent: false, path: '/a' })).status, 200);
  await proxy.telemetry.flushTracing();
  assert.equal(c.spans.length, 1);
  assert.equal(c.spans[0]!.service, 'edge-gw');
  assert.equal(seen.shift(), `00-${c.spans[0]!.traceId}-${c.spans[0]!.spanId}-01`);

  // 0 %: context propagated unsampled, nothing exported.
  assert.ok((await proxy.applyConfig(parse(doc(otelTracing(c.url, 0)), 'v2').config)).ok);
  await request(port, { agent: false, path: '/b' });
  await proxy.telemetry.flushTracing();
  assert.equal(c.spans.length, 1);
  assert.match(seen.shift() ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);

  // No tracing in the config (and none for the proxy): no context at all.
  assert.ok((await proxy.applyConfig(parse(doc(), 'v3').config)).ok);
  await request(port, { agent: false, path: '/c' });
  assert.equal(seen.shift(), undefined);

  const errorsOf = (tracing: object): string[] => {
    const r = bootstrapFromJson(doc(tracing), 'bad');
    assert.equal(r.ok, false);
    return r.ok ? [] : r.errors.map((e) => `${e.path}: ${e.message}`);
  };
  const at = 'staticResources.listeners[0].filterChains[0].filters[0].typedConfig.tracing';
  assert.deepEqual(errorsOf({ provider: { name: 'envoy.tracers.zipkin', typedConfig: { '@type': 'type.googleapis.com/envoy.config.trace.v3.ZipkinConfig' } } }), [
    `${at}.provider.name: tracer "envoy.tracers.zipkin" is not supported (Trellis exports OpenTelemetry: envoy.tracers.opentelemetry)`,
  ]);
  assert.deepEqual(errorsOf(otelTracing(c.url, 150)), [`${at}.randomSampling.value: must be a percentage from 0 to 100 (got 150)`]);
  assert.deepEqual(errorsOf(otelTracing('collector:4318', 1)), [`${at}.provider.typedConfig.httpService.httpUri.uri: must be an http(s) URL (got "collector:4318")`]);
});
