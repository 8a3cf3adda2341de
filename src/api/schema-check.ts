// A small JSON Schema interpreter for the subset our TypeBox schemas use
// (object/properties/required/additionalProperties, arrays with item bounds,
// strings with length and pattern, integers with bounds, string enums,
// int-or-string). It exists for two reasons a generic validator does not
// serve: operator-facing messages (`must be >= 0`, `unknown field`, the
// pattern said in words) and defaults applied in the same walk.
import { PATTERN_MESSAGES } from './schema-common.ts';
import { closestName } from '../lib/did-you-mean.ts';

export type PathSegment = string | number;
export interface SchemaIssue {
  segments: PathSegment[];
  message: string;
}

type Json = Record<string, unknown>;

/** `["spec", "rules", 1, "weight"]` -> `spec.rules[1].weight`; odd keys (label keys) are quoted. */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(s)) out += out === '' ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

export function isPlainObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Check `value` against `schema`; returns a copy with defaults filled in, and every issue found. */
export function checkSchema(schema: unknown, value: unknown, segments: PathSegment[] = []): { value: unknown; issues: SchemaIssue[] } {
  const issues: SchemaIssue[] = [];
  const out = walk(schema as Json, value, segments, issues);
  return { value: out, issues };
}

function walk(schema: Json, value: unknown, at: PathSegment[], issues: SchemaIssue[]): unknown {
  const fail = (message: string): unknown => {
    issues.push({ segments: at, message });
    return value;
  };
  if (Array.isArray(schema.anyOf)) {
    for (const branch of schema.anyOf as Json[]) {
      const sub: SchemaIssue[] = [];
      const v = walk(branch, value, at, sub);
      if (sub.length === 0) return v;
    }
    if (schema['x-kubernetes-int-or-string']) return fail('must be an integer or a string');
    const first: SchemaIssue[] = [];
    walk((schema.anyOf as Json[])[0] ?? {}, value, at, first);
    issues.push(...first);
    return value;
  }
  switch (schema.type) {
    case 'object':
      return walkObject(schema, value, at, issues);
    case 'array': {
      if (!Array.isArray(value)) return fail('must be a list');
      const min = schema.minItems as number | undefined;
      const max = schema.maxItems as number | undefined;
      if (min !== undefined && value.length < min) fail(min === 1 ? 'must have at least 1 item' : `must have at least ${min} items`);
      if (max !== undefined && value.length > max) fail(`must have at most ${max} items`);
      const items = (schema.items ?? {}) as Json;
      return value.map((item, i) => walk(items, item, [...at, i], issues));
    }
    case 'string': {
      if (typeof value !== 'string') return fail('must be a string');
      if (Array.isArray(schema.enum) && !schema.enum.includes(value)) {
        return fail(`unsupported value ${JSON.stringify(value)}: must be one of ${(schema.enum as string[]).join(', ')}`);
      }
      const min = schema.minLength as number | undefined;
      const max = schema.maxLength as number | undefined;
      if (min !== undefined && value.length < min) return fail(min === 1 ? 'must not be empty' : `must be at least ${min} characters`);
      if (max !== undefined && value.length > max) return fail(`must be at most ${max} characters`);
      if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern).test(value)) {
        return fail(PATTERN_MESSAGES[schema.pattern] ?? `must match the pattern ${schema.pattern}`);
      }
      return value;
    }
    case 'integer':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return fail(schema.type === 'integer' ? 'must be an integer' : 'must be a number');
      if (schema.type === 'integer' && !Number.isInteger(value)) return fail('must be an integer');
      if (Array.isArray(schema.enum) && !schema.enum.includes(value)) {
        return fail(`unsupported value ${value}: must be one of ${(schema.enum as number[]).join(', ')}`);
      }
      if (typeof schema.minimum === 'number' && value < schema.minimum) return fail(`must be >= ${schema.minimum}`);
      if (typeof schema.maximum === 'number' && value > schema.maximum) return fail(`must be <= ${schema.maximum}`);
      return value;
    }
    case 'boolean':
      return typeof value === 'boolean' ? value : fail('must be true or false');
    default:
      return value; // no type: anything goes (free-form)
  }
}

function walkObject(schema: Json, value: unknown, at: PathSegment[], issues: SchemaIssue[]): unknown {
  if (!isPlainObject(value)) {
    issues.push({ segments: at, message: 'must be an object (a mapping of fields)' });
    return value;
  }
  const props = (schema.properties ?? {}) as Record<string, Json>;
  const required = new Set((schema.required ?? []) as string[]);
  const extra = schema.additionalProperties;
  const out: Json = {};
  for (const [key, sub] of Object.entries(props)) {
    const v = value[key];
    if (v === undefined || v === null) {
      if (required.has(key)) issues.push({ segments: [...at, key], message: 'is required' });
      else if (sub.default !== undefined) out[key] = structuredClone(sub.default);
      continue;
    }
    out[key] = walk(sub, v, [...at, key], issues);
  }
  for (const [key, v] of Object.entries(value)) {
    if (key in props) continue;
    if (extra === false || extra === undefined && schema.properties !== undefined) {
      const guess = closest(key, Object.keys(props));
      issues.push({ segments: [...at, key], message: guess ? `unknown field (did you mean "${guess}"?)` : 'unknown field' });
      continue;
    }
    if (v === null || v === undefined) continue;
    out[key] = isPlainObject(extra) ? walk(extra, v, [...at, key], issues) : v;
  }
  return out;
}

/** The known name within edit distance 2 of `key`, if any (for "did you mean"). */
function closest(key: string, known: string[]): string | undefined {
  return closestName(key, known, 2);
}
