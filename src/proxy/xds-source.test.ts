import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { SnapshotCache } from '../xds/cache.ts';
import { createSnapshot } from '../xds/snapshot.ts';
import type { Snapshot, SnapshotInput } from '../xds/snapshot.ts';
import { createXdsServer } from '../xds/server.ts';
import type { XdsServer, ProxyStatus } from '../xds/server.ts';
import { startXdsSource } from './xds-source.ts';
import type { XdsSource } from './xds-source.ts';
import type { ProxyConfig } from './config/types.ts';
import { loadAssignment, portListener, serviceSnapshotInput } from '../../test/util/xds-fixtures.ts';

const NODE = { id: 'proxy-a', cluster: 'frontend', locality: { region: 'r1', zone: 'z1', subZone: '' } };

const input = (v2Ports: number[]): SnapshotInput =>
  serviceSnapshotInput(
    'echo',
    [
      { cluster: 'echo-v1', weight: 80, ports: [7001] },
      { cluster: 'echo-v2', weight: 20, ports: v2Ports },
    ],
    { listenerPort: 15001 },
  );

function build(i: SnapshotInput, label: string): Snapshot {
  const r = createSnapshot(i, label);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.snapshot;
}

async function until<T>(what: string, get: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function nextConfig(source: XdsSource, pred: (c: ProxyConfig) => boolean, timeoutMs = 10_000): Promise<ProxyConfig> {
  return new Promise((resolve, reject) => {
    let off = (): void => {};
    const t = setTimeout(() => {
      off();
      reject(new Error('no matching config in time'));
    }, timeoutMs);
    off = source.onConfig((c) => {
      if (pred(c)) {
        clearTimeout(t);
        queueMicrotask(() => off());
        resolve(c);
      }
    });
  });
}

const statusOf = (server: XdsServer): ProxyStatus | undefined => server.status().find((s) => s.nodeId === 'proxy-a');
const ports = (c: ProxyConfig, cluster: string): number[] => (c.endpoints.get(cluster) ?? []).flatMap((l) => l.endpoints.map((e) => e.port)).sort();

async function setup(t: TestContext, warmingTimeoutMs?: number, apiType?: 'GRPC' | 'DELTA_GRPC') {
  const cache = new SnapshotCache();
  const server = createXdsServer({ source: cache });
  const port = await server.listen('127.0.0.1', 0);
  t.after(() => server.close());
  const source = startXdsSource({
    serverUri: `127.0.0.1:${port}`,
    node: NODE,
    backoff: { initialMs: 20, maxMs: 200 },
    ...(apiType === undefined ? {} : { apiType }),
    ...(warmingTimeoutMs === undefined ? {} : { warmingTimeoutMs }),
  });
  t.after(() => source.close());
  return { cache, server, port, source };
}

for (const apiType of ['DELTA_GRPC', 'GRPC'] as const)
test(`the proxy warms LDS -> RDS and CDS -> EDS into one config, ACKs, and follows endpoint changes (${apiType})`, async (t) => {
  const { cache, server, source } = await setup(t, undefined, apiType);
  const seen: ProxyConfig[] = [];
  source.onConfig((c) => seen.push(c));
  assert.equal(source.current(), undefined);
  cache.setSnapshot('proxy-a', build(input([7002]), 'r1'));
  const first = await nextConfig(source, () => true);
  // The first config published is already complete (nothing half-warmed).
  assert.equal(first.listeners[0]?.name, 'echo');
  assert.equal(first.listeners[0]?.port, 15001);
  assert.ok(first.routeConfigs.has('echo-route'));
  assert.deepEqual([...first.clusters.keys()].sort(), ['echo-v1', 'echo-v2']);
  assert.deepEqual(ports(first, 'echo-v2'), [7002]);
  assert.match(first.version, /^lds=\w+,rds=\w+,cds=\w+,eds=\w+$/);
  await until('synced', () => (statusOf(server)?.status === 'synced' ? true : undefined));
  assert.equal(statusOf(server)?.cluster, 'frontend');
  const st = source.state();
  assert.equal(st.connected, true);
  assert.equal(st.lastNack, null);
  assert.deepEqual(st.waitingFor, []);
  assert.equal(st.ackedVersions.Listener, statusOf(server)?.perType.Listener?.ackedVersion);

  cache.setSnapshot('proxy-a', build(input([7003, 7004]), 'r2'));
  const moved = await nextConfig(source, (c) => ports(c, 'echo-v2').includes(7004));
  assert.deepEqual(ports(moved, 'echo-v2'), [7003, 7004]);
  assert.deepEqual(ports(moved, 'echo-v1'), [7001]);
  assert.equal(seen.length, 2);
});

test('a config buildProxyConfig rejects is NACKed with its errors; the last good config stays', async (t) => {
  const { cache, server, source } = await setup(t);
  cache.setSnapshot('proxy-a', build(input([7002]), 'good'));
  const good = await nextConfig(source, () => true);
  await until('synced', () => (statusOf(server)?.status === 'synced' ? true : undefined));

  // Two listeners on one address:port: each parses, the set does not build.
  const clash = input([7002]);
  cache.setSnapshot('proxy-a', build({ ...clash, listeners: [...(clash.listeners ?? []), portListener('echo-2', 15001, 'echo-route')] }, 'clash'));
  const rejected = await until('rejected', () => (statusOf(server)?.status === 'rejected' ? statusOf(server) : undefined));
  assert.match(rejected.perType.Listener?.nacked?.message ?? '', /already used by listener "echo"/);
  assert.equal(source.current(), good);
  assert.equal(source.state().lastNack?.type, 'Listener');

  // A resource the proxy's parser refuses on its own (a listener without an address).
  cache.setSnapshot('proxy-a', build({ ...clash, listeners: [{ name: 'echo', filterChains: [] }] }, 'no-address'));
  await until('second NACK', () => (/address/.test(statusOf(server)?.perType.Listener?.nacked?.message ?? '') ? true : undefined));
  assert.equal(source.current(), good);

  // Fixed: ACKed, published, rejection cleared on both sides.
  cache.setSnapshot('proxy-a', build(input([7009]), 'fixed'));
  const fixed = await nextConfig(source, (c) => ports(c, 'echo-v2').includes(7009));
  assert.notEqual(fixed, good);
  await until('synced again', () => (statusOf(server)?.status === 'synced' ? true : undefined));
  assert.equal(source.state().lastNack, null);
});

test('the proxy keeps its config while the control plane is down and reconnects when it returns', async (t) => {
  const { cache, server, port, source } = await setup(t);
  cache.setDefaultSnapshot(build(input([7002]), 'before'));
  const before = await nextConfig(source, () => true);
  await server.close();
  await until('disconnected', () => (source.state().connected ? undefined : true));
  assert.equal(source.current(), before);
  assert.ok(source.state().disconnects >= 1);

  const again = createXdsServer({ source: cache });
  t.after(() => again.close());
  assert.equal(await again.listen('127.0.0.1', port), port);
  cache.setDefaultSnapshot(build(input([7005]), 'after'));
  const after = await nextConfig(source, (c) => ports(c, 'echo-v2').includes(7005));
  assert.deepEqual(ports(after, 'echo-v2'), [7005]);
  await until('connected', () => (source.state().connected ? true : undefined));
  await until('synced on the new server', () => (again.status()[0]?.status === 'synced' ? true : undefined));
});

test('a removed cluster drops its endpoints and its EDS subscription', async (t) => {
  const { cache, server, source } = await setup(t);
  cache.setSnapshot('proxy-a', build(input([7002]), 'a'));
  await nextConfig(source, () => true);
  const only = serviceSnapshotInput('echo', [{ cluster: 'echo-v1', weight: 100, ports: [7001] }], { listenerPort: 15001 });
  cache.setSnapshot('proxy-a', build({ ...only, endpoints: [...(only.endpoints ?? []), loadAssignment('echo-v2', [7002])] }, 'b'));
  const c = await nextConfig(source, (cfg) => !cfg.clusters.has('echo-v2'));
  assert.equal(c.endpoints.has('echo-v2'), false);
  assert.deepEqual(ports(c, 'echo-v1'), [7001]);
  const eds = await until('EDS subscription shrinks', () => {
    const sub = statusOf(server)?.perType.ClusterLoadAssignment?.subscribed;
    return Array.isArray(sub) && sub.length === 1 ? sub : undefined;
  });
  assert.deepEqual(eds, ['echo-v1']);
});

test('a referenced route that never arrives holds the set back only until the warming timeout', async (t) => {
  const { cache, source } = await setup(t, 150);
  const i = input([7002]);
  const dangling = { ...i, listeners: [...(i.listeners ?? []), portListener('other', 15002, 'missing-route')] };
  assert.deepEqual(cache.setSnapshot('proxy-a', build(dangling, 'x'), { skipConsistencyCheck: true }), { ok: true });
  // Everything else arrives; only the dangling name is still awaited.
  await until('warming on the missing route only', () => (source.state().waitingFor.join() === 'RouteConfiguration/missing-route' ? true : undefined));
  const published: ProxyConfig[] = [];
  source.onConfig((cfg) => published.push(cfg));
  const c = await nextConfig(source, () => true);
  // The only config published is the one the timeout built (it carries the warning).
  assert.equal(published.length, 1);
  assert.deepEqual(c.listeners.map((l) => l.name).sort(), ['echo', 'other']);
  assert.ok(c.routeConfigs.has('echo-route'));
  assert.match(source.state().warnings[0] ?? '', /without RouteConfiguration\/missing-route/);
});
