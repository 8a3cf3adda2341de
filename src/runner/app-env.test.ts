import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explicitAppEnv, upstreamEnvName } from './app-env.ts';
import { sidecarBootstrap } from './sidecar.ts';

test('explicit-mode env: HTTP_PROXY to the guard, loopback direct, one variable per upstream', () => {
  const env = explicitAppEnv({
    base: { PATH: '/bin', HTTP_PROXY: 'http://elsewhere:1' },
    proxy: { host: '127.0.0.1', port: 4000 },
    upstreams: [{ service: 'ratings-v2', port: 50051, localPort: 7001 }, { service: 'db', namespace: 'data', port: 5432, localPort: 7002, localAddress: '127.0.0.2' }],
    service: 'productpage',
    namespace: 'default',
    workload: 'productpage-1',
    ports: [{ port: 9080 }, { port: 9443 }],
  });
  assert.equal(env.PATH, '/bin');
  assert.equal(env.HTTP_PROXY, 'http://127.0.0.1:4000');
  assert.equal(env.http_proxy, 'http://127.0.0.1:4000');
  assert.equal(env.NO_PROXY, 'localhost,127.0.0.1,::1');
  assert.equal(env.TRELLIS_UPSTREAM_RATINGS_V2_50051, '127.0.0.1:7001');
  assert.equal(env.TRELLIS_UPSTREAM_DB_5432, '127.0.0.2:7002');
  assert.equal(env.TRELLIS_PORTS, '9080,9443');
  assert.equal(upstreamEnvName('a.b-c', 1), 'TRELLIS_UPSTREAM_A_B_C_1');
});

test('sidecar bootstrap: ADS, node metadata the control plane reads', () => {
  const b = sidecarBootstrap({
    kind: 'sidecar', nodeId: 'default/r-1', cluster: 'r', namespace: 'default', workload: 'r-1', xdsAddress: '127.0.0.1:15010',
    admin: { address: '127.0.0.1', port: 15000 }, outbound: { address: '127.0.0.1', port: 15001 }, inboundAddress: '127.0.0.1',
    upstreams: [{ service: 'db', port: 5432, localPort: 7002 }], requiredListeners: [], dir: '/tmp', logTo: 'inherit',
  }) as { node: { id: string; metadata: { trellis: Record<string, unknown> } }; dynamicResources: unknown };
  assert.equal(b.node.id, 'default/r-1');
  assert.deepEqual(b.node.metadata.trellis, {
    kind: 'sidecar', namespace: 'default', outbound: { address: '127.0.0.1', port: 15001 }, admin: '127.0.0.1:15000',
    workload: 'r-1', service: 'r', inboundAddress: '127.0.0.1', upstreams: [{ service: 'db', port: 5432, localPort: 7002 }],
  });
  assert.deepEqual(b.dynamicResources, { ads: { address: '127.0.0.1:15010' } });
});
