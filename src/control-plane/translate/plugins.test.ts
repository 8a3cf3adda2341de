// Plugin resources -> Envoy Wasm HTTP filters: validation names the field,
// placement by phase among jwt_authn / rbac and by order, the filter's shape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { validateResource } from '../../api/validate.ts';
import { placePlugins, wasmFilter } from './plugins.ts';
import type { PluginResource } from './model.ts';
import { readWasmFilter } from '../../proxy/config/envoy-wasm.ts';
import { FieldReader } from '../../proxy/config/field-reader.ts';
import { Issues } from '../../proxy/config/field-error.ts';

const plugin = (name: string, spec: Partial<PluginResource['spec']>): PluginResource => ({
  kind: 'Plugin', metadata: { name, namespace: 'default' }, spec: { type: 'typescript', source: { inline: 'definePlugin(() => ({}))' }, ...spec },
});

function errorsOf(obj: unknown): string[] {
  const r = validateResource(obj);
  return r.ok ? [] : r.errors.map((e) => `${e.path}: ${e.message}`);
}

test('the example Plugins validate; mistakes name the field', () => {
  for (const f of ['header-and-block.yaml', 'wasm-guard-by-url.yaml']) {
    for (const d of parseAllDocuments(readFileSync(`examples/plugins/resources/${f}`, 'utf8')).map((x) => x.toJS())) assert.deepEqual(errorsOf(d), [], f);
  }
  const base = { apiVersion: 'trellis.dev/v1alpha1', kind: 'Plugin', metadata: { name: 'p', namespace: 'default' } };
  const bad: [object, RegExp][] = [
    [{ type: 'typescript', source: {} }, /^spec\.source: must give exactly one of inline, file or url \(got none\)/],
    [{ type: 'typescript', source: { inline: 'x', file: '/x' } }, /^spec\.source: must give exactly one/],
    [{ type: 'wasm', source: { url: 'https://x/y.wasm' } }, /^spec\.source\.sha256: is required with url/],
    [{ type: 'wasm', source: { url: 'https://x/y.wasm', sha256: 'ABC' } }, /^spec\.source\.sha256: must be 64 lower-case hex digits/],
    [{ type: 'typescript', source: { file: 'relative.ts' } }, /^spec\.source\.file: must be an absolute path/],
    [{ type: 'wasm', source: { inline: 'not base64!' } }, /^spec\.source\.inline: must be the module in base64/],
    [{ type: 'lua', source: { inline: 'x' } }, /^spec\.type/],
    [{ type: 'typescript', phase: 'early', source: { inline: 'x' } }, /^spec\.phase/],
    [{ type: 'typescript', source: { inline: 'x' }, hookTimeout: '2m' }, /^spec\.hookTimeout: must be more than 0 and at most 60s/],
    [{ type: 'typescript', source: { inline: 'x' }, priority: 1 }, /^spec\.priority|spec: .*priority/],
    [{ type: 'typescript', source: { inline: 'x' }, bodies: true }, /^spec\.bodies: only applies to type wasm/],
  ];
  for (const [spec, want] of bad) {
    const errs = errorsOf({ ...base, spec });
    assert.ok(errs.some((e) => want.test(e)), `${JSON.stringify(spec)} -> ${JSON.stringify(errs)}`);
  }
});

test('filters are placed by phase among jwt_authn and rbac, by order within a phase, the router last', () => {
  const existing = [{ name: 'envoy.filters.http.jwt_authn' }, { name: 'envoy.filters.http.rbac' }, { name: 'envoy.filters.http.rbac' }, { name: 'envoy.filters.http.router' }];
  const ps = [
    plugin('last', {}),
    plugin('authz-b', { phase: 'authz', order: 2 }),
    plugin('authz-a', { phase: 'authz', order: 1 }),
    plugin('authn', { phase: 'authn' }),
    plugin('stats', { phase: 'stats' }),
  ];
  // pluginsFor() sorts; here the input is given sorted the same way.
  const sorted = [ps[3]!, ps[2]!, ps[1]!, ps[4]!, ps[0]!];
  const out = placePlugins(existing, sorted) as { name: string; typedConfig?: { config?: { name: string } } }[];
  assert.deepEqual(out.map((f) => f.typedConfig?.config?.name ?? f.name), [
    'default/authn', 'envoy.filters.http.jwt_authn', 'default/authz-a', 'default/authz-b', 'envoy.filters.http.rbac', 'envoy.filters.http.rbac',
    'default/stats', 'default/last', 'envoy.filters.http.router',
  ]);
  // Without authn/authz filters every phase lands before the router, in phase order.
  const plain = placePlugins([{ name: 'envoy.filters.http.router' }], sorted) as { name: string; typedConfig?: { config?: { name: string } } }[];
  assert.deepEqual(plain.map((f) => f.typedConfig?.config?.name ?? f.name), ['default/authn', 'default/authz-a', 'default/authz-b', 'default/stats', 'default/last', 'envoy.filters.http.router']);
});

test('the Wasm filter the control plane writes is what the proxy reads back', () => {
  const sha = 'a'.repeat(64);
  const f = wasmFilter(plugin('guard', { type: 'wasm', source: { url: 'https://p.example/g.wasm', sha256: sha }, failurePolicy: 'open', config: 'mallory', hookTimeout: '250ms', rootId: 'guard', bodies: true }));
  const issues = new Issues();
  const r = FieldReader.of(f.typedConfig, 'f', issues)!;
  r.raw('@type');
  const spec = readWasmFilter(r, f.name);
  assert.deepEqual(issues.errors, []);
  assert.deepEqual({ ...spec }, {
    name: 'default/guard', runtime: 'wasm', code: { kind: 'remote', uri: 'https://p.example/g.wasm', sha256: sha }, rootId: 'guard', vmId: 'default/guard',
    configuration: 'mallory', failOpen: true, hookTimeoutMs: 250, maxBodyBytes: 1024 * 1024, maxMemoryMb: 64, bodies: true,
  });
});
