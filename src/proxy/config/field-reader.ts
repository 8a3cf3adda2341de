// Strict reading of one proto3-JSON message. Field names are accepted in
// lowerCamelCase or snake_case (as proto3 JSON parsers do) and reported in
// lowerCamelCase; `null` means "not set". Every field must be read, declared
// ignored, or it is reported as unknown (with a "did you mean" hint), so a
// misspelt field fails loudly instead of silently doing nothing.
import { parseDuration } from './duration.ts';
import { type Issues, joinPath } from './field-error.ts';
import { closestName, typoLimit } from '../../lib/did-you-mean.ts';

export function snakeToCamel(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** Field names to lowerCamelCase, recursively (keys starting with "@" kept):
 * for sub-messages kept verbatim for later layers. */
export function camelizeDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(camelizeDeep);
  if (!isPlainObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k.startsWith('@') ? k : snakeToCamel(k)] = camelizeDeep(x);
  return out;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface ListItem {
  readonly value: unknown;
  readonly path: string;
  readonly index: number;
}

export class FieldReader {
  readonly path: string;
  readonly issues: Issues;
  private readonly fields = new Map<string, unknown>();
  /** Keys as written in the input (for errors about duplicates). */
  private readonly asked = new Set<string>();
  private readonly used = new Set<string>();

  private constructor(record: Record<string, unknown>, path: string, issues: Issues) {
    this.path = path;
    this.issues = issues;
    for (const [raw, value] of Object.entries(record)) {
      // proto3 JSON: null means "not set".
      if (value === null || value === undefined) continue;
      const key = raw.startsWith('@') ? raw : snakeToCamel(raw);
      if (this.fields.has(key)) {
        issues.error(joinPath(path, key), 'set twice (snake_case and camelCase spellings of the same field)');
        continue;
      }
      this.fields.set(key, value);
    }
  }

  /** A reader over `value`, or an error "must be an object" and undefined. */
  static of(value: unknown, path: string, issues: Issues): FieldReader | undefined {
    if (!isPlainObject(value)) {
      issues.error(path, `must be an object (got ${describe(value)})`);
      return undefined;
    }
    return new FieldReader(value, path, issues);
  }

  at(key: string): string {
    return joinPath(this.path, key);
  }

  error(key: string, message: string): void {
    this.issues.error(this.at(key), message);
  }

  warn(key: string, message: string): void {
    this.issues.warn(this.at(key), message);
  }

  /** True when the field is present and not null (does not consume it). */
  has(key: string): boolean {
    this.asked.add(key);
    const v = this.fields.get(key);
    return v !== undefined && v !== null;
  }

  /** The raw value (undefined when absent or null), marking it read. */
  raw(key: string): unknown {
    this.asked.add(key);
    if (!this.fields.has(key)) return undefined;
    this.used.add(key);
    const v = this.fields.get(key);
    return v === null ? undefined : v;
  }

  /** Accept and ignore these fields (documented as ignored). */
  ignore(...keys: string[]): void {
    for (const k of keys) {
      this.asked.add(k);
      if (this.fields.has(k)) this.used.add(k);
    }
  }

  str(key: string, opts: { required?: boolean; nonEmpty?: boolean } = {}): string | undefined {
    const v = this.raw(key);
    if (v === undefined) {
      if (opts.required) this.error(key, 'required');
      return undefined;
    }
    if (typeof v !== 'string') {
      this.error(key, `must be a string (got ${describe(v)})`);
      return undefined;
    }
    if ((opts.required || opts.nonEmpty) && v === '') {
      this.error(key, 'must not be empty');
      return undefined;
    }
    return v;
  }

  /** The value of a scalar field; a wrapper written as `{value: x}` (as some
   * protobuf decoders emit google.protobuf.*Value) is unwrapped. */
  private scalar(key: string): unknown {
    const v = this.raw(key);
    if (isPlainObject(v)) {
      const keys = Object.keys(v);
      if (keys.length === 1 && keys[0] === 'value') return v.value ?? undefined;
    }
    return v;
  }

  bool(key: string): boolean | undefined {
    const v = this.scalar(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') {
      this.error(key, `must be true or false (got ${describe(v)})`);
      return undefined;
    }
    return v;
  }

  /** uint32/uint64 (and their wrappers): a non-negative integer, or a decimal string. */
  uint(key: string, opts: { required?: boolean; min?: number; max?: number } = {}): number | undefined {
    const v = this.scalar(key);
    if (v === undefined) {
      if (opts.required) this.error(key, 'required');
      return undefined;
    }
    const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) {
      this.error(key, `must be a non-negative integer (got ${describe(v)})`);
      return undefined;
    }
    if (n < 0) {
      this.error(key, `must not be negative (got ${n})`);
      return undefined;
    }
    const min = opts.min ?? 0;
    const max = opts.max ?? 0xffff_ffff;
    if (n < min || n > max) {
      this.error(key, `must be between ${min} and ${max} (got ${n})`);
      return undefined;
    }
    return n;
  }

  /** A google.protobuf.Duration, in milliseconds. */
  duration(key: string): number | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    const d = parseDuration(v);
    if (!d.ok) {
      this.error(key, d.message);
      return undefined;
    }
    return d.ms;
  }

  /** A proto enum given by name (or its number); returns the mapped value. */
  enumOf<T>(key: string, names: Readonly<Record<string, T>>, numbers: readonly string[] = []): T | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    const name = typeof v === 'number' ? numbers[v] : v;
    if (typeof name === 'string' && Object.hasOwn(names, name)) return names[name];
    this.error(key, `must be one of ${Object.keys(names).join(', ')} (got ${describe(v)})`);
    return undefined;
  }

  obj(key: string, opts: { required?: boolean } = {}): FieldReader | undefined {
    const v = this.raw(key);
    if (v === undefined) {
      if (opts.required) this.error(key, 'required');
      return undefined;
    }
    return FieldReader.of(v, this.at(key), this.issues);
  }

  /** Any JSON object (google.protobuf.Struct), validated as an object only. */
  struct(key: string): Record<string, unknown> | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (!isPlainObject(v)) {
      this.error(key, `must be an object (got ${describe(v)})`);
      return undefined;
    }
    return v;
  }

  list(key: string, opts: { required?: boolean; nonEmpty?: boolean } = {}): ListItem[] {
    const v = this.raw(key);
    if (v === undefined) {
      if (opts.required) this.error(key, 'required');
      return [];
    }
    if (!Array.isArray(v)) {
      this.error(key, `must be a list (got ${describe(v)})`);
      return [];
    }
    if (opts.nonEmpty && v.length === 0) this.error(key, 'must not be empty');
    return v.map((value, index) => ({ value, index, path: `${this.at(key)}[${index}]` }));
  }

  objList(key: string, opts: { required?: boolean; nonEmpty?: boolean } = {}): FieldReader[] {
    const out: FieldReader[] = [];
    for (const item of this.list(key, opts)) {
      const r = FieldReader.of(item.value, item.path, this.issues);
      if (r) out.push(r);
    }
    return out;
  }

  strList(key: string, opts: { required?: boolean; nonEmpty?: boolean } = {}): string[] {
    const out: string[] = [];
    for (const item of this.list(key, opts)) {
      if (typeof item.value === 'string') out.push(item.value);
      else this.issues.error(item.path, `must be a string (got ${describe(item.value)})`);
    }
    return out;
  }

  /** For a proto `oneof`: the one member that is set. Two set is an error;
   * none set is an error when required. */
  oneOf(keys: readonly string[], opts: { required?: boolean; name?: string } = {}): string | undefined {
    const set = keys.filter((k) => this.has(k));
    if (set.length > 1) {
      this.error(set[1]!, `cannot be combined with ${set[0]} (only one of ${keys.join(', ')} may be set)`);
      return undefined;
    }
    if (set.length === 0) {
      if (opts.required) this.issues.error(this.path, `one of ${keys.join(', ')} is required`);
      return undefined;
    }
    return set[0];
  }

  /** Report every field that was neither read nor declared ignored. */
  done(): void {
    for (const key of this.fields.keys()) {
      if (this.used.has(key)) continue;
      const hint = suggest(key, this.asked);
      this.error(key, `unknown field${hint ? ` (did you mean "${hint}"?)` : ''}; not in the supported subset (docs/proxy-config.md)`);
    }
  }
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}

function suggest(key: string, known: ReadonlySet<string>): string | undefined {
  return closestName(key, known, typoLimit(key));
}
