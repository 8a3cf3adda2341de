import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KINDS } from './kinds.ts';
import { crdFor, trellisCrds } from './crd.ts';

/** Kubernetes structural-schema rules we can check without an API server. */
function problems(node: unknown, at: string, out: string[]): string[] {
  if (node === null || typeof node !== 'object') return out;
  const n = node as Record<string, unknown>;
  if (n.type === undefined && !n['x-kubernetes-int-or-string'] && !n['x-kubernetes-preserve-unknown-fields']) out.push(`${at}: no type`);
  if (n.additionalProperties === false) out.push(`${at}: additionalProperties: false`);
  if (n.properties !== undefined && n.additionalProperties !== undefined) out.push(`${at}: properties and additionalProperties together`);
  if (n.anyOf !== undefined && !n['x-kubernetes-int-or-string']) out.push(`${at}: anyOf`);
  for (const [k, v] of Object.entries((n.properties ?? {}) as Record<string, unknown>)) problems(v, `${at}.${k}`, out);
  if (n.items) problems(n.items, `${at}[]`, out);
  if (n.additionalProperties && typeof n.additionalProperties === 'object') problems(n.additionalProperties, `${at}{}`, out);
  return out;
}

test('every kind yields a structural CRD schema', () => {
  for (const def of KINDS) {
    const crd = crdFor(def) as { metadata: { name: string }; spec: { versions: { schema: { openAPIV3Schema: unknown } }[] } };
    assert.equal(crd.metadata.name, `${def.plural}.${def.group}`);
    assert.deepEqual(problems(crd.spec.versions[0]?.schema.openAPIV3Schema, def.kind, []), []);
  }
  const names = trellisCrds().map((c) => (c as { metadata: { name: string } }).metadata.name);
  assert.ok(names.includes('services.trellis.dev') && names.includes('workloads.trellis.dev'));
  assert.ok(!names.some((n) => n.endsWith('gateway.networking.k8s.io')));
});

test('the weight bound and default survive into the CRD', () => {
  const hr = KINDS.find((k) => k.kind === 'HTTPRoute');
  assert.ok(hr);
  const crd = JSON.parse(JSON.stringify(crdFor(hr)));
  const weight = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.rules.items.properties.backendRefs.items.properties.weight;
  assert.deepEqual(weight, { minimum: 0, maximum: 1_000_000, default: 1, type: 'integer' });
});

test('CRDs: exclusive bounds in OpenAPI v3.0 form (a boolean beside minimum/maximum), as the API server requires', () => {
  const walk = (n: unknown, path: string): string[] => {
    if (Array.isArray(n)) return n.flatMap((v, i) => walk(v, `${path}[${i}]`));
    if (n === null || typeof n !== 'object') return [];
    const o = n as Record<string, unknown>;
    const bad = ['exclusiveMinimum', 'exclusiveMaximum'].filter((k) => k in o && typeof o[k] !== 'boolean').map((k) => `${path}.${k}`);
    return [...bad, ...Object.entries(o).flatMap(([k, v]) => walk(v, `${path}.${k}`))];
  };
  assert.deepEqual(trellisCrds().flatMap((c) => walk(c, (c['metadata'] as { name: string }).name)), []);
  const rl = JSON.stringify(trellisCrds().find((c) => (c['metadata'] as { name: string }).name === 'ratelimitpolicies.trellis.dev'));
  assert.match(rl, /"requestsPerSecond":\{[^}]*"minimum":0,"exclusiveMinimum":true/);
});
