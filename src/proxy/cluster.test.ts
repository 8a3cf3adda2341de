import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createCluster } from './cluster.ts';
import type { ClusterDeps, RequestOutcome } from './cluster.ts';
import { clusterSpec, fakePoolFactory, localities, NODE, recorder, request } from './cluster-test-helpers.ts';
import type { ClusterSpec, LocalityEndpoints } from './config/types.ts';
import { ProxyError } from './errors.ts';
import { createPoolRegistry } from './pool-registry.ts';
import { seededRandom } from './balancer/testing.ts';

function setup(over: Partial<ClusterSpec> = {}, eps: LocalityEndpoints[] = localities(['10.0.0.1', '10.0.0.2']), extra: Partial<ClusterDeps> = {}) {
  const fake = fakePoolFactory();
  const pools = createPoolRegistry(fake.create);
  let now = 0;
  const clock = { advance: (ms: number) => (now += ms) };
  const cluster = createCluster(clusterSpec('svc', over), eps, { node: NODE, pools, random: seededRandom(1), now: () => now, ...extra });
  return { cluster, fake, pools, clock };
}

test('no endpoints, or none healthy: NO_HEALTHY_UPSTREAM', () => {
  for (const eps of [[], localities(['10.0.0.1']).map((l) => ({ ...l, endpoints: l.endpoints.map((e) => ({ ...e, health: 'unhealthy' as const })) })),
    localities(['10.0.0.1']).map((l) => ({ ...l, endpoints: l.endpoints.map((e) => ({ ...e, health: 'draining' as const })) }))]) {
    const { cluster, fake } = setup({}, eps);
    const { handler, rec } = recorder();
    cluster.dispatch(request(), handler);
    assert.deepEqual(rec.events, ['error:NO_HEALTHY_UPSTREAM']);
    assert.equal(fake.created.length, 0);
    assert.equal(cluster.active(), 0);
  }
});

test('unknown health counts as healthy', () => {
  const eps = localities(['10.0.0.1']).map((l) => ({ ...l, endpoints: l.endpoints.map((e) => ({ ...e, health: 'unknown' as const })) }));
  const { cluster, fake } = setup({}, eps);
  cluster.dispatch(request(), recorder().handler);
  assert.equal(fake.created[0]!.exchanges.length, 1);
});

test('max_requests: OVERFLOW while the cluster is full, served again once a request ends', () => {
  const { cluster, fake } = setup({ circuitBreakers: { maxConnections: 7, maxPendingRequests: 9, maxRequests: 2, maxRetries: 3 } });
  cluster.dispatch(request(), recorder().handler);
  cluster.dispatch(request(), recorder().handler);
  const third = recorder();
  cluster.dispatch(request(), third.handler);
  assert.deepEqual(third.rec.events, ['error:OVERFLOW']);
  assert.match(third.rec.error!.message, /max_requests 2/);
  fake.created[0]!.exchanges[0]!.respond(200);
  const fourth = recorder();
  cluster.dispatch(request(), fourth.handler);
  assert.deepEqual(fourth.rec.events, ['start']);
  const opts = fake.created[0]!.opts;
  assert.deepEqual([opts.maxConnections, opts.maxPendingRequests, opts.host, opts.port, opts.connectTimeoutMs, opts.idleTimeoutMs],
    [7, 9, fake.created[0]!.opts.host, 8080, 1000, 10_000]);
});

