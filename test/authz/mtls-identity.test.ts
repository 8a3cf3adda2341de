// Authorization by real mTLS identities, end to end: workload certificates
// from the in-process CA, a caller's outbound sidecar originating mTLS, and
// an inbound sidecar whose RBAC filters are what translate/authz.ts makes of
// an AuthorizationPolicy. The policy allows the frontend's SPIFFE ID to GET
// /api/*; another workload's identity, other methods and plaintext callers
// (no identity) are denied and counted with the policy's name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestCa, startIdentity, startOutbound, spiffe, downstreamTls, TD } from '../mtls/harness.ts';
import { meshTlsProxyOptions } from '../../src/proxy/tls/mesh-tls.ts';
import { buildProxyConfig } from '../../src/proxy/config/envoy.ts';
import { startProxy } from '../../src/proxy/proxy.ts';
import { securityFilters, type AuthorizationPolicyResource } from '../../src/control-plane/translate/authz.ts';
import type { MeshState, WorkloadInstance } from '../../src/control-plane/translate/model.ts';
import { addr, cluster, hcmFilter, metric, request, startApp } from './kit.ts';

test('ALLOW by SPIFFE ID over real mTLS; other identities, methods and plaintext are 403', async (t) => {
  const tca = await startTestCa(t);
  const [orders, frontend, intruder] = await Promise.all([startIdentity(t, tca, 'orders'), startIdentity(t, tca, 'frontend'), startIdentity(t, tca, 'intruder')]);
  const app = await startApp(t);

  // What the control plane would attach to orders' inbound listener on 8080.
  const me: WorkloadInstance = { name: 'orders-1', namespace: 'shop', address: '127.0.0.1', serviceAccount: 'orders', labels: { app: 'orders' }, ports: [{ port: 8080 }] };
  const policies: AuthorizationPolicyResource[] = [
    { metadata: { name: 'orders-callers', namespace: 'shop' }, spec: { selector: { app: 'orders' }, rules: [{ from: [{ source: { serviceAccounts: ['frontend'] } }], to: [{ operation: { methods: ['GET'], paths: ['/api/*'] } }] }] } },
    { metadata: { name: 'no-internal', namespace: 'shop' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/api/internal*'] } }] }] } },
  ];
  const state: MeshState = { services: [], httpRoutes: [], grpcRoutes: [], tcpRoutes: [], workloads: [me], vips: new Map(), meshTls: { trustDomain: TD, policies: [] } };
  const filters = securityFilters({ authorizationPolicies: policies, requestAuthentications: [] }, state, me, 8080);
  assert.equal(filters.length, 2);

  const built = buildProxyConfig({
    version: 'orders-inbound',
    listeners: [{
      name: 'inbound', address: addr(0), trafficDirection: 'INBOUND',
      filterChains: [
        { name: 'mtls', filterChainMatch: { transportProtocol: 'tls' }, transportSocket: downstreamTls, filters: [hcmFilter('inbound', 'app', filters)] },
        { name: 'plaintext', filterChainMatch: { transportProtocol: 'raw_buffer' }, filters: [hcmFilter('inbound', 'app', filters)] },
      ],
    }],
    clusters: [cluster('app', app)],
  }, { references: 'error' });
  assert.ok(built.ok, JSON.stringify(built));
  const mesh = meshTlsProxyOptions(orders, { trustDomain: TD });
  const started = await startProxy({ config: built.config, node: { id: 'orders', cluster: 'orders', locality: { region: '', zone: '', subZone: '' }, metadata: {} }, admin: false, detectTimeoutMs: 100, ...mesh });
  assert.ok(started.ok, JSON.stringify(started));
  const proxy = started.proxy;
  t.after(async () => {
    mesh.terminateTls.close();
    await proxy.stop({ drainMs: 0 });
  });
  const inbound = proxy.ports.get('inbound')!;

  const viaFrontend = await startOutbound(t, frontend, inbound, { sans: [spiffe('orders')] });
  const viaIntruder = await startOutbound(t, intruder, inbound, { sans: [spiffe('orders')] });

  const ok = await request(viaFrontend, { path: '/api/orders' });
  assert.equal(ok.status, 200);
  assert.equal(JSON.parse(ok.body).peer, spiffe('frontend'), 'the app sees the verified caller');
  assert.equal((await request(viaFrontend, { method: 'DELETE', path: '/api/orders' })).status, 403);
  assert.equal((await request(viaFrontend, { path: '/api/internal/x' })).status, 403, 'DENY wins over the matching ALLOW');
  const other = await request(viaIntruder, { path: '/api/orders' });
  assert.equal(other.status, 403);
  assert.equal(other.headers['x-trellis-proxy-error'], 'FORBIDDEN');
  assert.match(other.headers['x-trellis-proxy-error-reason'] as string, /^no ALLOW rule of AuthorizationPolicy shop\/orders-callers matched; caller: spiffe:\/\/[^ ]+\/sa\/intruder$/);
  assert.equal((await request(inbound, { path: '/api/orders' })).status, 403, 'plaintext: no identity');

  assert.equal(metric(proxy, 'trellis_authz_denied_total', { policy: 'orders-callers', namespace: 'shop' }), 3);
  assert.equal(metric(proxy, 'trellis_authz_denied_total', { policy: 'no-internal', namespace: 'shop' }), 1);
});
