import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminAddressOf, parsePeerHeader, parseSpiffe, selfIdentity, serviceFromAuthority, serviceFromCluster } from './identity.ts';

test('own identity from node metadata, with fallbacks', () => {
  assert.deepEqual(selfIdentity({ cluster: 'c', metadata: { trellis: { workload: 'reviews-v1', namespace: 'shop' } } }), { workload: 'reviews-v1', namespace: 'shop' });
  assert.deepEqual(selfIdentity({ cluster: 'c', metadata: {} }), { workload: 'c', namespace: 'default' });
  assert.equal(adminAddressOf({ metadata: { trellis: { admin: '10.0.0.1:15000' } } }), '10.0.0.1:15000');
  assert.equal(adminAddressOf({ metadata: { trellis: { admin: 'http://x' } } }), undefined);
});

test('own service: trellis.service, else a sidecar node cluster that is not the workload name; gateway admin advertised', async () => {
  assert.deepEqual(selfIdentity({ cluster: 'x', metadata: { trellis: { kind: 'sidecar', workload: 'ratings-v1', namespace: 'shop', service: 'ratings' } } }), { workload: 'ratings-v1', namespace: 'shop', service: 'ratings.shop.svc.cluster.local' });
  // trellis run: node cluster = service, workload separate.
  assert.equal(selfIdentity({ cluster: 'productpage', metadata: { trellis: { kind: 'sidecar', workload: 'productpage-v1', namespace: 'default' } } }).service, 'productpage.default.svc.cluster.local');
  // trellis bootstrap proxy: node cluster = workload name: no service known.
  assert.equal(selfIdentity({ cluster: 'web', metadata: { trellis: { kind: 'sidecar', workload: 'web', namespace: 'default' } } }).service, undefined);
  assert.equal(selfIdentity({ cluster: 'demo-ingress', metadata: { trellis: { kind: 'gateway', namespace: 'default', gateway: 'demo-ingress' } } }).service, undefined);
  assert.equal(selfIdentity({ cluster: 'x', metadata: { trellis: { service: 'Bad Name' } } }).service, undefined);
  const { gatewayBootstrap } = await import('../../control-plane/translate/gateway.ts');
  const b = gatewayBootstrap({ gateway: 'demo-ingress', namespace: 'default', xdsAddress: '127.0.0.1:1', admin: { address: '0.0.0.0', port: 15000 } }) as { node: { metadata: Record<string, unknown> } };
  assert.equal(adminAddressOf(b.node), '127.0.0.1:15000');
  const b0 = gatewayBootstrap({ gateway: 'g', namespace: 'default', xdsAddress: '127.0.0.1:1', admin: { address: '127.0.0.1', port: 0 } }) as { node: { metadata: Record<string, unknown> } };
  assert.equal(adminAddressOf(b0.node), undefined);
});

test('services from cluster names and authorities', () => {
  assert.deepEqual(serviceFromCluster('reviews.shop.svc:9080'), { service: 'reviews.shop.svc.cluster.local', namespace: 'shop' });
  assert.equal(serviceFromCluster('inbound|9080'), undefined);
  assert.equal(serviceFromAuthority('reviews:9080', 'shop'), 'reviews.shop.svc.cluster.local');
  assert.equal(serviceFromAuthority('reviews.other', 'shop'), 'reviews.other.svc.cluster.local');
  assert.equal(serviceFromAuthority('Reviews.other.svc.cluster.local:80', 'shop'), 'reviews.other.svc.cluster.local');
  assert.equal(serviceFromAuthority('127.0.0.1:8080', 'shop'), undefined);
  // Two labels read as <name>.<namespace> (the caller's series cache bounds the rest).
  assert.equal(serviceFromAuthority('example.com', 'shop'), 'example.com.svc.cluster.local');
  assert.equal(serviceFromAuthority('a.b.c.d', 'shop'), undefined);
  assert.equal(serviceFromAuthority('localhost:80', 'shop'), undefined);
});

test('peer header and SPIFFE ids', () => {
  assert.deepEqual(parsePeerHeader('shop/web'), { namespace: 'shop', workload: 'web' });
  assert.equal(parsePeerHeader('web'), undefined);
  assert.equal(parsePeerHeader('shop/we b'), undefined);
  assert.deepEqual(parseSpiffe('spiffe://cluster.local/ns/shop/sa/web'), { namespace: 'shop', serviceAccount: 'web' });
  assert.equal(parseSpiffe('spiffe://x/y'), undefined);
});