test('counters are decremented exactly once on success, 5xx, error and abort', () => {
  const outcomes: RequestOutcome[] = [];
  const { cluster, fake, clock } = setup({}, localities(['10.0.0.1']), { observe: (_c, _e, o) => outcomes.push(o) });
  const load = () => cluster.snapshot().endpoints[0]!;
  const run = (finish: (ex: (typeof fake.created)[0]['exchanges'][0], rec: ReturnType<typeof recorder>['rec']) => void) => {
    const r = recorder();
    const req = request();
    cluster.dispatch(req, r.handler);
    assert.equal(req.ctx.upstreamEndpoint, '10.0.0.1:8080');
    assert.equal(req.ctx.cluster, 'svc');
    assert.equal(cluster.active(), 1);
    assert.equal(load().active, 1);
    clock.advance(10);
    const pool = fake.created[0]!;
    finish(pool.exchanges[pool.exchanges.length - 1]!, r.rec);
    assert.equal(cluster.active(), 0);
    assert.equal(load().active, 0);
    return r.rec;
  };
  assert.deepEqual(run((ex) => ex.respond(200)).events, ['start', 'headers', 'end']);
  run((ex) => ex.respond(503));
  assert.deepEqual(run((ex) => ex.fail(new ProxyError('UPSTREAM_RESET'))).events, ['start', 'error:UPSTREAM_RESET']);
  const aborted = run((_ex, rec) => rec.controller!.abort(new ProxyError('DOWNSTREAM_CLOSED')));
  assert.deepEqual(aborted.events, ['start', 'error:DOWNSTREAM_CLOSED']);
  // an abort after the end changes nothing
  run((ex, rec) => {
    ex.respond(200);
    rec.controller!.abort(new ProxyError('DOWNSTREAM_CLOSED'));
  });
  assert.deepEqual(outcomes.map((o) => [o.ok, o.status, o.error ?? '']), [
    [true, 200, ''], [false, 503, ''], [false, 0, 'UPSTREAM_RESET'], [false, 0, 'DOWNSTREAM_CLOSED'], [true, 200, ''],
  ]);
  assert.ok(outcomes.every((o) => o.latencyMs === 10));
  assert.deepEqual([load().successes, load().failures], [2, 3]);
  assert.equal(load().ewmaMs, 10);
});

test('an abort the pool never answers still closes the books once', () => {
  const { cluster, fake } = setup({}, localities(['10.0.0.1']));
  const r = recorder();
  cluster.dispatch(request(), r.handler);
  const ex = fake.created[0]!.exchanges[0]!;
  // the pool's controller records the abort but this pool reports nothing more
  ex.fail = () => {};
  r.rec.controller!.abort(new ProxyError('DOWNSTREAM_CLOSED'));
  assert.equal(cluster.active(), 0);
  assert.equal(cluster.snapshot().endpoints[0]!.active, 0);
  assert.equal(ex.aborted?.code, 'DOWNSTREAM_CLOSED');
});

test('a pool that throws becomes an error, and counters unwind', () => {
  const { cluster, fake } = setup({}, localities(['10.0.0.1']));
  cluster.dispatch(request(), recorder().handler); // create the pool
  fake.created[0]!.dispatch = () => {
    throw new Error('boom');
  };
  const r = recorder();
  cluster.dispatch(request(), r.handler);
  assert.deepEqual(r.rec.events, ['error:INTERNAL']);
  assert.equal(cluster.active(), 1, 'only the first request is still in flight');
});

test('downstream protocol: HTTP/2 requests go to the http2 pool, others to http1', () => {
  const { cluster, fake } = setup({ protocol: 'downstream' }, localities(['10.0.0.1']));
  cluster.dispatch(request({ httpVersion: '2' }), recorder().handler);
  assert.deepEqual(fake.created.map((p) => p.protocol), ['http2']);
  cluster.dispatch(request({ httpVersion: '1.1' }), recorder().handler);
  assert.deepEqual(fake.created.map((p) => p.protocol), ['http2', 'http1']);
  const h2 = setup({ protocol: 'http2' }, localities(['10.0.0.1']));
  h2.cluster.dispatch(request({ httpVersion: '1.1' }), recorder().handler);
  assert.deepEqual(h2.fake.created.map((p) => p.protocol), ['http2']);
});

test('ejection and health changes publish a new picker', () => {
  const { cluster } = setup({}, localities(['10.0.0.1', '10.0.0.2', '10.0.0.3']));
  const picked = (n: number) => {
    const seen = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const req = request();
      cluster.dispatch(req, recorder().handler);
      seen.set(req.ctx.upstreamEndpoint!, (seen.get(req.ctx.upstreamEndpoint!) ?? 0) + 1);
    }
    return seen;
  };
  assert.equal(cluster.setEndpointEjected('10.0.0.2:8080', true), true);
  assert.equal(picked(30).get('10.0.0.2:8080'), undefined);
  assert.equal(cluster.snapshot().endpoints[1]!.eligible, false);
  assert.equal(cluster.setEndpointEjected('10.0.0.2:8080', false), true);
  assert.equal(picked(30).get('10.0.0.2:8080'), 10);
  assert.equal(cluster.setEndpointHealth('10.0.0.3:8080', 'draining'), true);
  assert.equal(picked(30).get('10.0.0.3:8080'), undefined);
  assert.equal(cluster.setEndpointEjected('10.9.9.9:8080', true), false);
  cluster.setEndpointEjected('10.0.0.1:8080', true);
  cluster.setEndpointEjected('10.0.0.2:8080', true);
  const r = recorder();
  cluster.dispatch(request(), r.handler);
  assert.deepEqual(r.rec.events, ['error:NO_HEALTHY_UPSTREAM']);
});

