// Interop: the same proxyless scenario against each gRPC xDS client Trellis
// serves: grpc-js-xds (in-tree dependency), grpc-go (test/interop/grpc-go,
// built by scripts/test-peers.sh) and gRPC C-core (Python grpcio,
// test/interop/grpc-python). Each client is bootstrapped by `trellis
// bootstrap grpc` and calls `xds:///echo.default.svc:50051` through the real
// control plane. What each client must take without a NACK and then obey:
//   - an HTTPRoute PathPrefix match (gRPC clients reject Envoy's
//     pathSeparatedPrefix: Trellis sends them path + prefix) with a header
//     match, steering a group to v2;
//   - a 9/1 split whose weights do not sum to 100 (C-core NACKed it before
//     totalWeight was set);
//   - a request timeout (gRPC reads it from maxStreamDuration): a 2 s method
//     fails with DEADLINE_EXCEEDED after ~300 ms;
//   - endpoint removal: a deregistered backend gets no more calls;
//   - a RetryPolicy (retryOn unavailable): a method failing every first
//     attempt succeeds every time;
//   - a LoadBalancerPolicy ringHash on a header, over two localities: one
//     user always reaches one backend, users spread over both;
//   - a leastRequest policy: sent where the client kind has it, else round
//     robin, and never NACKed;
//   - what the client ignores (a header modifier) is in the route's status
//     and in `trellis proxy-status` for that client;
//   - NACK reporting: a regex with a JavaScript-only escape, which grpc-js
//     takes and the RE2 clients NACK, shows in proxy-status with their
//     reason while they keep serving the last good routes.
// A peer is skipped, with the reason printed, only where its toolchain (Go,
// Python) is absent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlPlane } from '../../src/control-plane/control-plane.ts';
import { TypeUrl } from '../../src/xds/protos.ts';
import { freePort } from '../proxy/helpers.ts';
import { service as grpcService } from '../control-plane/fixtures.ts';
import { startEchoBackend, startGrpcXdsClient, startStdioXdsClient, type GrpcXdsClientProcess } from '../util/xds-grpc-fixtures.ts';
import { api, apply, callUntil, cliBootstrap, nextEvent, register, type GrpcBootstrap } from '../util/proxyless-cp.ts';
import { captureIO } from '../../src/cli/command-io.ts';
import * as proxyStatus from '../../src/cli/commands/proxy-status.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TARGET = 'xds:///echo.default.svc:50051';

