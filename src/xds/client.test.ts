import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { createServer } from 'node:net';
import { adsMethod, decodeRequest, encodeResponse } from './ads-method.ts';
import type { DiscoveryRequest } from './ads-method.ts';
import { startAdsClient } from './client.ts';
import type { DecodedResource, ResponseVerdict } from './client.ts';
import { packAny } from './codec.ts';
import { TypeUrl } from './protos.ts';
import { edsCluster, loadAssignment } from '../../test/util/xds-fixtures.ts';
import { SnapshotCache } from './cache.ts';
import { createSnapshot } from './snapshot.ts';
import { createXdsServer } from './server.ts';

/** A scripted control plane: records requests, sends what the test says. */
async function fakeControlPlane(t: TestContext, port = 0) {
  const requests: DiscoveryRequest[] = [];
  let waiter: (() => void) | undefined;
  let stream: grpc.ServerDuplexStream<Buffer, Buffer> | undefined;
  const server = new grpc.Server();
  server.addService({ S: adsMethod }, {
    S: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      stream = call;
      call.on('data', (b: Buffer) => {
        requests.push(decodeRequest(b));
        waiter?.();
      });
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  t.after(() => server.forceShutdown());
  return {
    port: bound,
    async next(timeoutMs = 5000): Promise<DiscoveryRequest> {
      const deadline = Date.now() + timeoutMs;
      while (requests.length === 0) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error('no request in time');
        await new Promise<void>((r) => {
          const timer = setTimeout(r, left);
          waiter = () => {
            clearTimeout(timer);
            r();
          };
        });
      }
      return requests.shift() as DiscoveryRequest;
    },
    send(typeUrl: string, version: string, nonce: string, resources: { type_url: string; value: Uint8Array }[]) {
      stream?.write(encodeResponse({ versionInfo: version, typeUrl, nonce, resources }));
    },
    pending: () => requests.length,
    /** Drops every stream and stops listening (a replica that died). */
    shutdown: () => server.forceShutdown(),
  };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('node on the first request only; ACK echoes version and nonce; a resource that does not decode is NACKed', async (t) => {
  const cp = await fakeControlPlane(t);
  const seen: [string, string, readonly DecodedResource[]][] = [];
  const client = startAdsClient({
    serverUri: `127.0.0.1:${cp.port}`,
    node: { id: 'n1', cluster: 'c1', locality: { zone: 'z' }, metadata: { namespace: 'default', ports: [80, 443] } },
    onResponse: (typeUrl, version, resources): ResponseVerdict => {
      seen.push([typeUrl, version, resources]);
      return { ok: true };
    },
  });
  t.after(() => client.close());
  client.subscribe(TypeUrl.cluster, '*');
  client.subscribe(TypeUrl.endpoint, ['b', 'a', 'a']);
  const r1 = await cp.next();
  assert.equal(r1.typeUrl, TypeUrl.cluster);
  assert.equal(r1.node?.id, 'n1');
  assert.equal(r1.node?.cluster, 'c1');
  assert.equal(r1.node?.locality.zone, 'z');
  assert.deepEqual(r1.node?.metadata, { namespace: 'default', ports: [80, 443] });
  assert.deepEqual(r1.resourceNames, []);
  const r2 = await cp.next();
  assert.equal(r2.node, undefined);
  assert.deepEqual(r2.resourceNames, ['a', 'b']);

  cp.send(TypeUrl.cluster, 'v1', 'n-1', [packAny(TypeUrl.cluster, edsCluster('x'))]);
  const ack = await cp.next();
  assert.deepEqual([ack.typeUrl, ack.versionInfo, ack.responseNonce, ack.errorDetail], [TypeUrl.cluster, 'v1', 'n-1', undefined]);
  assert.equal(seen[0]?.[2][0]?.name, 'x');
  assert.equal(seen[0]?.[2][0]?.json.type, 'EDS');

  // Garbage bytes and a type mismatch: NACK with the last ACKed version.
  cp.send(TypeUrl.cluster, 'v2', 'n-2', [{ type_url: TypeUrl.cluster, value: new Uint8Array([0x0a, 0xff]) }]);
  const nack = await cp.next();
  assert.equal(nack.versionInfo, 'v1');
  assert.equal(nack.responseNonce, 'n-2');
  assert.match(nack.errorDetail?.message ?? '', /^resource 0: /);
  cp.send(TypeUrl.cluster, 'v3', 'n-3', [packAny(TypeUrl.endpoint, { clusterName: 'x' })]);
  const nack2 = await cp.next();
  assert.match(nack2.errorDetail?.message ?? '', /in a .*Cluster response/);
  assert.equal(seen.length, 1, 'the owner never saw the broken responses');
  assert.equal(client.state().perType[TypeUrl.cluster]?.lastNack?.version, 'v3');
  assert.equal(client.state().perType[TypeUrl.cluster]?.ackedVersion, 'v1');
});

test('the owner rejecting a response NACKs it; subscriptions made while handling go out after the ACK', async (t) => {
  const cp = await fakeControlPlane(t);
  const client = startAdsClient({
    serverUri: `127.0.0.1:${cp.port}`,
    node: { id: 'n1' },
    onResponse: (typeUrl, version): ResponseVerdict => {
      if (version === 'bad') return { ok: false, message: 'route "r" has no virtual hosts' };
      if (typeUrl === TypeUrl.listener) client.subscribe(TypeUrl.route, ['r']);
      return { ok: true };
    },
  });
  t.after(() => client.close());
  client.subscribe(TypeUrl.listener, '*');
  await cp.next();
  cp.send(TypeUrl.listener, 'l1', 'a', []);
  const ack = await cp.next();
  assert.deepEqual([ack.typeUrl, ack.responseNonce], [TypeUrl.listener, 'a']);
  const rds = await cp.next();
  assert.deepEqual([rds.typeUrl, rds.resourceNames, rds.responseNonce], [TypeUrl.route, ['r'], '']);
  cp.send(TypeUrl.route, 'bad', 'b', []);
  const nack = await cp.next();
  assert.deepEqual([nack.typeUrl, nack.versionInfo, nack.responseNonce, nack.errorDetail?.code, nack.errorDetail?.message], [TypeUrl.route, '', 'b', 3, 'route "r" has no virtual hosts']);
  // A response for a type nobody subscribed to is ignored (no ACK).
  cp.send(TypeUrl.secret, 's', 'c', []);
  cp.send(TypeUrl.listener, 'l2', 'd', []);
  const next = await cp.next();
  assert.deepEqual([next.typeUrl, next.responseNonce], [TypeUrl.listener, 'd']);
});

test('keeps trying with backoff until the control plane appears, then resubscribes everything', async (t) => {
  const port = await freePort();
  const client = startAdsClient({
    serverUri: `127.0.0.1:${port}`,
    node: { id: 'late' },
    backoff: { initialMs: 10, maxMs: 40 },
    onResponse: () => ({ ok: true }),
  });
  t.after(() => client.close());
  client.subscribe(TypeUrl.listener, '*');
  client.subscribe(TypeUrl.cluster, '*');
  const deadline = Date.now() + 10_000;
  while (client.state().disconnects < 3) {
    assert.ok(Date.now() < deadline, 'client did not retry');
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(client.state().connected, false);
  const cp = await fakeControlPlane(t, port);
  const a = await cp.next(10_000);
  const b = await cp.next();
  assert.deepEqual([a.typeUrl, b.typeUrl], [TypeUrl.cluster, TypeUrl.listener], 'CDS before LDS');
  assert.equal(a.node?.id, 'late');
  assert.equal(b.node, undefined);
  // Connected once the stream is up (headers) or a response arrived.
  cp.send(TypeUrl.cluster, 'v', 'n', []);
  const until = Date.now() + 5000;
  while (!client.state().connected) {
    assert.ok(Date.now() < until, 'not connected');
    await new Promise((r) => setTimeout(r, 5));
  }
});

test('several control-plane addresses: skips one that is down, moves to the next when the stream ends, comes back round', async (t) => {
  const down = await freePort();
  const cp1 = await fakeControlPlane(t);
  const client = startAdsClient({
    serverUri: `127.0.0.1:${down}, 127.0.0.1:${cp1.port}`,
    node: { id: 'ha' },
    backoff: { initialMs: 10, maxMs: 40 },
    onResponse: () => ({ ok: true }),
  });
  t.after(() => client.close());
  client.subscribe(TypeUrl.cluster, '*');
  // The first address refuses: the client reaches the second.
  const first = await cp1.next(10_000);
  assert.equal(first.node?.id, 'ha');
  assert.equal(client.state().server, `127.0.0.1:${cp1.port}`);
  assert.match(client.state().lastError ?? '', new RegExp(`^127\\.0\\.0\\.1:${down}: `));
  // Now the first address comes up and the second one goes away: the client moves on, round to the first.
  const cp0 = await fakeControlPlane(t, down);
  cp1.send(TypeUrl.cluster, 'v1', 'n1', []);
  await cp1.next(); // the ACK
  const disconnects = client.state().disconnects;
  cp1.shutdown();
  const again = await cp0.next(10_000);
  assert.equal(again.node?.id, 'ha', 'a new stream starts with the node');
  assert.equal(again.versionInfo, 'v1', 'and the last ACKed version');
  assert.ok(client.state().disconnects > disconnects);
  assert.equal(client.state().server, `127.0.0.1:${down}`);
});

for (const apiType of ['GRPC', 'DELTA_GRPC'] as const) {
  test(`${apiType}: an asynchronous verdict holds the ACK/NACK until it settles`, async (t) => {
    const cache = new SnapshotCache();
    const server = createXdsServer({ source: cache, controlPlaneId: 'test' });
    const port = await server.listen('127.0.0.1', 0);
    t.after(() => server.close());
    const snap = (names: string[], label: string) => {
      const r = createSnapshot({ clusters: names.map((n) => ({ ...edsCluster(n), connectTimeout: '1s' })), endpoints: names.map((n) => loadAssignment(n, [9000])) }, label);
      assert.ok(r.ok);
      return r.snapshot;
    };
    const status = () => server.status()[0];
    const waitFor = async (cond: () => boolean, what: string): Promise<void> => {
      for (const until = Date.now() + 10_000; !cond();) {
        if (Date.now() > until) assert.fail(`timed out waiting for ${what}: ${JSON.stringify(status())}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    cache.setSnapshot('n-async', snap(['a'], 'rev-1'));
    const seen: string[][] = [];
    const held: ((v: ResponseVerdict) => void)[] = [];
    const client = startAdsClient({
      serverUri: `127.0.0.1:${port}`,
      node: { id: 'n-async' },
      apiType,
      onResponse: (_typeUrl, _version, resources) => {
        seen.push(resources.map((r) => r.name).sort());
        return new Promise<ResponseVerdict>((resolve) => held.push(resolve));
      },
    });
    t.after(() => client.close());
    client.subscribe(TypeUrl.cluster, '*');
    await waitFor(() => held.length === 1, 'the first response');
    await new Promise((r) => setTimeout(r, 200));
    assert.notEqual(status()?.status, 'synced', 'no ACK while the verdict is pending');
    held[0]!({ ok: true });
    await waitFor(() => status()?.status === 'synced', 'the ACK');

    cache.setSnapshot('n-async', snap(['a', 'b'], 'rev-2'));
    await waitFor(() => held.length === 2, 'the second response');
    assert.deepEqual(seen[1], ['a', 'b']);
    await new Promise((r) => setTimeout(r, 200));
    assert.notEqual(status()?.status, 'synced', 'no ACK while the verdict is pending');
    assert.notEqual(status()?.status, 'rejected', 'no NACK while the verdict is pending');
    held[1]!({ ok: false, message: 'plugin code from http://x/f.wasm has sha256 0, expected 1' });
    await waitFor(() => status()?.status === 'rejected', 'the NACK');
    assert.match(status()!.perType.Cluster!.nacked?.message ?? '', /has sha256 0, expected 1/);
    assert.equal(client.state().perType[TypeUrl.cluster]!.lastNack?.message, 'plugin code from http://x/f.wasm has sha256 0, expected 1');
  });
}
