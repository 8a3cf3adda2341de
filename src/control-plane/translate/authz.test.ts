// AuthorizationPolicy / RequestAuthentication translation: which policies
// apply, the RBAC and jwt_authn shapes, per-port `to` handling, and the whole
// path (strict Any packing, proxy-side parse) for a sidecar's inbound listener.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { translate } from './translate.ts';
import type { MeshState, ProxyNode } from './model.ts';
import { applySecurity, policiesFor, rulePolicy, securityFilters, type AuthorizationPolicyResource, type RequestAuthenticationResource } from './authz.ts';
import { createSnapshot, snapshotResources } from '../../xds/snapshot.ts';
import { TypeUrl } from '../../xds/protos.ts';
import { unpackAny } from '../../xds/codec.ts';
import { buildProxyConfig } from '../../proxy/config/envoy.ts';

const ap = (ns: string, name: string, spec: AuthorizationPolicyResource['spec']): AuthorizationPolicyResource => ({ metadata: { name, namespace: ns }, spec });
const jwks = JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0', kid: 'k1' }] });
const ra: RequestAuthenticationResource = { metadata: { name: 'jwt', namespace: 'shop' }, spec: { selector: { app: 'orders' }, jwtRules: [{ issuer: 'https://issuer.test', audiences: ['orders'], jwks }] } };

function state(aps: AuthorizationPolicyResource[], ras: RequestAuthenticationResource[] = []): MeshState {
  return {
    services: [{ metadata: { name: 'orders', namespace: 'shop' }, spec: { selector: { app: 'orders' }, ports: [{ port: 8080 }] } }],
    httpRoutes: [], grpcRoutes: [], tcpRoutes: [],
    workloads: [
      { name: 'orders-1', namespace: 'shop', address: '127.0.0.1', serviceAccount: 'orders', labels: { app: 'orders' }, ports: [{ port: 8080, proxyPort: 15100 }, { port: 9090, proxyPort: 15101 }] },
      { name: 'cart-1', namespace: 'shop', address: '127.0.0.2', labels: { app: 'cart' }, ports: [{ port: 8080 }] },
    ],
    vips: new Map(),
    meshTls: { trustDomain: 'mesh.test', policies: [] },
    security: { authorizationPolicies: aps, requestAuthentications: ras },
  };
}

