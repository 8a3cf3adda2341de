// CLI output snapshots against a fixed fake data source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EdgeRow, GoldenMetrics, StatRow } from '../../src/control-plane/telemetry/golden.ts';
import { captureIO } from '../../src/cli/command-io.ts';
import * as stat from '../../src/cli/commands/stat.ts';
import * as routes from '../../src/cli/commands/routes.ts';
import * as edges from '../../src/cli/commands/edges.ts';
import { TopTable, topColumns } from '../../src/cli/commands/top.ts';
import { fitTable } from '../../src/cli/fit-table.ts';
import { formatTapRequest } from '../../src/cli/tap-stream.ts';
import { TapJoiner, type TapRequest } from '../../src/cli/tap-join.ts';
import type { TapEvent } from '../../src/proxy/telemetry/tap.ts';

const lat = (p50: number | null, p95: number | null, p99: number | null) => ({ p50, p95, p99 });
const SERVICES: StatRow[] = [
  { kind: 'service', name: 'productpage', namespace: 'shop', service: 'productpage.shop.svc.cluster.local', requests: 600, rps: 10, successRate: 1, latencyMs: lat(3.2, 12, 48.7), mtlsShare: 1, meshed: 2, tcpConnections: 0 },
  { kind: 'service', name: 'reviews', namespace: 'shop', service: 'reviews.shop.svc.cluster.local', requests: 90, rps: 1.5, successRate: 0.9333, latencyMs: lat(0.45, 20, 250), mtlsShare: 0.5, meshed: 3, tcpConnections: 4 },
];
const EDGES: EdgeRow[] = [
  { source: { workload: 'productpage-v1', namespace: 'shop' }, destination: { workload: 'reviews-v1', namespace: 'shop' }, requests: 60, rps: 1, successRate: 1, latencyMs: lat(4, 9, 12000), mtlsShare: 1 },
  { source: { workload: 'unknown', namespace: 'unknown' }, destination: { workload: 'productpage-v1', namespace: 'shop' }, requests: 6, rps: 0.1, successRate: null, latencyMs: lat(null, null, null), mtlsShare: 0 },
];

function fake(calls: unknown[] = []): GoldenMetrics {
  return {
    services: async (q) => (calls.push(['services', q]), SERVICES),
    workloads: async (q) => (calls.push(['workloads', q]), []),
    routes: async (q) => (calls.push(['routes', q]), [{ ...SERVICES[1]!, kind: 'route', name: 'shop/reviews/rule-0/match-0', parent: 'reviews.shop.svc.cluster.local' }]),
    edges: async (q) => (calls.push(['edges', q]), EDGES),
    callers: async (q) => (calls.push(['callers', q]), []),
    topology: async () => ({ window: '1m', nodes: [], edges: EDGES }),
  };
}

test('stat: wide terminal shows every column', async () => {
  const io = captureIO(200);
  const calls: unknown[] = [];
  assert.equal(await stat.exec(['services', '-n', 'shop', '--window', '5m'], io, fake(calls)), 0);
  assert.deepEqual(calls, [['services', { window: '5m', namespace: 'shop' }]]);
  assert.equal(
    io.stdout.join('\n'),
    [
      'NAME          MESHED   SUCCESS       RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99   TCP_CONN      MTLS',
      'productpage        2   100.00%   10.0rps           3ms          12ms          49ms          0   100.00%',
      'reviews            3    93.33%   1.50rps        0.45ms          20ms         250ms          4    50.00%',
    ].join('\n'),
  );
});

test('stat: a narrow terminal drops the least important columns first', async () => {
  const io = captureIO(60);
  assert.equal(await stat.exec([], io, fake()), 0);
  const out = io.stdout.join('\n');
  for (const line of out.split('\n')) assert.ok(line.length <= 60, `${line.length}: ${line}`);
  assert.equal(out.split('\n')[0], 'NAME       SUCCESS       RPS   LATENCY_P50   LATENCY_P99');
});

test('stat: -o json, bad arguments name the option', async () => {
  const io = captureIO();
  assert.equal(await stat.exec(['-o', 'json'], io, fake()), 0);
  const j = JSON.parse(io.stdout.join('')) as { kind: string; window: string; items: StatRow[] };
  assert.equal(j.kind, 'services');
  assert.equal(j.window, '1m');
  assert.equal(j.items.length, 2);
  const bad = captureIO();
  assert.equal(await stat.exec(['--window', '2h'], bad, fake()), 2);
  assert.match(bad.stderr.join(''), /--window: must be one of 1m, 5m, 15m \(got "2h"\)/);
  assert.equal(await stat.exec(['pods'], bad, fake()), 2);
  assert.match(bad.stderr.join(''), /KIND: must be services or workloads/);
  const empty = captureIO(100);
  assert.equal(await stat.exec(['workloads'], empty, fake()), 0);
  assert.equal(empty.stdout.join(''), 'No traffic found in the last 1m.');
});

