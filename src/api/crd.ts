// CustomResourceDefinitions generated from the kind registry, for Kubernetes
// mode. Structural-schema rules: every node typed, `additionalProperties:
// false` dropped (the API server prunes unknown fields and
// `kubectl --validate=strict` rejects them), a numeric exclusiveMinimum/
// exclusiveMaximum rewritten as OpenAPI v3.0's boolean form, IntOrString kept as
// `x-kubernetes-int-or-string`. Gateway API kinds are normally installed from
// the upstream CRDs; `trellisCrds()` gives ours only.
import { KINDS, type KindDef } from './kinds.ts';
import { TRELLIS_GROUP } from './mesh.ts';

function structural(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(structural);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'additionalProperties' && v === false) continue;
    // JSON Schema's numeric exclusiveMinimum/Maximum is OpenAPI v3.0's boolean beside minimum/maximum.
    if ((k === 'exclusiveMinimum' || k === 'exclusiveMaximum') && typeof v === 'number') {
      out[k === 'exclusiveMinimum' ? 'minimum' : 'maximum'] = v;
      out[k] = true;
      continue;
    }
    out[k] = structural(v);
  }
  return out;
}

export function crdFor(def: KindDef): Record<string, unknown> {
  const singular = def.kind.toLowerCase();
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${def.plural}.${def.group}` },
    spec: {
      group: def.group,
      scope: 'Namespaced',
      names: { kind: def.kind, listKind: `${def.kind}List`, plural: def.plural, singular, shortNames: def.shortNames.filter((s) => s !== singular) },
      versions: [{
        name: def.version,
        served: true,
        storage: true,
        subresources: { status: {} },
        additionalPrinterColumns: [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }],
        schema: {
          openAPIV3Schema: {
            type: 'object',
            required: ['spec'],
            properties: {
              apiVersion: { type: 'string' },
              kind: { type: 'string' },
              metadata: { type: 'object' },
              spec: structural(JSON.parse(JSON.stringify(def.specSchema))),
              status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
            },
          },
        },
      }],
    },
  };
}

export function trellisCrds(): Record<string, unknown>[] {
  return KINDS.filter((k) => k.group === TRELLIS_GROUP).map(crdFor);
}
