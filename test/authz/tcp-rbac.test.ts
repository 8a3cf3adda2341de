// AuthorizationPolicy on TCP ports (issue 13: they were silently open).
// translate/authz.ts writes Envoy's network RBAC filter before tcp_proxy on
// inbound TCP chains; the proxy decides once per connection, after TLS
// termination gave it the caller's SPIFFE ID. Real mTLS identities from the
// test CA, sidecars originating mTLS, a TCP echo app.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { startTestCa, startIdentity, startTcpOutbound, spiffe, downstreamTls, TD } from '../mtls/harness.ts';
import { meshTlsProxyOptions } from '../../src/proxy/tls/mesh-tls.ts';
import { buildProxyConfig } from '../../src/proxy/config/envoy.ts';
import { startProxy, type Proxy } from '../../src/proxy/proxy.ts';
import { networkSecurityFilters, type AuthorizationPolicyResource } from '../../src/control-plane/translate/authz.ts';
import type { MeshState, WorkloadInstance } from '../../src/control-plane/translate/model.ts';
import type { WorkloadIdentity } from '../../src/proxy/identity/workload-identity.ts';
import type { RouteWarning } from '../../src/control-plane/translate/http-routes.ts';
import { addr, cluster, metric } from './kit.ts';

async function echoApp(t: TestContext): Promise<{ port: number; connections: () => number }> {
  let n = 0;
  const s = net.createServer((c) => {
    n++;
    c.on('data', (d: Buffer) => c.write(`echo:${d.toString()}`));
    c.on('error', () => {});
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => s.close());
  return { port: (s.address() as AddressInfo).port, connections: () => n };
}

/** Connect, send "ping", and return what came back before close or 2 s. */
function exchange(port: number): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    let got = '';
    const done = () => {
      clearTimeout(timer);
      c.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, 2000);
    c.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes('echo:ping')) done();
    });
    c.on('error', () => {});
    c.on('close', done);
    c.write('ping');
  });
}

const me: WorkloadInstance = { name: 'db-1', namespace: 'shop', address: '127.0.0.1', serviceAccount: 'db', labels: { app: 'db' }, ports: [{ port: 5432, protocol: 'tcp' }] };
const state: MeshState = { services: [], httpRoutes: [], grpcRoutes: [], tcpRoutes: [], workloads: [me], vips: new Map(), meshTls: { trustDomain: TD, policies: [] } };