test('which policies apply: selector, namespace-wide, mesh root, targetRef Service', () => {
  const s = state([
    ap('shop', 'by-selector', { selector: { app: 'orders' }, action: 'DENY', rules: [{}] }),
    ap('shop', 'other-app', { selector: { app: 'cart' }, rules: [] }),
    ap('shop', 'ns-wide', { rules: [{}] }),
    ap('trellis-system', 'mesh-wide', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/debug/*'] } }] }] }),
    ap('other', 'elsewhere', { rules: [] }),
    ap('shop', 'by-service', { targetRef: { kind: 'Service', name: 'orders' }, rules: [{}] }),
  ]);
  const p = policiesFor(s.security!, s, s.workloads[0]!);
  assert.deepEqual(p.deny.map((x) => x.metadata.name), ['by-selector', 'mesh-wide']);
  assert.deepEqual(p.allow.map((x) => x.metadata.name), ['by-service', 'ns-wide']);
});

test('rules become RBAC policies: from/to/when, globs, per-port to, allow-nothing', () => {
  const pol = rulePolicy({
    from: [{ source: { principals: ['mesh.test/ns/shop/sa/cart', '*/sa/admin'], namespaces: ['ops'], ipBlocks: ['10.0.0.0/8'] } }],
    to: [{ operation: { methods: ['GET'], paths: ['/api/*', '/health'], ports: ['8080'] } }, { operation: { ports: ['9090'], paths: ['/metrics'] } }],
    when: [{ key: 'request.headers[X-Tenant]', values: ['acme'] }, { key: 'request.auth.claims[groups]', values: ['admin'] }],
  }, 8080, 'mesh.test', 'shop')!;
  assert.equal((pol.permissions as unknown[]).length, 1, 'the 9090 operation is dropped on port 8080');
  const text = JSON.stringify(pol);
  assert.match(text, /"exact":"spiffe:\/\/mesh.test\/ns\/shop\/sa\/cart"/);
  assert.match(text, /"suffix":"\/sa\/admin"/);
  assert.match(text, /spiffe:\/\/mesh\\\\.test\/ns\/ops\/sa\/\[\^\/\]\+/);
  assert.match(text, /"addressPrefix":"10.0.0.0","prefixLen":8/);
  assert.match(text, /"prefix":"\/api\/"/);
  assert.match(text, /"name":"x-tenant"/);
  assert.match(text, /"key":"payload"\},\{"key":"groups"/);
  assert.equal(rulePolicy({ to: [{ operation: { ports: ['9090'] } }] }, 8080, undefined, 'shop'), undefined);

  const s = state([ap('shop', 'deny-all', { selector: { app: 'orders' } })]);
  const [allow] = securityFilters(s.security!, s, s.workloads[0]!, 8080) as { typedConfig: { rules: { action: string; policies: Record<string, unknown> } } }[];
  assert.equal(allow!.typedConfig.rules.action, 'ALLOW');
  assert.deepEqual(Object.keys(allow!.typedConfig.rules.policies), ['ns[shop]-policy[deny-all]-rule[0]']);
});

test('the inbound listener carries jwt_authn, DENY, ALLOW before the router; it packs strictly and parses on the proxy', () => {
  const s = state([
    ap('shop', 'allow-cart', { selector: { app: 'orders' }, rules: [{ from: [{ source: { principals: ['mesh.test/ns/shop/sa/cart'], requestPrincipals: ['*'] } }], when: [{ key: 'request.auth.claims[iss]', values: ['https://issuer.test'] }, { key: 'source.ip', values: ['127.0.0.1'] }] }] }),
    ap('shop', 'no-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'], notMethods: ['GET'], hosts: ['orders.shop'] } }] }] }),
  ], [ra, { metadata: { name: 'remote', namespace: 'shop' }, spec: { jwtRules: [{ issuer: 'https://other.test', jwksUri: 'https://127.0.0.1:1/jwks', fromHeaders: [{ name: 'x-jwt' }] }] } }]);
  const node: ProxyNode = { id: 'orders-1', kind: 'sidecar', namespace: 'shop', workload: 'orders-1' };
  const out = translate(s, node);
  const inbound = out.listeners.find((l) => (l as { name: string }).name === 'inbound|8080') as { filterChains: { filters: { typedConfig: { httpFilters: { name: string }[] } }[] }[] };
  for (const chain of inbound.filterChains) {
    assert.deepEqual(chain.filters[0]!.typedConfig.httpFilters.map((f) => f.name), ['envoy.filters.http.jwt_authn', 'envoy.filters.http.rbac.deny', 'envoy.filters.http.rbac.allow', 'envoy.filters.http.router']);
  }
  const outbound = out.listeners.find((l) => (l as { name: string }).name === 'outbound') as { filterChains: { filters: { typedConfig: { httpFilters: unknown[] } }[] }[] };
  assert.equal(outbound.filterChains[0]!.filters[0]!.typedConfig.httpFilters.length, 1, 'outbound listeners are untouched');

  const snap = createSnapshot(out);
  assert.ok(snap.ok, JSON.stringify(!snap.ok && snap.errors));
  const decode = (url: string): unknown[] => [...snapshotResources(snap.snapshot, url as never).values()].map((r) => unpackAny(r.any));
  const built = buildProxyConfig({ version: 'v1', listeners: decode(TypeUrl.listener), routeConfigs: decode(TypeUrl.route), clusters: decode(TypeUrl.cluster), endpoints: decode(TypeUrl.endpoint) });
  assert.ok(built.ok, JSON.stringify(!built.ok && built.errors));
  const l = built.config.listeners.find((x) => x.name === 'inbound|8080')!;
  const kinds = l.filterChains[0]!.http!.httpFilters!.map((f) => f.kind);
  assert.deepEqual(kinds, ['jwt_authn', 'rbac', 'rbac']);
  const jwt = l.filterChains[0]!.http!.httpFilters![0]!;
  assert.ok(jwt.kind === 'jwt_authn');
  assert.deepEqual([...jwt.jwt.providers.keys()], ['shop.jwt.0', 'shop.remote.0']);
  assert.deepEqual(jwt.jwt.providers.get('shop.remote.0')!.fromHeaders, [{ name: 'x-jwt', prefix: '' }]);
});

test('no policies: the translation is unchanged', () => {
  const s = { ...state([]), security: { authorizationPolicies: [], requestAuthentications: [] } };
  const node: ProxyNode = { id: 'orders-1', kind: 'sidecar', namespace: 'shop', workload: 'orders-1' };
  const { security: _drop, ...bare } = s;
  assert.deepEqual(translate(s, node), translate(bare, node));
});

