import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { validateResource } from './validate.ts';
import { resolveKind } from './kinds.ts';

test('MeshTLS: the example validates; bad modes, duplicate ports and an empty policy are refused with field paths', () => {
  const docs = parseAllDocuments(readFileSync('examples/security/mesh-tls.yaml', 'utf8')).map((d) => d.toJS()).filter((d) => d !== null);
  assert.equal(docs.length, 2);
  for (const d of docs) {
    const r = validateResource(d);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  }
  assert.equal(resolveKind('peerauthentication')?.kind, 'MeshTLS');
  const base = { apiVersion: 'trellis.dev/v1alpha1', kind: 'MeshTLS', metadata: { name: 'x', namespace: 'shop' } };
  const bad = validateResource({ ...base, spec: { mode: 'STRICTER' } });
  assert.ok(!bad.ok);
  assert.equal(bad.errors[0]!.path, 'spec.mode');
  const dup = validateResource({ ...base, spec: { portLevel: [{ port: 80, mode: 'STRICT' }, { port: 80, mode: 'DISABLE' }] } });
  assert.ok(!dup.ok);
  assert.equal(dup.errors[0]!.path, 'spec.portLevel[1].port');
  const empty = validateResource({ ...base, spec: {} });
  assert.ok(!empty.ok);
  assert.match(empty.errors[0]!.text, /spec\.mode: is required when portLevel is empty/);
});
