import { test } from 'node:test';
import assert from 'node:assert/strict';
import { translate } from './translate.ts';
import type { MeshState, ProxyNode, TelemetryResource, WorkloadInstance } from './model.ts';
import { accessLoggingFor, tracingFor } from './telemetry.ts';
import { createSnapshot, snapshotResources } from '../../xds/snapshot.ts';
import { TypeUrl } from '../../xds/protos.ts';
import { unpackAny } from '../../xds/codec.ts';
import { buildProxyConfig } from '../../proxy/config/envoy.ts';
import { validateResource } from '../../api/validate.ts';
import type { TelemetrySpec } from '../../api/telemetry.ts';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

const tel = (name: string, namespace: string, spec: TelemetrySpec): TelemetryResource => ({ kind: 'Telemetry', metadata: { name, namespace }, spec });
const w = (name: string, labels: Record<string, string>): WorkloadInstance => ({ name, namespace: 'shop', address: '127.0.0.1', labels, ports: [{ port: 9080, proxyPort: 15100 }] });
const base: MeshState = {
  services: [{ metadata: { name: 'reviews', namespace: 'shop' }, spec: { selector: { app: 'reviews' }, ports: [{ port: 9080, protocol: 'http' }] } }],
  httpRoutes: [], grpcRoutes: [], tcpRoutes: [],
  workloads: [w('reviews-1', { app: 'reviews' }), w('web-1', { app: 'web' })],
  vips: new Map(),
};
const node = (workload: string): ProxyNode => ({ id: `shop/${workload}`, kind: 'sidecar', namespace: 'shop', workload });

test('Telemetry precedence: selector > namespace > mesh root; disabled turns it off; other namespaces and node proxies get nothing', () => {
  const mesh = tel('mesh', 'trellis-system', { tracing: { collector: 'http://otel.obs:4318/v1/traces', samplingPercentage: 1 } });
  const ns = tel('ns', 'shop', { tracing: { collector: 'http://otel.shop:4318/v1/traces', samplingPercentage: 10 } });
  const off = tel('off', 'shop', { selector: { app: 'web' }, tracing: { disabled: true } });
  const metricsOnly = tel('a-no-tracing', 'shop', {});
  const other = tel('other', 'elsewhere', { tracing: { collector: 'http://x:4318/v1/traces' } });
  const at = (telemetry: TelemetryResource[], who: string) => tracingFor({ ...base, telemetry }, node(who))?.collector;
  assert.equal(at([], 'reviews-1'), undefined);
  assert.equal(at([mesh, other], 'reviews-1'), 'http://otel.obs:4318/v1/traces');
  assert.equal(at([mesh, ns, metricsOnly], 'reviews-1'), 'http://otel.shop:4318/v1/traces', 'a Telemetry without tracing does not hide the namespace one');
  assert.equal(at([mesh, ns, off], 'web-1'), undefined, 'disabled by selector');
  assert.equal(at([mesh, ns, off], 'reviews-1'), 'http://otel.shop:4318/v1/traces');
  assert.equal(tracingFor({ ...base, telemetry: [mesh] }, { id: 'n1', kind: 'node-proxy', namespace: 'shop' }), undefined);
});

