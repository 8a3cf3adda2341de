import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePrometheusText } from './prom-text.ts';
import { createGoldenMetrics, histogramQuantile, parseWindow, shortService } from './golden.ts';
import { EmbeddedAggregator, KEPT_METRICS } from './embedded-source.ts';
import { groupQueries } from './prometheus-source.ts';

test('exposition parser: labels with escapes, +Inf, filter, errors name the line', () => {
  const r = parsePrometheusText('# HELP x y\nx{a="1",b="q\\"uote\\\\"} 3\nx_bucket{le="+Inf"} +Inf\nother 1\n', (n) => n.startsWith('x'));
  assert.ok(r.ok);
  assert.deepEqual(r.samples, [
    { name: 'x', labels: { a: '1', b: 'q"uote\\' }, value: 3 },
    { name: 'x_bucket', labels: { le: '+Inf' }, value: Infinity },
  ]);
  const bad = parsePrometheusText('x{a=1} 2\n');
  assert.equal(bad.ok, false);
  assert.match(!bad.ok ? bad.error : '', /line 1: malformed label set/);
});

test('histogram_quantile follows Prometheus (interpolation, +Inf bucket, empty)', () => {
  const b: [number, number][] = [[0.1, 50], [0.2, 90], [0.5, 100], [Infinity, 100]];
  assert.equal(histogramQuantile(0.5, b), 0.1);
  assert.ok(Math.abs(histogramQuantile(0.7, b)! - 0.15) < 1e-9);
  assert.ok(Math.abs(histogramQuantile(0.95, b)! - 0.35) < 1e-9);
  assert.equal(histogramQuantile(0.99, [[0.1, 1], [Infinity, 10]]), 0.1);
  assert.equal(histogramQuantile(0.5, [[0.1, 0], [Infinity, 0]]), null);
  assert.equal(parseWindow('2m').ok, false);
  assert.equal(shortService('reviews.shop.svc.cluster.local'), 'reviews');
});

function expo(n: number, fails: number, opts: { src?: string; mtls?: boolean; route?: string; direction?: string } = {}): string {
  const l = (code: string) =>
    `direction="${opts.direction ?? 'inbound'}",source_workload="${opts.src ?? 'web'}",source_namespace="shop",destination_workload="reviews-v1",destination_namespace="shop",destination_service="reviews.shop.svc.cluster.local",route="${opts.route ?? 'inbound'}",response_code="${code}",grpc_status="",protocol="http1",mtls="${opts.mtls ? 'true' : 'false'}",response_flags="-"`;
  return [
    `trellis_requests_total{${l('200')}} ${n - fails}`,
    ...(fails > 0 ? [`trellis_requests_total{${l('503')}} ${fails}`] : []),
    `trellis_request_duration_seconds_bucket{${l('200')},le="0.01"} ${Math.floor((n - fails) / 2)}`,
    `trellis_request_duration_seconds_bucket{${l('200')},le="0.1"} ${n - fails}`,
    `trellis_request_duration_seconds_bucket{${l('200')},le="+Inf"} ${n - fails}`,
    'unrelated_total 5',
  ].join('\n');
}

