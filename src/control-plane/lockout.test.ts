import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lockoutWarnings } from './lockout.ts';
import type { Resource } from '../api/types.ts';
import type { EdgeRow } from './telemetry/golden.ts';

const wl = (name: string, labels: Record<string, string>, o: { identity?: boolean; sa?: string; ns?: string } = {}): Resource => ({
  apiVersion: 'trellis.dev/v1alpha1', kind: 'Workload',
  metadata: { name, namespace: o.ns ?? 'shop', labels: { ...labels, 'trellis.dev/tls-mode': o.identity === false ? 'none' : 'mtls' } },
  spec: { address: '127.0.0.1', serviceAccount: o.sa ?? labels.app ?? name, ports: [{ port: 9080, proxyPort: 15001 }] },
} as Resource);
const edge = (src: string, dst: string, rps: number): EdgeRow => ({
  source: { workload: src, namespace: src === 'unknown' ? 'unknown' : 'shop' }, destination: { workload: dst, namespace: 'shop' },
  requests: rps * 900, rps, successRate: 1, latencyMs: { p50: 1, p95: 1, p99: 1 }, mtlsShare: 0,
});
const policy = (kind: string, spec: unknown, ns = 'shop'): Resource => ({ apiVersion: 'trellis.dev/v1alpha1', kind, metadata: { name: 'p', namespace: ns }, spec } as Resource);

const workloads = [
  wl('reviews-v1-aaaaa', { app: 'reviews', version: 'v1' }),
  wl('reviews-v2-bbbbb', { app: 'reviews', version: 'v2' }, { identity: false }),
  wl('web-ccccc', { app: 'web' }),
  wl('batch-ddddd', { app: 'batch' }, { identity: false }),
];
const services = [{ apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: 'reviews', namespace: 'shop' }, spec: { selector: { app: 'reviews' }, ports: [] } } as unknown as Resource];
const edges = [edge('web-ccccc', 'reviews-v1-aaaaa', 10), edge('batch-ddddd', 'reviews-v1-aaaaa', 0.5), edge('unknown', 'reviews-v2-bbbbb', 2), edge('web-ccccc', 'batch-ddddd', 1)];
const ctx = { workloads, services, edges };

test('MeshTLS STRICT names the selected workloads without an identity and the identity-less callers seen', () => {
  assert.deepEqual(lockoutWarnings(policy('MeshTLS', { mode: 'STRICT', selector: { app: 'reviews' } }), ctx), [
    'STRICT locks out 1 workload(s) that have no mesh identity, so their sidecars cannot accept mutual TLS and every call to them will fail: shop/reviews-v2-bbbbb; restart them with a join token (TRELLIS_JOIN_TOKEN) first',
    'STRICT refuses callers without a mesh identity that called these workloads in the last 15m: shop/batch-ddddd (0.50 rps), callers outside the mesh (2.00 rps)',
  ]);
  assert.deepEqual(lockoutWarnings(policy('MeshTLS', { mode: 'PERMISSIVE' }), ctx), []);
  assert.equal(lockoutWarnings(policy('MeshTLS', { mode: 'STRICT' }, 'trellis-system'), ctx).length, 2, 'the mesh root selects every namespace');
});

test('AuthorizationPolicy ALLOW names the callers seen that no rule admits', () => {
  const allowWeb = policy('AuthorizationPolicy', { targetRef: { kind: 'Service', name: 'reviews' }, rules: [{ from: [{ source: { principals: ['spiffe://cluster.local/ns/shop/sa/web'] } }] }] });
  assert.deepEqual(lockoutWarnings(allowWeb, ctx), ['no rule admits these callers seen in the last 15m, which will be refused (403): shop/batch-ddddd (no mesh identity) (0.50 rps), callers outside the mesh (2.00 rps)']);
  const byNs = policy('AuthorizationPolicy', { selector: { app: 'reviews' }, rules: [{ from: [{ source: { namespaces: ['shop'] } }] }] });
  assert.match(lockoutWarnings(byNs, ctx)[0]!, /shop\/batch-ddddd \(no mesh identity\)/);
  assert.deepEqual(lockoutWarnings(policy('AuthorizationPolicy', { selector: { app: 'reviews' }, rules: [{}] }), ctx), [], 'a rule without from admits everyone');
  assert.match(lockoutWarnings(policy('AuthorizationPolicy', { selector: { app: 'reviews' } }), ctx)[0]!, /shop\/web-ccccc \(10 rps\)/, 'ALLOW with no rules denies all');
  assert.deepEqual(lockoutWarnings(policy('AuthorizationPolicy', { action: 'DENY', selector: { app: 'reviews' } }), ctx), []);
});