test('translate: every HTTP listener of a selected sidecar carries HttpConnectionManager.tracing, encoded strictly and read back by the proxy', () => {
  const state: MeshState = { ...base, telemetry: [tel('ns', 'shop', { tracing: { collector: 'http://otel.shop:4318/v1/traces', samplingPercentage: 5 } })] };
  const out = translate(state, node('reviews-1'));
  const snap = createSnapshot(out);
  assert.ok(snap.ok, JSON.stringify(!snap.ok && snap.errors));
  const decode = (url: string): unknown[] => [...snapshotResources(snap.snapshot, url as never).values()].map((r) => unpackAny(r.any));
  const built = buildProxyConfig({ version: 'v1', listeners: decode(TypeUrl.listener), routeConfigs: decode(TypeUrl.route), clusters: decode(TypeUrl.cluster), endpoints: decode(TypeUrl.endpoint) }, { references: 'error' });
  assert.ok(built.ok, JSON.stringify(!built.ok && built.errors));
  const hcms = built.config.listeners.flatMap((l) => l.filterChains.flatMap((c) => (c.http ? [[l.name, c.http.tracing]] : [])));
  assert.ok(hcms.length >= 2, `inbound and outbound: ${JSON.stringify(hcms)}`);
  for (const [name, tracing] of hcms) assert.deepEqual(tracing, { collectorUrl: 'http://otel.shop:4318/v1/traces', samplingRate: 0.05 }, String(name));

  // Access logging resolved on its own: the mesh turns it on, web's selector turns it off; tracing unaffected.
  const logs: MeshState = { ...state, telemetry: [...state.telemetry!, tel('mesh-logs', 'trellis-system', { accessLogging: {} }), tel('web-quiet', 'shop', { selector: { app: 'web' }, accessLogging: { disabled: true } })] };
  assert.equal(accessLoggingFor(logs, node('reviews-1')), true);
  assert.equal(accessLoggingFor(logs, node('web-1')), false);
  assert.equal(tracingFor(logs, node('web-1'))?.collector, 'http://otel.shop:4318/v1/traces');
  const logged = createSnapshot(translate(logs, node('reviews-1')));
  assert.ok(logged.ok, JSON.stringify(!logged.ok && logged.errors));
  const decodeLogged = (url: string): unknown[] => [...snapshotResources(logged.snapshot, url as never).values()].map((r) => unpackAny(r.any));
  const parsed = buildProxyConfig({ version: 'v2', listeners: decodeLogged(TypeUrl.listener), routeConfigs: decodeLogged(TypeUrl.route), clusters: decodeLogged(TypeUrl.cluster), endpoints: decodeLogged(TypeUrl.endpoint) }, { references: 'error' });
  assert.ok(parsed.ok, JSON.stringify(!parsed.ok && parsed.errors));
  const https = parsed.config.listeners.flatMap((l) => l.filterChains.flatMap((c) => (c.http ? [c.http] : [])));
  assert.ok(https.length >= 2 && https.every((h) => h.accessLog === true && h.tracing !== undefined));

  // Not selected: no tracing at all.
  const none = translate({ ...state, telemetry: [tel('x', 'elsewhere', { tracing: { collector: 'http://x:4318/v1/traces' } })] }, node('reviews-1'));
  assert.doesNotMatch(JSON.stringify(none.listeners), /tracing/);
});

test('Telemetry validation names the field', () => {
  const errors = (spec: unknown): string[] => {
    const r = validateResource({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Telemetry', metadata: { name: 't', namespace: 'shop' }, spec });
    return r.ok ? [] : r.errors.map((e) => e.text);
  };
  assert.deepEqual(errors({ tracing: { collector: 'http://otel:4318/v1/traces', samplingPercentage: 2.5 } }), []);
  assert.deepEqual(errors({ tracing: { disabled: true } }), []);
  assert.deepEqual(errors({ tracing: { samplingPercentage: 5 } }), ['Telemetry shop/t: spec.tracing.collector: is required (an OTLP/HTTP endpoint such as http://otel-collector:4318/v1/traces), unless disabled']);
  assert.deepEqual(errors({ tracing: { collector: 'otel:4318' } }), ['Telemetry shop/t: spec.tracing.collector: must be an http(s) URL (got "otel:4318")']);
  assert.deepEqual(errors({ tracing: { collector: 'http://otel:4318', samplingPercentage: 101 } }), ['Telemetry shop/t: spec.tracing.samplingPercentage: must be <= 100']);
  assert.deepEqual(errors({ tracing: { collector: 'http://otel:4318', disabled: true } }), ['Telemetry shop/t: spec.tracing.collector: must be absent when tracing is disabled']);
  assert.deepEqual(errors({ tracing: { colector: 'http://otel:4318' } }).length, 1);
  const docs = parseAllDocuments(readFileSync(new URL('../../../examples/telemetry/tracing.yaml', import.meta.url), 'utf8')).map((d) => d.toJS() as unknown);
  assert.equal(docs.length, 3);
  for (const d of docs) assert.deepEqual(validateResource(d).ok, true, JSON.stringify(d));
});