test('embedded aggregator: increases over the window, new series count from zero, restarts, golden rows', async () => {
  let now = 0;
  const agg = new EmbeddedAggregator({ scrapeIntervalMs: 5000, now: () => now });
  const rec = (target: string, t: number, text: string): void => {
    const r = parsePrometheusText(text, (n) => KEPT_METRICS.has(n));
    assert.ok(r.ok);
    agg.record(target, t, r.samples);
  };
  rec('p1', 0, '');
  rec('p1', 5000, expo(10, 0, { mtls: true })); // new series: all 10 count
  rec('p1', 10_000, expo(70, 6, { mtls: true }));
  rec('p2', 0, expo(100, 0, { src: 'batch' })); // first scrape: baseline only
  rec('p2', 10_000, expo(30, 0, { src: 'batch' })); // restarted: 30 new
  now = 10_000;
  const golden = createGoldenMetrics(agg);
  const [svc] = await golden.services({ window: '1m' });
  assert.ok(svc);
  assert.equal(svc.name, 'reviews');
  assert.equal(svc.requests, 100);
  // 10 s of history, not the 1m window: 100 requests in 10 s are 10 rps.
  assert.equal(svc.rps, 100 / 10);
  assert.equal(svc.successRate, 94 / 100);
  assert.equal(svc.mtlsShare, 0.7);
  assert.equal(svc.meshed, 2);
  // p50 of 94 successful requests: 47 at <=10ms -> rank 47 is the top of the first bucket.
  assert.ok(svc.latencyMs.p50 !== null && Math.abs(svc.latencyMs.p50 - 10) < 1e-6);
  const edges = await golden.edges({ window: '1m' });
  assert.deepEqual(edges.map((e) => [e.source.workload, e.destination.workload, e.requests]), [['batch', 'reviews-v1', 30], ['web', 'reviews-v1', 70]]);
  const topo = await golden.topology({ window: '1m' });
  assert.deepEqual(topo.nodes.map((n) => n.id), ['shop/batch', 'shop/reviews-v1', 'shop/web']);
  // Once the history is longer than the window, the window's span counts:
  // 60 s from the baseline at or before the window's start.
  for (let t = 15_000; t <= 70_000; t += 5000) rec('p1', t, expo(70 + (t - 10_000) / 500, 6, { mtls: true }));
  now = 70_000;
  const [later] = await golden.services({ window: '1m' });
  assert.equal(later?.requests, 120);
  assert.equal(later?.rps, 2);
  // Outside the window of the last scrape pair only the newest step counts.
  now = 70_000 + 60_000 + 1;
  assert.deepEqual(await golden.services({ window: '1m' }), []);
});

test('PromQL equivalents are what the docs say', () => {
  const q = groupQueries({ direction: 'inbound', by: ['destination_service'], match: { destination_namespace: 'shop' } }, '5m');
  assert.equal(q.requests, 'sum by (destination_service) (increase(trellis_requests_total{direction="inbound",destination_namespace="shop"}[5m]))');
  assert.equal(q.p99, 'histogram_quantile(0.99, sum by (destination_service,le) (increase(trellis_request_duration_seconds_bucket{direction="inbound",destination_namespace="shop"}[5m])))');
  assert.match(q.successes, /response_code!~"5..",grpc_status!~"2\|4\|12\|13\|14\|15"/);
});

test('callers: one row per calling workload over all of the service\'s workloads together (one merged group, not per-workload rows)', async () => {
  const specs: unknown[] = [];
  const stats = { requests: 30, successes: 27, mtls: 30, latencyMs: { p50: 2, p95: 9, p99: 40 }, proxies: 3, tcpConnections: 0, coveredMs: 60_000 };
  const src = {
    groups: async (spec: unknown) => {
      specs.push(spec);
      return [{ labels: { source_workload: 'productpage-v1', source_namespace: 'shop' }, ...stats }];
    },
  };
  const m = createGoldenMetrics(src, { members: () => [{ name: 'reviews', namespace: 'shop', workloads: ['reviews-v1', 'reviews-v2', 'reviews-v3'] }] });
  const rows = await m.callers({ window: '1m', service: 'reviews', namespace: 'shop' });
  assert.deepEqual(specs, [{ direction: 'inbound', by: ['source_workload', 'source_namespace'], match: { destination_namespace: 'shop', destination_workload: ['reviews-v1', 'reviews-v2', 'reviews-v3'] } }]);
  assert.equal(rows.length, 1);
  assert.deepEqual({ kind: rows[0]!.kind, name: rows[0]!.name, namespace: rows[0]!.namespace, requests: rows[0]!.requests, p99: rows[0]!.latencyMs.p99, rps: rows[0]!.rps }, { kind: 'caller', name: 'productpage-v1', namespace: 'shop', requests: 30, p99: 40, rps: 0.5 });
  // A service the control plane has no members for: its own label.
  specs.length = 0;
  await m.callers({ window: '1m', service: 'ratings', namespace: 'shop' });
  assert.deepEqual(specs, [{ direction: 'inbound', by: ['source_workload', 'source_namespace'], match: { destination_namespace: 'shop', destination_service: 'ratings.shop.svc.cluster.local' } }]);
});
