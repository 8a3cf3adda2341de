// `-f FILE|DIR|-`: read YAML/JSON manifests, split into resources, and
// validate each locally so errors name the file, the line and the field
// before anything is sent.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseYamlDocuments } from '../api/yaml-documents.ts';
import { validateResource } from '../api/validate.ts';
import { isPlainObject, type PathSegment } from '../api/schema-check.ts';
import type { Resource } from '../api/types.ts';

export interface Manifest {
  /** `file.yaml` (or `<stdin>`). */
  source: string;
  /** The object as written (what is sent to the server). */
  value: unknown;
  /** The validated object (defaults applied). */
  resource: Resource;
}

export type LoadResult = { ok: true; manifests: Manifest[] } | { ok: false; errors: string[] };

const MANIFEST_EXT = /\.(ya?ml|json)$/i;

function readStdin(): string {
  return readFileSync(0, 'utf8');
}

/** Expand each -f argument into (source, text) pairs: directories give their *.yaml|*.yml|*.json files, sorted. */
function readSources(args: string[]): { ok: true; files: { source: string; text: string }[] } | { ok: false; error: string } {
  const files: { source: string; text: string }[] = [];
  for (const arg of args) {
    if (arg === '-') {
      files.push({ source: '<stdin>', text: readStdin() });
      continue;
    }
    let st;
    try {
      st = statSync(arg);
    } catch {
      return { ok: false, error: `error: the path "${arg}" does not exist` };
    }
    if (st.isDirectory()) {
      const names = readdirSync(arg).filter((n) => MANIFEST_EXT.test(n)).sort();
      if (names.length === 0) return { ok: false, error: `error: no .yaml, .yml or .json files in directory "${arg}"` };
      for (const n of names) files.push({ source: path.join(arg, n), text: readFileSync(path.join(arg, n), 'utf8') });
    } else {
      files.push({ source: arg, text: readFileSync(arg, 'utf8') });
    }
  }
  return { ok: true, files };
}

export function loadManifests(args: string[]): LoadResult {
  const read = readSources(args);
  if (!read.ok) return { ok: false, errors: [read.error] };
  const manifests: Manifest[] = [];
  const errors: string[] = [];
  for (const { source, text } of read.files) {
    const parsed = parseYamlDocuments(text, source);
    if (!parsed.ok) {
      errors.push(parsed.error);
      continue;
    }
    for (const doc of parsed.documents) {
      // `kind: List` documents are flattened; their items keep their lines.
      const entries: { value: unknown; lineOf(s: readonly PathSegment[]): number | undefined }[] =
        isPlainObject(doc.value) && doc.value.kind === 'List' && Array.isArray(doc.value.items)
          ? doc.value.items.map((value, i) => ({ value, lineOf: (s: readonly PathSegment[]) => doc.lineOf(['items', i, ...s]) }))
          : [{ value: doc.value, lineOf: doc.lineOf }];
      for (const e of entries) {
        const v = validateResource(e.value, { source, lineOf: e.lineOf });
        if (v.ok) manifests.push({ source, value: e.value, resource: v.resource });
        else errors.push(...v.errors.map((x) => x.text));
      }
    }
  }
  if (errors.length > 0) return { ok: false, errors };
  if (manifests.length === 0) return { ok: false, errors: ['error: no objects passed to apply'] };
  return { ok: true, manifests };
}
