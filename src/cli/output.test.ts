import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatAge, renderTable, resourceTable } from './output.ts';
import { describeResource } from './commands/describe.ts';
import { summarizeRules } from './describe-kinds.ts';
import { kindDef } from '../api/kinds.ts';
import type { Resource } from '../api/types.ts';

test('ages read like kubectl', () => {
  const now = Date.parse('2026-01-10T00:00:00Z');
  assert.equal(formatAge('2026-01-09T23:59:15Z', now), '45s');
  assert.equal(formatAge('2026-01-09T23:48:00Z', now), '12m');
  assert.equal(formatAge('2026-01-09T19:00:00Z', now), '5h');
  assert.equal(formatAge('2026-01-07T00:00:00Z', now), '3d');
  assert.equal(formatAge(undefined, now), '<unknown>');
});

test('tables align columns with three spaces and no trailing blanks', () => {
  assert.equal(renderTable(['NAME', 'PORTS', 'AGE'], [['a', '80/http', '1s'], ['longer-name', '', '2m']]), [
    'NAME          PORTS     AGE',
    'a             80/http   1s',
    'longer-name             2m',
  ].join('\n'));
});

const route: Resource = {
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute',
  metadata: { name: 'reviews', namespace: 'shop', creationTimestamp: '2026-01-09T23:59:00Z', generation: 2, resourceVersion: '7' },
  spec: {
    hostnames: ['reviews.shop'],
    parentRefs: [{ group: '', kind: 'Service', name: 'reviews' }],
    rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/api' }, method: 'GET' }], backendRefs: [{ name: 'reviews-v1', port: 9080, weight: 3 }, { name: 'reviews-v2', port: 9080, weight: 1 }], timeouts: { request: '2s' } }],
  },
  status: { conditions: [{ type: 'ResolvedRefs', status: 'False', reason: 'BackendNotFound', message: 'backend Service not found: shop/reviews-v2' }], warnings: ['spec.rules[0].backendRefs[1]: backend Service shop/reviews-v2 not found'] },
};

test('kind columns, wide columns and all-namespaces', () => {
  const def = kindDef('HTTPRoute');
  assert.ok(def);
  const now = Date.parse('2026-01-10T00:00:00Z');
  assert.equal(resourceTable(def, [route], { now }), 'NAME      HOSTNAMES      PARENTS           AGE\nreviews   reviews.shop   Service/reviews   60s');
  assert.equal(resourceTable(def, [route], { now, wide: true, allNamespaces: true }),
    'NAMESPACE   NAME      HOSTNAMES      PARENTS           BACKENDS                AGE\nshop        reviews   reviews.shop   Service/reviews   reviews-v1,reviews-v2   60s');
});

test('describe summarizes rules and shows conditions and warnings', () => {
  assert.deepEqual(summarizeRules(route), ['[0] PathPrefix /api GET -> reviews-v1:9080 75%, reviews-v2:9080 25% (timeout 2s)']);
  const text = describeResource(route, Date.parse('2026-01-10T00:00:00Z'));
  assert.match(text, /^Name: {13}reviews$/m);
  assert.match(text, /^Created: {10}2026-01-09T23:59:00Z \(60s ago\)$/m);
  assert.match(text, /^ {2}ResolvedRefs {3}False {4}BackendNotFound {3}backend Service not found: shop\/reviews-v2$/m);
  assert.match(text, /Warnings:\n {2}spec\.rules\[0\]\.backendRefs\[1\]: backend Service shop\/reviews-v2 not found$/);
});