test('ring hash reads the router\'s hash key', () => {
  const { cluster } = setup({ lbPolicy: 'ring_hash' }, localities(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']));
  const endpointFor = (key: string) => {
    const req = request({ hashKey: key });
    cluster.dispatch(req, recorder().handler);
    return req.ctx.upstreamEndpoint;
  };
  const seen = new Set<string | undefined>();
  for (let i = 0; i < 50; i++) {
    const e = endpointFor(`user-${i}`);
    assert.equal(endpointFor(`user-${i}`), e);
    seen.add(e);
  }
  assert.equal(seen.size, 4);
});

test('locality-aware cluster fails over when the own zone is down', () => {
  const eps: LocalityEndpoints[] = [
    { locality: { region: 'r1', zone: 'b', subZone: '' }, priority: 0, weight: 1, endpoints: [{ address: '10.0.1.1', port: 80, weight: 1, health: 'healthy' }] },
    { locality: NODE.locality, priority: 0, weight: 1, endpoints: [{ address: '10.0.0.1', port: 80, weight: 1, health: 'healthy' }] },
  ];
  const { cluster } = setup({ localityAware: true }, eps);
  for (let i = 0; i < 10; i++) {
    const req = request();
    cluster.dispatch(req, recorder().handler);
    assert.equal(req.ctx.upstreamEndpoint, '10.0.0.1:80');
  }
  cluster.setEndpointHealth('10.0.0.1:80', 'unhealthy');
  const req = request();
  cluster.dispatch(req, recorder().handler);
  assert.equal(req.ctx.upstreamEndpoint, '10.0.1.1:80');
});

test('IPv6 endpoint keys are bracketed; duplicates keep the first; a bad policy is named', () => {
  const eps = localities(['::1', '::1', '10.0.0.1']);
  const { cluster } = setup({}, eps);
  assert.deepEqual(cluster.snapshot().endpoints.map((e) => e.key), ['[::1]:8080', '10.0.0.1:8080']);
  assert.throws(() => setup({ lbPolicy: 'maglev' as never }), /cluster svc: lbPolicy "maglev" is not a registered/);
});

test('an upgrade closes the books at 101; 1xx and upgrade callbacks pass through only when the downstream has them', async () => {
  const { cluster, fake } = setup({}, localities(['10.0.0.1']));
  const { Duplex } = await import('node:stream');
  const seen: string[] = [];
  const r = recorder();
  const handler = {
    ...r.handler,
    onInformational: (h: { status: number }) => seen.push(`info:${h.status}`),
    onUpgrade: (h: { status: number }) => seen.push(`upgrade:${h.status}`),
  };
  cluster.dispatch(request(), handler);
  const up = fake.created[0]!.exchanges[0]!.handler;
  up.onInformational!({ status: 103, headers: [] });
  assert.equal(cluster.active(), 1);
  up.onUpgrade!({ status: 101, headers: [] }, new Duplex(), Buffer.alloc(0));
  assert.deepEqual(seen, ['info:103', 'upgrade:101']);
  assert.equal(cluster.active(), 0);
  assert.equal(cluster.snapshot().endpoints[0]!.successes, 1);
  cluster.dispatch(request(), recorder().handler);
  const plain = fake.created[0]!.exchanges[1]!.handler;
  assert.equal(plain.onUpgrade, undefined);
  assert.equal(plain.onInformational, undefined);
});

test('pickTcp: opaque TCP picks through the balancer, never an ejected or unhealthy endpoint', () => {
  const eps = localities(['10.0.0.1', '10.0.0.2', '10.0.0.3']).map((l) => ({
    ...l,
    endpoints: l.endpoints.map((e) => (e.address === '10.0.0.3' ? { ...e, health: 'unhealthy' as const } : e)),
  }));
  const { cluster } = setup({ lbPolicy: 'round_robin' }, eps);
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) seen.add(cluster.pickTcp()!.address);
  assert.deepEqual([...seen].sort(), ['10.0.0.1', '10.0.0.2']);
  cluster.setEndpointEjected('10.0.0.2:8080', true);
  for (let i = 0; i < 20; i++) assert.equal(cluster.pickTcp()!.address, '10.0.0.1');
});
