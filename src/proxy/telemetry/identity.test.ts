import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminAddressOf, parsePeerHeader, parseSpiffe, selfIdentity, serviceFromAuthority, serviceFromCluster } from './identity.ts';

test('own identity from node metadata, with fallbacks', () => {
  assert.deepEqual(selfIdentity({ cluster: 'c', metadata: { trellis: { workload: 'reviews-v1', namespace: 'shop' } } }), { workload: 'reviews-v1', namespace: 'shop' });
  assert.deepEqual(selfIdentity({ cluster: 'c', metadata: {} }), { workload: 'c', namespace: 'default' });
  assert.equal(adminAddressOf({ metadata: { trellis: { admin: '10.0.0.1:15000' } } }), '10.0.0.1:15000');
  assert.equal(adminAddressOf({ metadata: { trellis: { admin: 'http://x' } } }), undefined);
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