test('gateways: policies whose targetRef names the Gateway apply to its HTTP listeners, ports matched at run time', () => {
  const s = state([
    { metadata: { name: 'edge', namespace: 'shop' }, spec: { targetRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'public' }, rules: [{ to: [{ operation: { ports: ['443'], paths: ['/api/*'] } }] }] } },
    ap('shop', 'ns-wide', { action: 'DENY', rules: [{}] }),
  ]);
  const hcm = { name: 'envoy.filters.network.http_connection_manager', typedConfig: { '@type': 'x', httpFilters: [{ name: 'envoy.filters.http.router' }] } };
  const parts = { sharedKey: 'k', shared: { listeners: [], routes: [], clusters: [], endpoints: [] }, own: { listeners: [{ name: 'gateway|443', filterChains: [{ name: 'gateway|443', filters: [hcm] }] }], routes: [], clusters: [], endpoints: [] }, warnings: [] };
  const out = applySecurity(parts, s, { id: 'gw', kind: 'gateway', namespace: 'shop', gateway: 'public' }, s.security);
  const filters = (out.own.listeners[0] as { filterChains: { filters: { typedConfig: { httpFilters: { name: string; typedConfig?: unknown }[] } }[] }[] }).filterChains[0]!.filters[0]!.typedConfig.httpFilters;
  assert.deepEqual(filters.map((f) => f.name), ['envoy.filters.http.rbac.allow', 'envoy.filters.http.router'], 'the namespace-wide DENY is for workloads, not the gateway');
  assert.match(JSON.stringify(filters[0]), /"destinationPort":443/);
  assert.equal(applySecurity(parts, s, { id: 'gw', kind: 'gateway', namespace: 'shop', gateway: 'other' }, s.security), parts);
});

test('a TCP port gets the network RBAC filter before tcp_proxy, read back by the proxy after the xDS encoding; HTTP-only rules warn', () => {
  const s: MeshState = {
    ...state([
      ap('shop', 'db-callers', { selector: { app: 'db' }, rules: [{ from: [{ source: { namespaces: ['shop'] } }] }, { to: [{ operation: { paths: ['/x'] } }] }] }),
      ap('shop', 'no-intruder', { action: 'DENY', rules: [{ from: [{ source: { principals: ['mesh.test/ns/shop/sa/intruder'] } }] }] }),
    ]),
    services: [{ metadata: { name: 'db', namespace: 'shop' }, spec: { selector: { app: 'db' }, ports: [{ port: 5432, protocol: 'tcp' }] } }],
    workloads: [{ name: 'db-1', namespace: 'shop', address: '127.0.0.1', serviceAccount: 'db', labels: { app: 'db' }, ports: [{ port: 5432, protocol: 'tcp', proxyPort: 15100 }] }],
  };
  const out = translate(s, { id: 'shop/db-1', kind: 'sidecar', namespace: 'shop', workload: 'db-1' } as ProxyNode);
  assert.deepEqual(out.warnings, [{ route: 'AuthorizationPolicy shop/db-callers', message: 'rules[1]: to[0].operation.paths cannot apply to TCP port 5432: the rule is ignored there (it allows nothing)' }]);
  const snap = createSnapshot(out);
  assert.ok(snap.ok, JSON.stringify(!snap.ok && snap.errors));
  const decode = (url: string): unknown[] => [...snapshotResources(snap.snapshot, url as never).values()].map((r) => unpackAny(r.any));
  const built = buildProxyConfig({ version: 'v1', listeners: decode(TypeUrl.listener), routeConfigs: decode(TypeUrl.route), clusters: decode(TypeUrl.cluster), endpoints: decode(TypeUrl.endpoint) }, { references: 'error' });
  assert.ok(built.ok, JSON.stringify(!built.ok && built.errors));
  const chains = built.config.listeners.filter((l) => l.direction === 'inbound').flatMap((l) => l.filterChains).filter((c) => c.tcp);
  assert.ok(chains.length >= 1);
  for (const c of chains) {
    assert.deepEqual(c.networkRbac?.map((f) => [f.name, f.rbac.action, f.rbac.policies.map((p) => p.name)]), [
      ['envoy.filters.network.rbac.deny', 'DENY', ['ns[shop]-policy[no-intruder]-rule[0]']],
      ['envoy.filters.network.rbac.allow', 'ALLOW', ['ns[shop]-policy[db-callers]-rule[0]']],
    ]);
  }
});