/** db's inbound TCP sidecar (STRICT mTLS) with the network filters translate writes for these policies. */
async function dbSidecar(t: TestContext, identity: WorkloadIdentity, appPort: number, policies: AuthorizationPolicyResource[], warnings: RouteWarning[] = []): Promise<{ proxy: Proxy; port: number }> {
  const filters = networkSecurityFilters({ authorizationPolicies: policies, requestAuthentications: [] }, state, me, 5432, (w) => warnings.push(w));
  const built = buildProxyConfig({
    version: 'db-inbound',
    listeners: [{
      name: 'inbound', address: addr(0), trafficDirection: 'INBOUND',
      filterChains: [{ name: 'inbound|5432', filterChainMatch: { transportProtocol: 'tls' }, transportSocket: downstreamTls, filters: [...filters, { name: 'envoy.filters.network.tcp_proxy', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', statPrefix: 'inbound', cluster: 'app' } }] }],
    }],
    clusters: [cluster('app', appPort)],
  }, { references: 'error' });
  assert.ok(built.ok, JSON.stringify(built));
  const mesh = meshTlsProxyOptions(identity, { trustDomain: TD });
  const started = await startProxy({ config: built.config, node: { id: 'db', cluster: 'db', locality: { region: '', zone: '', subZone: '' }, metadata: {} }, admin: false, detectTimeoutMs: 100, ...mesh });
  assert.ok(started.ok, JSON.stringify(started));
  t.after(async () => {
    mesh.terminateTls.close();
    await started.proxy.stop({ drainMs: 0 });
  });
  return { proxy: started.proxy, port: started.proxy.ports.get('inbound')! };
}

test('TCP DENY by principal and ALLOW by service account, through real mTLS sidecars', async (t) => {
  const tca = await startTestCa(t);
  const [db, orders, reports, intruder] = await Promise.all([startIdentity(t, tca, 'db'), startIdentity(t, tca, 'orders'), startIdentity(t, tca, 'reports'), startIdentity(t, tca, 'intruder')]);
  const app = await echoApp(t);
  const { proxy, port } = await dbSidecar(t, db, app.port, [
    { metadata: { name: 'db-clients', namespace: 'shop' }, spec: { selector: { app: 'db' }, rules: [{ from: [{ source: { serviceAccounts: ['orders', 'reports'] } }] }] } },
    { metadata: { name: 'no-reports', namespace: 'shop' }, spec: { action: 'DENY', rules: [{ from: [{ source: { principals: [`${TD}/ns/shop/sa/reports`] } }], to: [{ operation: { ports: ['5432'] } }] }] } },
  ]);
  const via = async (id: WorkloadIdentity) => exchange(await startTcpOutbound(t, id, port, [spiffe('db')]));

  assert.equal(await via(orders), 'echo:ping', 'allowed service account');
  assert.equal(await via(reports), '', 'DENY by principal wins over the ALLOW');
  assert.equal(await via(intruder), '', 'not in the ALLOW list');
  assert.equal(app.connections(), 1, 'denied connections never reach the app');
  assert.equal(metric(proxy, 'trellis_authz_denied_total', { policy: 'no-reports', namespace: 'shop' }), 1);
  assert.equal(metric(proxy, 'trellis_authz_denied_total', { policy: 'db-clients', namespace: 'shop' }), 1);
});

test('HTTP-only fields on a TCP port: ignored in ALLOW (allows nothing), dropped in DENY (denies more), with a warning', async (t) => {
  const tca = await startTestCa(t);
  const [db, orders] = await Promise.all([startIdentity(t, tca, 'db'), startIdentity(t, tca, 'orders')]);
  const app = await echoApp(t);
  const warnings: RouteWarning[] = [];
  const allowPaths = await dbSidecar(t, db, app.port, [
    { metadata: { name: 'by-path', namespace: 'shop' }, spec: { rules: [{ from: [{ source: { serviceAccounts: ['orders'] } }], to: [{ operation: { paths: ['/api/*'] } }] }] } },
  ], warnings);
  assert.equal(await exchange(await startTcpOutbound(t, orders, allowPaths.port, [spiffe('db')])), '', 'an ALLOW rule with paths cannot match TCP');
  assert.deepEqual(warnings, [{ route: 'AuthorizationPolicy shop/by-path', message: 'rules[0]: to[0].operation.paths cannot apply to TCP port 5432: the rule is ignored there (it allows nothing)' }]);

  const denyMethods = await dbSidecar(t, db, app.port, [
    { metadata: { name: 'no-delete', namespace: 'shop' }, spec: { action: 'DENY', rules: [{ from: [{ source: { serviceAccounts: ['orders'] } }], to: [{ operation: { methods: ['DELETE'] } }] }] } },
  ], warnings);
  assert.equal(await exchange(await startTcpOutbound(t, orders, denyMethods.port, [spiffe('db')])), '', 'the DENY applies without its methods');
  assert.match(warnings[1]!.message, /to\[0\]\.operation\.methods cannot apply to TCP port 5432: the rule is applied there without them/);
  assert.equal(app.connections(), 0);
});

test('the proxy refuses HTTP-only matchers in a network RBAC filter, naming the field', () => {
  const built = buildProxyConfig({
    version: 'x',
    listeners: [{ name: 'l', address: addr(0), filterChains: [{ filters: [
      { name: 'rbac', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC', statPrefix: 'r', rules: { action: 'DENY', policies: { p: { permissions: [{ urlPath: { path: { prefix: '/admin' } } }], principals: [{ any: true }] } } } } },
      { name: 'tcp', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', statPrefix: 'in', cluster: 'app' } },
    ] }] }],
    clusters: [cluster('app', 1)],
  });
  assert.ok(!built.ok);
  assert.match(JSON.stringify(built), /filters\[0\]\.typedConfig\.rules\.policies\.p\.permissions\[0\]\.urlPath.*needs an HTTP request/);
});