/** Where scripts/test-peers.sh put each peer, or why it is absent. */
function peers(): Record<string, { argv?: string[]; skip?: string }> {
  const out = execFileSync('bash', [path.join(ROOT, 'scripts', 'test-peers.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 900_000 });
  const kv = new Map(out.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const));
  const one = (key: string, argv: (p: string) => string[]) => (kv.has(key) ? { argv: argv(kv.get(key)!) } : { skip: kv.get(`${key}-skip`) ?? `scripts/test-peers.sh said nothing about ${key}` });
  return {
    'grpc-go': one('grpc-go', (p) => [p]),
    'grpc-core': one('grpc-python', (p) => [p, path.join(ROOT, 'test', 'interop', 'grpc-python', 'client.py')]),
  };
}

const found = peers();
const CLIENTS: { kind: string; skip?: string; start: (b: GrpcBootstrap) => Promise<GrpcXdsClientProcess> }[] = [
  { kind: 'grpc-js', start: (b) => startGrpcXdsClient(b, TARGET) },
  ...(['grpc-go', 'grpc-core'] as const).map((kind) => ({
    kind,
    ...(found[kind]!.skip ? { skip: found[kind]!.skip } : {}),
    start: (b: GrpcBootstrap) => startStdioXdsClient(found[kind]!.argv!, b, TARGET),
  })),
];

const service = (name: string, selector: Record<string, string>) => grpcService(name, selector, { port: 50051, protocol: 'grpc' });

const route = {
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name: 'echo', namespace: 'default' },
  spec: {
    parentRefs: [{ kind: 'Service', name: 'echo', port: 50051 }],
    rules: [
      { matches: [{ path: { type: 'PathPrefix', value: '/echo.Echo' }, headers: [{ name: 'x-group', value: 'beta' }] }], backendRefs: [{ name: 'echo-v2', port: 50051 }] },
      { matches: [{ path: { type: 'Exact', value: '/echo.Echo/Slow' } }], backendRefs: [{ name: 'echo-v1', port: 50051 }], timeouts: { request: '300ms' } },
      { matches: [{ path: { type: 'Exact', value: '/echo.Echo/Flaky' } }], backendRefs: [{ name: 'echo-flaky', port: 50051 }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/echo.Echo' }, headers: [{ name: 'x-hash', value: 'yes' }] }], backendRefs: [{ name: 'echo-hash', port: 50051 }] },
      {
        matches: [{ path: { type: 'PathPrefix', value: '/echo.Echo' }, headers: [{ name: 'x-mod', value: 'yes' }] }],
        filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-added', value: '1' }] } }],
        backendRefs: [{ name: 'echo-v1', port: 50051 }],
      },
      { matches: [{ path: { type: 'PathPrefix', value: '/echo.Echo' } }], backendRefs: [{ name: 'echo-v1', port: 50051, weight: 9 }, { name: 'echo-v2', port: 50051, weight: 1 }] },
    ],
  },
};

const policy = (kind: string, name: string, spec: object) => ({ apiVersion: 'trellis.dev/v1alpha1', kind, metadata: { name, namespace: 'default' }, spec });

for (const c of CLIENTS) {
  test(`${c.kind} via the control plane: matches, split, timeout, retries, ring hash over localities, lb policy, warnings, endpoint removal, NACK reporting`, c.skip ? { skip: c.skip } : {}, async (t) => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-interop-'));
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort: await freePort(), log: () => {} });
    t.after(() => cp.close());
    const backends = await Promise.all(['v1', 'v2', 'flaky', 'h1', 'h2'].map((n) => startEchoBackend(n, 2000)));
    t.after(() => Promise.all(backends.map((b) => b.close())));
    const [v1, v2, flaky, h1, h2] = backends as [typeof backends[0], typeof backends[0], typeof backends[0], typeof backends[0], typeof backends[0]];
    for (const s of [
      service('echo', { app: 'echo' }), service('echo-v1', { app: 'echo', version: 'v1' }), service('echo-v2', { app: 'echo', version: 'v2' }),
      service('echo-flaky', { app: 'echo-flaky' }), service('echo-hash', { app: 'echo-hash' }),
    ]) await apply(cp, s);
    await register(cp, 'echo-1', v1.port, { app: 'echo', version: 'v1' });
    await register(cp, 'echo-2', v2.port, { app: 'echo', version: 'v2' });
    await register(cp, 'flaky-1', flaky.port, { app: 'echo-flaky' });
    // Two localities behind the ring-hash service.
    await register(cp, 'hash-1', h1.port, { app: 'echo-hash' }, { locality: { region: 'r1', zone: 'a' } });
    await register(cp, 'hash-2', h2.port, { app: 'echo-hash' }, { locality: { region: 'r1', zone: 'b' } });

    const bootstrap = await cliBootstrap(cp.xdsPort, `interop-${c.kind}`);
    const nodeId = bootstrap.node.id;
    const client = await c.start(bootstrap);
    t.after(() => client.close());
    await callUntil(client, 'both backends answer', (r) => Object.keys(r.errors).length === 0 && (r.counts.v1 ?? 0) > 0 && (r.counts.v2 ?? 0) > 0, 20_000);

    // The route: the client must ACK it (a NACK is the interop failure this test exists for).
    const answer = nextEvent(cp, (e) => (e.kind === 'ack' || e.kind === 'nack') && e.nodeId === nodeId && e.typeUrl === TypeUrl.route);
    await apply(cp, route);
    const e = await answer;
    assert.equal(e.kind, 'ack', `${c.kind} rejected the route: ${e.kind === 'nack' ? e.message : ''}`);
    const proxies = (await api(cp, 'GET', '/api/v1/proxies')).json.proxies as { nodeId: string; userAgent: string; perType: Record<string, { nacked: unknown }> }[];
    const me = proxies.find((p) => p.nodeId === nodeId)!;
    for (const [type, s] of Object.entries(me.perType)) assert.equal(s.nacked, null, `${type}: ${JSON.stringify(s.nacked)}`);
    t.diagnostic(`${c.kind} user agent: ${me.userAgent}`);

    // PathPrefix + header: the beta group goes to v2 only.
    await callUntil(client, 'x-group: beta reaches v2 only', (r) => r.counts.v2 === 10, 10_000, { metadata: { 'x-group': 'beta' } });

    // The 9/1 split. p = 0.9, n = 300: sd ~ 0.017; the bounds are > 4 sd away.
    const split = await client.call(300, 2000);
    assert.deepEqual(split.errors, {});
    const v1Share = (split.counts.v1 ?? 0) / 300;
    assert.ok(v1Share > 0.82 && v1Share < 0.98 && (split.counts.v2 ?? 0) > 0, `v1 share ${v1Share} (${JSON.stringify(split.counts)})`);

    // The route timeout (300 ms) cuts a 2 s method short, under a 10 s client deadline.
    const started = Date.now();
    const slow = await client.call(2, 10_000, { method: '/echo.Echo/Slow' });
    const slowMs = Date.now() - started;
    assert.deepEqual(slow, { counts: {}, errors: { DEADLINE_EXCEEDED: 2 } });
    assert.ok(slowMs < 3500, `two calls cut at 300 ms took ${slowMs} ms (uncut: >= 2000 ms each)`);

    // Retries: without a policy every Flaky call fails (its first attempt does); with retryOn unavailable none does.
    const unretried = await client.call(10, 2000, { method: '/echo.Echo/Flaky' });
    assert.deepEqual(unretried, { counts: {}, errors: { UNAVAILABLE: 10 } });
    const policiesAcked = nextEvent(cp, (ev) => (ev.kind === 'ack' || ev.kind === 'nack') && ev.nodeId === nodeId && ev.typeUrl === TypeUrl.cluster);
    await apply(cp, policy('RetryPolicy', 'echo-retry', { targetRef: { kind: 'Service', name: 'echo' }, attempts: 2, retryOn: ['unavailable'] }));
    await apply(cp, policy('LoadBalancerPolicy', 'echo-hash', { targetRef: { kind: 'Service', name: 'echo-hash' }, type: 'ringHash', hash: { header: 'x-user' } }));
    await apply(cp, policy('LoadBalancerPolicy', 'echo-v2-lr', { targetRef: { kind: 'Service', name: 'echo-v2' }, type: 'leastRequest' }));
    const pe = await policiesAcked;
    assert.equal(pe.kind, 'ack', `${c.kind} rejected the clusters: ${pe.kind === 'nack' ? pe.message : ''}`);
    await callUntil(client, 'Flaky calls are retried', (r) => r.counts.flaky === 10, 10_000, { method: '/echo.Echo/Flaky' });
    const retried = await client.call(20, 2000, { method: '/echo.Echo/Flaky' });
    assert.deepEqual(retried, { counts: { flaky: 20 }, errors: {} });

    // Ring hash on x-user over two localities: each user sticks to one backend; users spread over both.
    const byUser = new Map<string, string[]>();
    for (let u = 0; u < 20; u++) {
      const r = await client.call(5, 2000, { metadata: { 'x-hash': 'yes', 'x-user': `user-${u}` } });
      assert.deepEqual(r.errors, {});
      byUser.set(`user-${u}`, Object.keys(r.counts));
    }
    for (const [u, seen] of byUser) assert.equal(seen.length, 1, `${u} reached ${seen.join(' and ')}`);
    assert.deepEqual([...new Set([...byUser.values()].flat())].sort(), ['h1', 'h2'], 'users spread over both localities');

    // What the client ignores is said: in the route's status and in proxy-status for this client.
    const status = (await api(cp, 'GET', '/api/v1/resources/HTTPRoute/default/echo')).json as { status?: { warnings?: string[] } };
    const client2 = { 'grpc-js': 'grpc-js', 'grpc-go': 'grpc-go', 'grpc-core': 'gRPC C-core' }[c.kind];
    assert.ok(status.status?.warnings?.includes(`proxyless ${client2}: ignore request header changes`), JSON.stringify(status.status));
    const io = captureIO(400);
    assert.equal(await proxyStatus.exec(['--server', cp.apiUrl], io), 0);
    const out = io.stdout.join('\n');
    assert.ok(out.includes(`${nodeId} (${me.userAgent}) HTTPRoute default/echo: proxyless ${client2}: ignore request header changes`), out);
    assert.doesNotMatch(out, /NACKED/, out);
    assert.equal(out.includes(`cluster echo-v2.default.svc:50051: proxyless ${client2}: do not support lbPolicy LEAST_REQUEST`), c.kind !== 'grpc-go', out);

    // Endpoint removal: v2 deregistered, the split's share and the beta group's calls stop reaching it.
    const edsAck = nextEvent(cp, (ev) => ev.kind === 'ack' && ev.nodeId === nodeId && ev.typeUrl === TypeUrl.endpoint);
    const gone = await api(cp, 'DELETE', '/api/v1/registry/workloads/default/echo-2');
    assert.ok(gone.status < 300, JSON.stringify(gone.json));
    await edsAck;
    // The client applies the ACKed update a moment later (C-core asynchronously): wait for a clean batch.
    for (let i = 0; i < 20 && ((await client.call(50, 2000)).counts.v2 ?? 0) > 0; i++) await sleep(100);
    // The split's v2 tenth now fails (its cluster has no endpoint) instead of reaching v2.
    const after = await client.call(100, 2000);
    assert.equal(after.counts.v2, undefined, JSON.stringify(after));
    assert.equal((after.counts.v1 ?? 0) + (after.errors.UNAVAILABLE ?? 0), 100, JSON.stringify(after));
    const beta = await client.call(3, 2000, { metadata: { 'x-group': 'beta' } });
    assert.deepEqual(beta.counts, {}, 'the beta group has no backend left');

    // NACK reporting: a path regex with a JavaScript escape (\u006c) that RE2
    // has not. grpc-js (JavaScript RegExp) takes it; grpc-go and C-core (RE2)
    // NACK the RouteConfiguration, keep serving the last good one, and
    // `trellis proxy-status` shows their reason. (This is a real gap, docs/xds.md:
    // once the API refuses what RE2 cannot parse, as Envoy's safe_regex is
    // RE2, this step needs another config some client kind rejects.)
    const answer2 = nextEvent(cp, (ev) => (ev.kind === 'ack' || ev.kind === 'nack') && ev.nodeId === nodeId && ev.typeUrl === TypeUrl.route);
    const withRegex = structuredClone(route);
    withRegex.spec.rules.unshift({ matches: [{ path: { type: 'RegularExpression', value: '/echo\\.Echo/Ca\\u006cl' }, headers: [{ name: 'x-re', value: 'yes' }] }], backendRefs: [{ name: 'echo-v1', port: 50051 }] } as never);
    await apply(cp, withRegex);
    const e2 = await answer2;
    assert.equal(e2.kind, c.kind === 'grpc-js' ? 'ack' : 'nack', `${c.kind}: ${e2.kind === 'nack' ? e2.message : 'ACK'}`);
    const io2 = captureIO(400);
    assert.equal(await proxyStatus.exec(['--server', cp.apiUrl], io2), 0);
    const out2 = io2.stdout.join('\n');
    if (e2.kind === 'nack') {
      assert.ok(out2.includes(`${nodeId} RDS (${cp.id}) version ${e2.version}: ${e2.message}`), out2);
      t.diagnostic(`${c.kind} NACK, as proxy-status shows it: ${e2.message.slice(0, 200)}`);
    } else assert.doesNotMatch(out2, /NACKED/, out2);
    const still = await client.call(20, 2000);
    assert.deepEqual(still.errors.DEADLINE_EXCEEDED, undefined, 'the client keeps serving');
    assert.equal(still.counts.v1, 20 - (still.errors.UNAVAILABLE ?? 0), JSON.stringify(still));
  });
}
