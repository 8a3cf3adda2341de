// validateResource: the one gate every resource passes (API server, CLI,
// Kubernetes controller). Structural schema (unknown fields, types, bounds,
// defaults) then Kubernetes metadata rules then the kind's cross-field rules.
// Every message reads `[file: ]Kind ns/name: path: reason`.
import { checkSchema, formatPath, isPlainObject, type PathSegment, type SchemaIssue } from './schema-check.ts';
import { KINDS, kindDef, type KindDef } from './kinds.ts';
import { DNS1123_LABEL, DNS1123_SUBDOMAIN, DNS1035_LABEL, PATTERN_MESSAGES } from './schema-common.ts';
import { DEFAULT_NAMESPACE, type FieldError, type Resource } from './types.ts';

export type ValidateResult = { ok: true; resource: Resource } | { ok: false; errors: FieldError[] };

export interface ValidateOptions {
  /** Where the object came from (a file name); prefixes every message. */
  source?: string;
  /** Line of a field in the source, for `file.yaml:12: ...` prefixes. */
  lineOf?(segments: readonly PathSegment[]): number | undefined;
}

const TOP_LEVEL = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status']);
const METADATA_FIELDS = new Set(['name', 'namespace', 'labels', 'annotations', 'uid', 'resourceVersion', 'generation', 'creationTimestamp']);
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const SUBDOMAIN = new RegExp(DNS1123_SUBDOMAIN);
const MAX_ANNOTATIONS_BYTES = 256 * 1024;

/** Check a label or annotation key: `[prefix/]name`, prefix a DNS subdomain, name <= 63 chars. */
export function checkQualifiedName(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !SUBDOMAIN.test(prefix))) {
    return 'key prefix must be a lowercase DNS subdomain (e.g. example.com/)';
  }
  if (name.length === 0 || name.length > 63) return 'key name must be 1-63 characters';
  if (!LABEL_NAME.test(name)) return "key name must consist of letters, digits, '-', '_' or '.', starting and ending with a letter or digit";
  return undefined;
}

export function checkLabelValue(value: string): string | undefined {
  if (value.length > 63) return 'must be at most 63 characters';
  if (value !== '' && !LABEL_NAME.test(value)) return "must be empty or consist of letters, digits, '-', '_' or '.', starting and ending with a letter or digit";
  return undefined;
}

function checkMetadata(meta: unknown, def: KindDef, issues: SchemaIssue[]): Resource['metadata'] | undefined {
  const at = ['metadata'];
  const report = (segments: PathSegment[], message: string) => issues.push({ segments, message });
  if (!isPlainObject(meta)) {
    report(at, meta === undefined ? 'is required' : 'must be an object (a mapping of fields)');
    return undefined;
  }
  for (const key of Object.keys(meta)) if (!METADATA_FIELDS.has(key)) report([...at, key], 'unknown field');
  const name = meta.name;
  if (name === undefined || name === null || name === '') report([...at, 'name'], 'is required');
  else if (typeof name !== 'string') report([...at, 'name'], 'must be a string');
  else if (def.nameRule === 'dns1035-label') {
    if (name.length > 63) report([...at, 'name'], 'must be at most 63 characters');
    else if (!new RegExp(DNS1035_LABEL).test(name)) report([...at, 'name'], PATTERN_MESSAGES[DNS1035_LABEL] ?? 'invalid name');
  } else if (name.length > 253) report([...at, 'name'], 'must be at most 253 characters');
  else if (!SUBDOMAIN.test(name)) report([...at, 'name'], PATTERN_MESSAGES[DNS1123_SUBDOMAIN] ?? 'invalid name');

  const ns = meta.namespace ?? DEFAULT_NAMESPACE;
  if (typeof ns !== 'string') report([...at, 'namespace'], 'must be a string');
  else if (ns.length > 63) report([...at, 'namespace'], 'must be at most 63 characters');
  else if (!new RegExp(DNS1123_LABEL).test(ns)) report([...at, 'namespace'], PATTERN_MESSAGES[DNS1123_LABEL] ?? 'invalid namespace');

  for (const field of ['labels', 'annotations'] as const) {
    const m = meta[field];
    if (m === undefined || m === null) continue;
    if (!isPlainObject(m)) {
      report([...at, field], 'must be a mapping of string keys to string values');
      continue;
    }
    let bytes = 0;
    for (const [k, v] of Object.entries(m)) {
      const keyProblem = checkQualifiedName(k);
      if (keyProblem) report([...at, field, k], keyProblem);
      if (typeof v !== 'string') {
        report([...at, field, k], 'must be a string (quote numbers and booleans in YAML)');
        continue;
      }
      bytes += k.length + v.length;
      if (field === 'labels') {
        const valueProblem = checkLabelValue(v);
        if (valueProblem) report([...at, field, k], valueProblem);
      }
    }
    if (field === 'annotations' && bytes > MAX_ANNOTATIONS_BYTES) report([...at, field], `must total at most ${MAX_ANNOTATIONS_BYTES} bytes`);
  }
  if (meta.resourceVersion !== undefined && meta.resourceVersion !== null && !/^[0-9]+$/.test(String(meta.resourceVersion))) {
    report([...at, 'resourceVersion'], 'must be a decimal revision number');
  }
  const out: Resource['metadata'] = { name: String(name ?? ''), namespace: typeof ns === 'string' ? ns : DEFAULT_NAMESPACE };
  if (isPlainObject(meta.labels)) out.labels = meta.labels as Record<string, string>;
  if (isPlainObject(meta.annotations)) out.annotations = meta.annotations as Record<string, string>;
  if (meta.resourceVersion !== undefined && meta.resourceVersion !== null) out.resourceVersion = String(meta.resourceVersion);
  if (typeof meta.uid === 'string') out.uid = meta.uid;
  return out;
}