test('routes and edges tables', async () => {
  const r = captureIO(200);
  assert.equal(await routes.exec(['reviews', '-n', 'shop'], r, fake()), 0);
  assert.equal(
    r.stdout.join('\n'),
    [
      'ROUTE                         PARENT    BACKEND   SUCCESS       RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99',
      'shop/reviews/rule-0/match-0   reviews   reviews    93.33%   1.50rps        0.45ms          20ms         250ms',
    ].join('\n'),
  );
  const e = captureIO(200);
  assert.equal(await edges.exec([], e, fake()), 0);
  assert.equal(
    e.stdout.join('\n'),
    [
      'SRC              DST              SRC_NS    DST_NS   SUCCESS       RPS   LATENCY_P50   LATENCY_P99      MTLS',
      'productpage-v1   reviews-v1       shop      shop     100.00%   1.00rps           4ms         12.0s   100.00%',
      'unknown          productpage-v1   unknown   shop           -   0.10rps             -             -     0.00%',
    ].join('\n'),
  );
  const missing = captureIO();
  assert.equal(await routes.exec([], missing, fake()), 2);
  assert.match(missing.stderr.join(''), /SERVICE: exactly one service name is required/);
});

test('fitTable shortens flexible columns with an ellipsis before dropping', () => {
  const out = fitTable([{ header: 'NAME', value: (r: string) => r, minWidth: 6 }, { header: 'N', value: () => '1', align: 'right' }], ['a-very-long-workload-name'], 14);
  assert.equal(out, 'NAME         N\na-very-lo…   1');
});

const ev = (path: string, status: number, ms: number, o: { direction?: string; id?: string; src?: string } = {}): TapEvent => ({
  type: 'exchange', time: '2026-01-01T00:00:00.000Z', direction: o.direction ?? 'outbound', method: 'GET', authority: 'reviews:9080', path, route: 'r', status, grpc_status: '', response_flags: '-',
  duration_ms: ms, bytes_received: 0, bytes_sent: 5, source_workload: o.src ?? 'web', source_namespace: 'shop', destination_workload: 'reviews-v1', destination_namespace: 'shop',
  destination_service: 'reviews.shop.svc.cluster.local', upstream_host: '10.0.0.1:9080', trace_id: null, request_id: o.id ?? null, request_headers: {}, response_headers: {},
});

/** Join events as the tap and top commands do; collect what is emitted. */
function join(events: TapEvent[]): TapRequest[] {
  const out: TapRequest[] = [];
  const j = new TapJoiner((r) => out.push(r), { waitMs: 60_000 });
  for (const e of events) j.add(e);
  j.flush();
  return out;
}

test('top aggregates tap events by path; tap lines are one per exchange', () => {
  const t = new TopTable();
  for (const r of join([ev('/a?x=1', 200, 3), ev('/a?x=2', 503, 9), ev('/b', 200, 1)])) t.add(r);
  assert.equal(
    fitTable(topColumns, t.top(10), 200),
    [
      'SOURCE     DESTINATION       METHOD   PATH             COUNT   SUCCESS   BEST   WORST   LAST',
      'shop/web   shop/reviews-v1   GET      reviews:9080/a       2    50.00%    3ms     9ms    9ms',
      'shop/web   shop/reviews-v1   GET      reviews:9080/b       1   100.00%    1ms     1ms    1ms',
    ].join('\n'),
  );
  assert.equal(formatTapRequest(join([ev('/a', 200, 3)])[0]!), 'out    GET reviews:9080/a 200 3ms 5B src=shop/web dst=shop/reviews-v1 flags=-');
});

test('the two sides of a request join into one line (by request id and destination); retries count as attempts', () => {
  const rs = join([
    ev('/a', 200, 2, { direction: 'inbound', id: 'r1' }),
    ev('/a', 200, 3, { direction: 'outbound', id: 'r1' }),
    ev('/b', 503, 1, { direction: 'inbound', id: 'r2' }),
    ev('/b', 200, 1, { direction: 'inbound', id: 'r2' }),
    ev('/b', 200, 6, { direction: 'outbound', id: 'r2' }),
    ev('/c', 200, 1, { direction: 'inbound', id: 'r3', src: 'unknown' }), // an unmeshed caller: alone at once
  ]);
  assert.deepEqual(rs.map((r) => [r.path, r.direction, r.client?.duration_ms ?? null, r.server?.duration_ms ?? null, r.attempts]), [
    ['/a', 'outbound', 3, 2, 1],
    ['/b', 'outbound', 6, 1, 2],
    ['/c', 'inbound', null, 1, 1],
  ]);
  assert.equal(formatTapRequest(rs[0]!), 'out+in GET reviews:9080/a 200 3ms 5B src=shop/web dst=shop/reviews-v1 flags=- server=2ms');
  assert.equal(formatTapRequest(rs[1]!), 'out+in GET reviews:9080/b 200 6ms 5B src=shop/web dst=shop/reviews-v1 flags=- server=1ms attempts=2');
  const t = new TopTable();
  for (const r of rs) t.add(r);
  assert.deepEqual(t.top(10).map((r) => [r.path, r.count]), [['reviews:9080/a', 1], ['reviews:9080/b', 1], ['reviews:9080/c', 1]]);
});
