import { test } from 'node:test';
import assert from 'node:assert/strict';
import { translate } from './translate.ts';
import type { MeshState, PathNormalizationResource, ProxyNode, WorkloadInstance } from './model.ts';
import { pathNormalizationFor } from './path-normalization.ts';
import { createSnapshot, snapshotResources } from '../../xds/snapshot.ts';
import { TypeUrl } from '../../xds/protos.ts';
import { unpackAny } from '../../xds/codec.ts';
import { buildProxyConfig } from '../../proxy/config/envoy.ts';
import { validateResource } from '../../api/validate.ts';
import type { PathNormalizationSpec } from '../../api/path-normalization.ts';

const pn = (name: string, namespace: string, spec: PathNormalizationSpec): PathNormalizationResource => ({ kind: 'PathNormalization', metadata: { name, namespace }, spec });
const w = (name: string, labels: Record<string, string>): WorkloadInstance => ({ name, namespace: 'shop', address: '127.0.0.1', labels, ports: [{ port: 9080, proxyPort: 15100 }] });
const base: MeshState = {
  services: [{ metadata: { name: 'reviews', namespace: 'shop' }, spec: { selector: { app: 'reviews' }, ports: [{ port: 9080, protocol: 'http' }] } }],
  httpRoutes: [], grpcRoutes: [], tcpRoutes: [],
  workloads: [w('reviews-1', { app: 'reviews' }), w('files-1', { app: 'files' })],
  vips: new Map(),
};
const node = (workload: string): ProxyNode => ({ id: `shop/${workload}`, kind: 'sidecar', namespace: 'shop', workload });

/** The pathNormalization of every inbound HTTP listener, as the proxy reads it after the xDS encoding. */
function proxySees(state: MeshState, n: ProxyNode, direction: 'inbound' | 'outbound' = 'inbound'): unknown[] {
  const snap = createSnapshot(translate(state, n));
  assert.ok(snap.ok, JSON.stringify(!snap.ok && snap.errors));
  const decode = (url: string): unknown[] => [...snapshotResources(snap.snapshot, url as never).values()].map((r) => unpackAny(r.any));
  const built = buildProxyConfig({ version: 'v1', listeners: decode(TypeUrl.listener), routeConfigs: decode(TypeUrl.route), clusters: decode(TypeUrl.cluster), endpoints: decode(TypeUrl.endpoint) }, { references: 'error' });
  assert.ok(built.ok, JSON.stringify(!built.ok && built.errors));
  return built.config.listeners.filter((l) => l.direction === direction).flatMap((l) => l.filterChains.flatMap((c) => (c.http ? [c.http.pathNormalization] : [])));
}

test('without a PathNormalization every inbound HTTP listener gets the safe default, through the xDS encoding; outbound ones pass paths as written', () => {
  const seen = proxySees(base, node('reviews-1'));
  assert.ok(seen.length >= 1);
  for (const p of seen) assert.deepEqual(p, { normalize: true, mergeSlashes: true, escapedSlashes: 'reject' });
  const out = proxySees(base, node('reviews-1'), 'outbound');
  assert.ok(out.length >= 1);
  for (const p of out) assert.deepEqual(p, { normalize: false, mergeSlashes: false, escapedSlashes: 'keep' });
});

test('precedence selector > namespace > mesh root; omitted fields take the safe default', () => {
  const mesh = pn('mesh', 'trellis-system', { mergeSlashes: false });
  const files = pn('files', 'shop', { selector: { app: 'files' }, escapedSlashes: 'Keep' });
  const state = { ...base, pathNormalization: [mesh, files, pn('elsewhere', 'other', { normalize: false })] };
  assert.deepEqual(pathNormalizationFor(state, node('reviews-1')), { normalize: true, mergeSlashes: false, escapedSlashes: 'Reject' });
  assert.deepEqual(pathNormalizationFor(state, node('files-1')), { normalize: true, mergeSlashes: true, escapedSlashes: 'Keep' });
  for (const p of proxySees(state, node('files-1'))) assert.deepEqual(p, { normalize: true, mergeSlashes: true, escapedSlashes: 'keep' });
  const redirect = { ...base, pathNormalization: [pn('r', 'shop', { escapedSlashes: 'UnescapeAndRedirect', normalize: false })] };
  for (const p of proxySees(redirect, node('reviews-1'))) assert.deepEqual(p, { normalize: false, mergeSlashes: true, escapedSlashes: 'unescape-and-redirect' });
});

test('the kind is validated strictly, naming the field', () => {
  const bad = validateResource({ apiVersion: 'trellis.dev/v1alpha1', kind: 'PathNormalization', metadata: { name: 'x', namespace: 'trellis-system' }, spec: { escapedSlashes: 'Decode' } });
  assert.ok(!bad.ok);
  assert.match(JSON.stringify(bad), /spec\.escapedSlashes/);
  const ok = validateResource({ apiVersion: 'trellis.dev/v1alpha1', kind: 'PathNormalization', metadata: { name: 'x', namespace: 'trellis-system' }, spec: { mergeSlashes: false } });
  assert.ok(ok.ok, JSON.stringify(ok));
});