/** Describe who a message is about: `HTTPRoute default/reviews`. */
export function subject(obj: unknown): string {
  const o = isPlainObject(obj) ? obj : {};
  const kind = typeof o.kind === 'string' && o.kind !== '' ? o.kind : '<no kind>';
  const meta = isPlainObject(o.metadata) ? o.metadata : {};
  const ns = typeof meta.namespace === 'string' ? meta.namespace : DEFAULT_NAMESPACE;
  const name = typeof meta.name === 'string' && meta.name !== '' ? meta.name : '<no name>';
  return `${kind} ${ns}/${name}`;
}

export function validateResource(obj: unknown, opts: ValidateOptions = {}): ValidateResult {
  const issues: SchemaIssue[] = [];
  const result = validateInto(obj, issues);
  if (issues.length === 0 && result) return { ok: true, resource: result };
  const who = subject(obj);
  const errors = issues.map((issue): FieldError => {
    const path = formatPath(issue.segments);
    const line = opts.lineOf?.(issue.segments);
    const prefix = opts.source === undefined ? '' : line === undefined ? `${opts.source}: ` : `${opts.source}:${line}: `;
    return { path, message: issue.message, text: `${prefix}${who}: ${path === '' ? '' : `${path}: `}${issue.message}` };
  });
  return { ok: false, errors };
}

function validateInto(obj: unknown, issues: SchemaIssue[]): Resource | undefined {
  const report = (segments: PathSegment[], message: string) => issues.push({ segments, message });
  if (!isPlainObject(obj)) {
    report([], 'a resource must be an object with apiVersion, kind, metadata and spec');
    return undefined;
  }
  if (typeof obj.kind !== 'string' || obj.kind === '') {
    report(['kind'], 'is required');
    return undefined;
  }
  const def = kindDef(obj.kind);
  if (!def) {
    report(['kind'], `unsupported value ${JSON.stringify(obj.kind)}: must be one of ${KINDS.map((k) => k.kind).join(', ')}`);
    return undefined;
  }
  if (obj.apiVersion === undefined) report(['apiVersion'], `is required (${def.apiVersion})`);
  else if (obj.apiVersion !== def.apiVersion && !def.alsoServed?.includes(String(obj.apiVersion))) {
    report(['apiVersion'], `unsupported value ${JSON.stringify(obj.apiVersion)} for ${def.kind}: must be ${def.apiVersion}`);
  }
  for (const key of Object.keys(obj)) if (!TOP_LEVEL.has(key)) report([key], 'unknown field');
  const metadata = checkMetadata(obj.metadata, def, issues);
  if (obj.spec === undefined || obj.spec === null) {
    report(['spec'], 'is required');
    return undefined;
  }
  const before = issues.length;
  const { value: spec, issues: specIssues } = checkSchema(def.specSchema, obj.spec, ['spec']);
  issues.push(...specIssues);
  // Cross-field rules assume a structurally valid spec.
  if (issues.length === before) def.check?.(spec as never, report);
  if (issues.length > 0 || !metadata) return undefined;
  return { apiVersion: def.apiVersion, kind: def.kind, metadata, spec };
}
