// Every annotated resource file under examples/ is valid for the control
// plane (dry-run apply), and every file marked "STATUS: PROPOSED SHAPE" is
// still rejected: when its kind lands, this test says to update the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseYamlDocuments } from '../../src/api/yaml-documents.ts';
import { createResourceService } from '../../src/control-plane/resources/service.ts';
import { openMemoryStore } from '../../src/control-plane/store/memory.ts';

const EXAMPLES = path.resolve(import.meta.dirname, '..', '..', 'examples');

/** Resource files (proxy bootstraps are Envoy config, not resources). */
function resourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir).sort()) {
    const p = path.join(dir, f);
    if (statSync(p).isDirectory()) {
      if (f !== 'sidecar-pair') out.push(...resourceFiles(p));
    } else if (f.endsWith('.yaml') && f !== 'proxy-bootstrap.yaml') out.push(p);
  }
  return out;
}

test('examples/: implemented resources validate, proposed ones are marked and rejected', async (t) => {
  const store = openMemoryStore();
  t.after(() => store.close());
  const resources = createResourceService(store);
  const files = resourceFiles(EXAMPLES);
  assert.ok(files.length >= 15, `expected the feature examples, found ${files.length}`);
  for (const file of files) {
    const rel = path.relative(EXAMPLES, file);
    const text = readFileSync(file, 'utf8');
    assert.match(text, /^# /, `${rel}: starts with a comment saying what it shows`);
    const proposed = text.includes('STATUS: PROPOSED SHAPE');
    const parsed = parseYamlDocuments(text, rel);
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
    for (const doc of parsed.documents) {
      const r = await resources.apply(doc.value, { dryRun: true });
      if (proposed) assert.equal(r.ok, false, `${rel}: marked proposed, but its kind is accepted now: update the file`);
      else assert.ok(r.ok, `${rel}:${doc.line}: ${r.ok ? '' : r.message}`);
    }
  }
});
