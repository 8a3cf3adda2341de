import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTROLLER_NAME, mergeParentStatuses, routeParentStatuses, type KubeRoute, type RouteParentStatus } from './route-status.ts';
import { gatewayResourceFromKube } from './mapping.ts';

const parentRef = { group: '', kind: 'Service', name: 'reviews', port: 9080 };
const route = (backend: string, path = '/'): KubeRoute => ({
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute',
  metadata: { name: 'r', namespace: 'shop', generation: 4 },
  spec: { parentRefs: [parentRef], rules: [{ matches: [{ path: { type: path === '/' ? 'PathPrefix' : 'RegularExpression', value: path } }], backendRefs: [{ name: backend, port: 9080 }] }] } as KubeRoute['spec'],
});
const statuses = (r: KubeRoute, refs: string[]) =>
  routeParentStatuses(r, 'HTTPRoute', gatewayResourceFromKube(r, 'HTTPRoute'), new Set(refs), '2026-01-01T00:00:00Z')[0]!.conditions.map((c) => `${c.type} ${c.status} ${c.reason}: ${c.message} (gen ${c.observedGeneration})`);

test('route status: accepted and resolved; a missing backend names its field; a refused route names the field at fault', () => {
  assert.deepEqual(statuses(route('reviews-v1'), ['Service/shop/reviews', 'Service/shop/reviews-v1']), [
    'Accepted True Accepted: Route is accepted (gen 4)',
    'ResolvedRefs True ResolvedRefs: All references resolved (gen 4)',
  ]);
  assert.deepEqual(statuses(route('reviews-v9'), ['Service/shop/reviews']), [
    'Accepted True Accepted: Route is accepted (gen 4)',
    'ResolvedRefs False BackendNotFound: spec.rules[0].backendRefs[0]: backend Service shop/reviews-v9 not found (gen 4)',
  ]);
  const refused = statuses(route('reviews-v9', '/('), ['Service/shop/reviews']);
  assert.match(refused[0]!, /^Accepted False UnsupportedValue: not accepted by Trellis: spec\.rules\[0\]\.matches\[0\]\.path\.value: invalid regular expression/);
  assert.match(refused[1]!, /^ResolvedRefs False BackendNotFound: spec\.rules\[0\]\.backendRefs\[0\]/);
});

test('merging: other controllers keep their entries, an unchanged condition keeps its transition time, no change is no write', () => {
  const other: RouteParentStatus = { parentRef, controllerName: 'example.com/other', conditions: [] };
  const ours = (status: 'True' | 'False', at: string): RouteParentStatus => ({
    parentRef, controllerName: CONTROLLER_NAME,
    conditions: [{ type: 'Accepted', status, reason: 'Accepted', message: 'm', observedGeneration: 4, lastTransitionTime: at }],
  });
  const first = mergeParentStatuses([other], [ours('True', 't1')]);
  assert.deepEqual(first, [other, ours('True', 't1')]);
  // Stored by the API server: keys sorted. Same content, later clock: nothing to write.
  const stored = JSON.parse(JSON.stringify(first, (_k, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v))) as RouteParentStatus[];
  assert.equal(mergeParentStatuses(stored, [ours('True', 't2')]), undefined);
  // A status change moves the transition time.
  assert.deepEqual(mergeParentStatuses(stored, [ours('False', 't3')])?.[1]?.conditions[0]?.lastTransitionTime, 't3');
});
