import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveServiceHost, serviceHostnames } from './service-names.ts';

test('serviceHostnames: the short name only within the namespace', () => {
  assert.deepEqual(serviceHostnames('shop', 'cart'), ['cart.shop.svc.cluster.local', 'cart.shop.svc', 'cart.shop']);
  assert.deepEqual(serviceHostnames('shop', 'cart', 'shop'), ['cart.shop.svc.cluster.local', 'cart.shop.svc', 'cart.shop', 'cart']);
});

test('resolveServiceHost maps every spelling back, with or without a port', () => {
  for (const h of ['cart.shop.svc.cluster.local', 'cart.shop.svc', 'cart.shop', 'CART.shop.svc:8080', 'cart.shop.svc.cluster.local.']) {
    assert.deepEqual(resolveServiceHost(h, 'default'), { namespace: 'shop', name: 'cart' }, h);
  }
  assert.deepEqual(resolveServiceHost('cart', 'shop'), { namespace: 'shop', name: 'cart' });
  assert.deepEqual(resolveServiceHost('cart:80', 'shop'), { namespace: 'shop', name: 'cart' });
  assert.equal(resolveServiceHost('cart.shop.svc.other.domain', 'shop'), null);
  assert.equal(resolveServiceHost('a.b.c', 'shop'), null);
  assert.equal(resolveServiceHost('bad_name', 'shop'), null);
  assert.equal(resolveServiceHost('', 'shop'), null);
});
