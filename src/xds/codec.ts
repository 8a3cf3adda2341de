// proto3-JSON <-> protobuf for xDS resources, strictly.
//
// protobufjs' `fromObject` silently drops keys it does not know, so a misspelt
// field in a route would vanish on the way to a proxy. This codec walks the
// JSON against the message descriptors itself: every key must be a field of
// the message (lowerCamelCase or the proto name), every value must have the
// field's JSON shape, at most one member of a oneof may be set, and nested
// `Any`s written as `{"@type": "type.googleapis.com/...", ...}` are checked
// against their own type. A violation throws XdsCodecError naming the path.
//
// Decoding produces proto3-JSON-shaped objects: lowerCamelCase keys, enums by
// name, 64-bit integers as numbers (strings past 2^53), durations as "1.500s",
// well-known wrappers unwrapped, Struct as plain JSON, nested Any with "@type".
import type protobuf from 'protobufjs';
import { TYPE_PREFIX, findType, typeForUrl } from './protos.ts';
import { closestName, typoLimit } from '../lib/did-you-mean.ts';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** google.protobuf.Any in wire form. */
export interface PackedAny {
  readonly type_url: string;
  readonly value: Uint8Array;
}

export type XdsCodecErrorCode = 'XDS_UNKNOWN_FIELD' | 'XDS_BAD_VALUE' | 'XDS_UNKNOWN_TYPE' | 'XDS_DECODE_FAILED';

export class XdsCodecError extends Error {
  readonly code: XdsCodecErrorCode;
  /** Where in the input, e.g. "filterChains[0].filters[0].typedConfig.rds". */
  readonly path: string;
  readonly reason: string;
  constructor(code: XdsCodecErrorCode, path: string, reason: string) {
    super(`${path === '' ? '(root)' : path}: ${reason}`);
    this.name = 'XdsCodecError';
    this.code = code;
    this.path = path;
    this.reason = reason;
  }
}

// ---------------------------------------------------------------- encoding

/** Encodes proto3-JSON `json` as message `typeName` and wraps it in an Any. Throws XdsCodecError. */
export function packAny(typeName: string, json: unknown, path = ''): PackedAny {
  const name = typeName.startsWith(TYPE_PREFIX) ? typeName.slice(TYPE_PREFIX.length) : typeName.replace(/^\./, '');
  return { type_url: TYPE_PREFIX + name, value: encodeMessage(name, json, path) };
}

/** Encodes proto3-JSON `json` as message `typeName` (fully qualified). Throws XdsCodecError. */
export function encodeMessage(typeName: string, json: unknown, path = ''): Uint8Array {
  const type = findType(typeName);
  if (type === undefined) throw new XdsCodecError('XDS_UNKNOWN_TYPE', path, `unknown message type ${typeName}`);
  return type.encode(messageFromJson(type, json, path)).finish();
}

type Wire = Record<string, unknown>;

const camel = (s: string): string => s.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

interface FieldIndex {
  byKey: Map<string, protobuf.Field>;
  names: string[];
}
const fieldIndexes = new WeakMap<protobuf.Type, FieldIndex>();

function fieldIndex(type: protobuf.Type): FieldIndex {
  let idx = fieldIndexes.get(type);
  if (idx === undefined) {
    const byKey = new Map<string, protobuf.Field>();
    for (const f of type.fieldsArray) {
      f.resolve();
      byKey.set(f.name, f);
      byKey.set(camel(f.name), f);
    }
    idx = { byKey, names: type.fieldsArray.map((f) => camel(f.name)) };
    fieldIndexes.set(type, idx);
  }
  return idx;
}

const join = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function shortName(type: protobuf.Type): string {
  return type.fullName.replace(/^\./, '');
}

function messageFromJson(type: protobuf.Type, json: unknown, path: string): Wire {
  const special = WKT_FROM_JSON[shortName(type)];
  if (special !== undefined) return special(json, path);
  if (!isPlainObject(json)) throw bad(path, `expected an object (${shortName(type)}), got ${describe(json)}`);
  const idx = fieldIndex(type);
  const out: Wire = {};
  const oneofSet = new Map<string, string>();
  for (const [key, value] of Object.entries(json)) {
    const p = join(path, key);
    const field = idx.byKey.get(key);
    if (field === undefined) {
      const hint = suggest(key, idx.names);
      throw new XdsCodecError(
        'XDS_UNKNOWN_FIELD',
        p,
        `unknown field "${key}" in ${shortName(type)}${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`,
      );
    }
    if (Object.hasOwn(out, field.name)) throw bad(p, `field ${camel(field.name)} is given twice (as "${camel(field.name)}" and "${field.name}")`);
    if (value === null && field.type !== 'google.protobuf.Value' && field.resolvedType?.fullName !== '.google.protobuf.Value') continue; // proto3-JSON: null means default
    const oneof = field.partOf;
    if (oneof !== null && !oneof.name.startsWith('_')) {
      const prev = oneofSet.get(oneof.name);
      if (prev !== undefined) throw bad(p, `"${key}" and "${prev}" are both set but belong to the same oneof "${camel(oneof.name)}"`);
      oneofSet.set(oneof.name, key);
    }
    out[field.name] = fieldFromJson(field, value, p);
  }
  return out;
}

function fieldFromJson(field: protobuf.Field, value: unknown, path: string): unknown {
  if (field.map) {
    if (!isPlainObject(value)) throw bad(path, `expected an object (map), got ${describe(value)}`);
    const m = field as unknown as protobuf.MapField;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const kp = `${path}[${JSON.stringify(k)}]`;
      if (m.keyType === 'bool' && k !== 'true' && k !== 'false') throw bad(kp, 'map key must be "true" or "false"');
      if (m.keyType !== 'string' && m.keyType !== 'bool' && !/^-?\d+$/.test(k)) throw bad(kp, `map key must be an integer (${m.keyType})`);
      out[k] = singleFromJson(field, v, kp);
    }
    return out;
  }
  if (field.repeated) {
    if (!Array.isArray(value)) throw bad(path, `expected an array, got ${describe(value)}`);
    return value.map((v, i) => singleFromJson(field, v, `${path}[${i}]`));
  }
  return singleFromJson(field, value, path);
}

function singleFromJson(field: protobuf.Field, value: unknown, path: string): unknown {
  const rt = field.resolvedType;
  if (rt !== null && 'fieldsArray' in rt) return messageFromJson(rt, value, path);
  if (rt !== null) {
    const en = rt as protobuf.Enum;
    if (typeof value === 'string') {
      const n = en.values[value];
      if (n === undefined) throw bad(path, `"${value}" is not a value of ${en.name} (${Object.keys(en.values).join(', ')})`);
      return n;
    }
    if (typeof value === 'number' && Number.isInteger(value)) return value;
    if (value === null) return 0;
    throw bad(path, `expected an enum name of ${en.name}, got ${describe(value)}`);
  }
  return scalarFromJson(field.type, value, path);
}

const INT32 = new Set(['int32', 'sint32', 'sfixed32']);
const UINT32 = new Set(['uint32', 'fixed32']);
const INT64 = new Set(['int64', 'sint64', 'sfixed64', 'uint64', 'fixed64']);

function scalarFromJson(kind: string, value: unknown, path: string): unknown {
  if (kind === 'string') {
    if (typeof value !== 'string') throw bad(path, `expected a string, got ${describe(value)}`);
    return value;
  }
  if (kind === 'bool') {
    if (typeof value !== 'boolean') throw bad(path, `expected true or false, got ${describe(value)}`);
    return value;
  }
  if (kind === 'bytes') {
    if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(value)) throw bad(path, `expected base64 text, got ${describe(value)}`);
    return new Uint8Array(Buffer.from(value, value.includes('-') || value.includes('_') ? 'base64url' : 'base64'));
  }
  if (kind === 'double' || kind === 'float') {
    if (typeof value === 'number') return value;
    if (value === 'NaN') return Number.NaN;
    if (value === 'Infinity') return Number.POSITIVE_INFINITY;
    if (value === '-Infinity') return Number.NEGATIVE_INFINITY;
    if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
    throw bad(path, `expected a number, got ${describe(value)}`);
  }
  if (INT32.has(kind) || UINT32.has(kind)) {
    const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n)) throw bad(path, `expected an integer (${kind}), got ${describe(value)}`);
    const [lo, hi] = UINT32.has(kind) ? [0, 0xffffffff] : [-0x80000000, 0x7fffffff];
    if (n < lo || n > hi) throw bad(path, `${n} is out of range for ${kind}`);
    return n;
  }
  if (INT64.has(kind)) {
    const unsigned = kind === 'uint64' || kind === 'fixed64';
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) throw bad(path, `expected an integer (${kind}), got ${describe(value)}; write large values as strings`);
      if (unsigned && value < 0) throw bad(path, `${value} is out of range for ${kind}`);
      return value;
    }
    if (typeof value === 'string' && /^-?\d+$/.test(value)) {
      const b = BigInt(value);
      const [lo, hi] = unsigned ? [0n, 2n ** 64n - 1n] : [-(2n ** 63n), 2n ** 63n - 1n];
      if (b < lo || b > hi) throw bad(path, `${value} is out of range for ${kind}`);
      return Number.isSafeInteger(Number(b)) ? Number(b) : value;
    }
    throw bad(path, `expected an integer (${kind}), got ${describe(value)}`);
  }
  throw bad(path, `unsupported scalar type ${kind}`);
}

// Well-known types with a special JSON form.
const WRAPPERS: Record<string, string> = {
  'google.protobuf.DoubleValue': 'double',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
};

const DURATION_RE = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;
const MAX_SECONDS = 315_576_000_000;

function durationFromJson(json: unknown, path: string): Wire {
  if (typeof json === 'string') {
    const m = DURATION_RE.exec(json);
    if (m === null) throw bad(path, `expected a duration such as "1.5s", got ${describe(json)}`);
    const sign = m[1] === '-' ? -1 : 1;
    const seconds = Number(m[2]);
    if (seconds > MAX_SECONDS) throw bad(path, 'duration is out of range');
    const nanos = Number((m[3] ?? '').padEnd(9, '0'));
    return { seconds: sign * seconds, nanos: sign * nanos };
  }
  if (isPlainObject(json)) {
    for (const k of Object.keys(json)) if (k !== 'seconds' && k !== 'nanos') throw unknownWkt(join(path, k), k, 'google.protobuf.Duration');
    const seconds = json.seconds === undefined ? 0 : scalarFromJson('int64', json.seconds, join(path, 'seconds'));
    const nanos = json.nanos === undefined ? 0 : scalarFromJson('int32', json.nanos, join(path, 'nanos'));
    if (Math.abs(nanos as number) > 999_999_999) throw bad(join(path, 'nanos'), 'nanos must be within ±999999999');
    return { seconds, nanos };
  }
  throw bad(path, `expected a duration such as "1.5s" or {seconds, nanos}, got ${describe(json)}`);
}

function timestampFromJson(json: unknown, path: string): Wire {
  if (typeof json === 'string') {
    const ms = Date.parse(json);
    const m = /\.(\d{1,9})/.exec(json);
    if (Number.isNaN(ms) || !/^\d{4}-\d\d-\d\dT/.test(json)) throw bad(path, `expected an RFC 3339 timestamp, got ${describe(json)}`);
    const seconds = Math.floor(ms / 1000);
    return { seconds, nanos: m === null ? 0 : Number((m[1] ?? '').padEnd(9, '0')) };
  }
  return durationFromJson(json, path);
}

function valueFromJson(json: unknown, path: string): Wire {
  if (json === null) return { nullValue: 0 };
  if (typeof json === 'number') return { numberValue: json };
  if (typeof json === 'string') return { stringValue: json };
  if (typeof json === 'boolean') return { boolValue: json };
  if (Array.isArray(json)) return { listValue: listFromJson(json, path) };
  if (isPlainObject(json)) return { structValue: structFromJson(json, path) };
  throw bad(path, `expected a JSON value, got ${describe(json)}`);
}
function structFromJson(json: unknown, path: string): Wire {
  if (!isPlainObject(json)) throw bad(path, `expected an object (google.protobuf.Struct), got ${describe(json)}`);
  const fields: Record<string, Wire> = {};
  for (const [k, v] of Object.entries(json)) fields[k] = valueFromJson(v, join(path, k));
  return { fields };
}
function listFromJson(json: unknown, path: string): Wire {
  if (!Array.isArray(json)) throw bad(path, `expected an array (google.protobuf.ListValue), got ${describe(json)}`);
  return { values: json.map((v, i) => valueFromJson(v, `${path}[${i}]`)) };
}

function anyFromJson(json: unknown, path: string): Wire {
  if (!isPlainObject(json)) throw bad(path, `expected an object with "@type", got ${describe(json)}`);
  const typeUrl = json['@type'];
  if (typeUrl === undefined && Object.keys(json).every((k) => k === 'typeUrl' || k === 'type_url' || k === 'value')) {
    // Already packed ({typeUrl, value: base64 | bytes}).
    const url = json.typeUrl ?? json.type_url;
    if (typeof url !== 'string') throw bad(path, 'an Any needs "@type"');
    const v = json.value;
    return { type_url: url, value: v instanceof Uint8Array ? v : scalarFromJson('bytes', v ?? '', join(path, 'value')) };
  }
  if (typeof typeUrl !== 'string') throw bad(join(path, '@type'), `an Any needs "@type" naming its message type, got ${describe(typeUrl)}`);
  if (!typeUrl.includes('/')) throw bad(join(path, '@type'), `"${typeUrl}" must be a type URL: "${TYPE_PREFIX}${typeUrl}"`);
  const type = typeForUrl(typeUrl);
  if (type === undefined) throw new XdsCodecError('XDS_UNKNOWN_TYPE', join(path, '@type'), `unknown message type ${typeUrl}`);
  const { '@type': _t, ...rest } = json;
  const inner = WKT_FROM_JSON[shortName(type)] !== undefined ? rest.value : rest;
  if (WKT_FROM_JSON[shortName(type)] !== undefined) {
    for (const k of Object.keys(rest)) if (k !== 'value') throw unknownWkt(join(path, k), k, `Any holding ${shortName(type)}`);
  }
  const sub = `${path}<${shortName(type).split('.').pop() ?? ''}>`;
  return { type_url: typeUrl, value: type.encode(messageFromJson(type, inner, sub)).finish() };
}

const WKT_FROM_JSON: Record<string, (json: unknown, path: string) => Wire> = {
  'google.protobuf.Any': anyFromJson,
  'google.protobuf.Duration': durationFromJson,
  'google.protobuf.Timestamp': timestampFromJson,
  'google.protobuf.Struct': structFromJson,
  'google.protobuf.Value': valueFromJson,
  'google.protobuf.ListValue': listFromJson,
  'google.protobuf.FieldMask': (json, path) => {
    if (typeof json !== 'string') throw bad(path, `expected a field mask string, got ${describe(json)}`);
    return { paths: json === '' ? [] : json.split(',').map((p) => p.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)) };
  },
};
for (const [name, kind] of Object.entries(WRAPPERS)) {
  WKT_FROM_JSON[name] = (json, path) => {
    if (isPlainObject(json)) {
      for (const k of Object.keys(json)) if (k !== 'value') throw unknownWkt(join(path, k), k, name);
      return { value: scalarFromJson(kind, json.value, join(path, 'value')) };
    }
    return { value: scalarFromJson(kind, json, path) };
  };
}

// ---------------------------------------------------------------- decoding

/** Decodes an Any into proto3-JSON (without a top-level "@type"). Throws XdsCodecError. */
export function unpackAny(any: { type_url?: string; typeUrl?: string; value: Uint8Array }): JsonObject {
  const url = any.type_url ?? any.typeUrl ?? '';
  const type = typeForUrl(url);
  if (type === undefined) throw new XdsCodecError('XDS_UNKNOWN_TYPE', '', `unknown message type ${url}`);
  return decodeMessage(shortName(type), any.value);
}

/** Decodes message bytes of type `typeName` into proto3-JSON. Throws XdsCodecError. */
export function decodeMessage(typeName: string, bytes: Uint8Array): JsonObject {
  const type = findType(typeName);
  if (type === undefined) throw new XdsCodecError('XDS_UNKNOWN_TYPE', '', `unknown message type ${typeName}`);
  let msg: protobuf.Message;
  try {
    msg = type.decode(bytes);
  } catch (err) {
    throw new XdsCodecError('XDS_DECODE_FAILED', '', `cannot decode ${typeName}: ${(err as Error).message}`);
  }
  const json = messageToJson(type, msg as unknown as Wire);
  if (!isPlainObject(json)) return { value: json };
  return json;
}

/** Converts a decoded protobufjs message (or a plain object in protobufjs form) to proto3-JSON. */
export function messageToJson(type: protobuf.Type, msg: Wire): Json {
  const special = WKT_TO_JSON[shortName(type)];
  if (special !== undefined) return special(msg);
  const out: JsonObject = {};
  for (const field of type.fieldsArray) {
    if (!Object.hasOwn(msg, field.name)) continue;
    const v = msg[field.name];
    if (v === null || v === undefined) continue;
    field.resolve();
    const key = camel(field.name);
    if (field.map) {
      const entries = Object.entries(v as Record<string, unknown>);
      if (entries.length === 0) continue;
      const o: JsonObject = {};
      for (const [k, e] of entries) o[k] = singleToJson(field, e);
      out[key] = o;
    } else if (field.repeated) {
      const arr = v as unknown[];
      if (arr.length === 0) continue;
      out[key] = arr.map((e) => singleToJson(field, e));
    } else {
      out[key] = singleToJson(field, v);
    }
  }
  return out;
}

function singleToJson(field: protobuf.Field, v: unknown): Json {
  const rt = field.resolvedType;
  if (rt !== null && 'fieldsArray' in rt) return messageToJson(rt, v as Wire);
  if (rt !== null) {
    const en = rt as protobuf.Enum;
    return en.valuesById[v as number] ?? (v as number);
  }
  return scalarToJson(field.type, v);
}

function longToJson(v: unknown): number | string {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Number.isSafeInteger(Number(v)) ? Number(v) : v;
  const s = String(v); // Long#toString
  return Number.isSafeInteger(Number(s)) ? Number(s) : s;
}

function scalarToJson(kind: string, v: unknown): Json {
  if (kind === 'bytes') return Buffer.from(v as Uint8Array).toString('base64');
  if (INT64.has(kind)) return longToJson(v);
  if (kind === 'double' || kind === 'float') {
    const n = v as number;
    if (Number.isNaN(n)) return 'NaN';
    if (n === Number.POSITIVE_INFINITY) return 'Infinity';
    if (n === Number.NEGATIVE_INFINITY) return '-Infinity';
    return n;
  }
  return v as Json;
}

function durationToJson(msg: Wire): Json {
  const seconds = BigInt(String(msg.seconds ?? 0));
  const nanos = Number(msg.nanos ?? 0);
  const negative = seconds < 0n || nanos < 0;
  const abs = (x: bigint): bigint => (x < 0n ? -x : x);
  let frac = '';
  const n = Math.abs(nanos);
  if (n !== 0) {
    frac = n % 1_000_000 === 0 ? `.${String(n / 1_000_000).padStart(3, '0')}` : n % 1000 === 0 ? `.${String(n / 1000).padStart(6, '0')}` : `.${String(n).padStart(9, '0')}`;
  }
  return `${negative ? '-' : ''}${abs(seconds)}${frac}s`;
}

// protobufjs defines google.protobuf.Value with camelCase field names.
function valueToJson(msg: Wire): Json {
  if (Object.hasOwn(msg, 'nullValue')) return null;
  if (Object.hasOwn(msg, 'numberValue')) return msg.numberValue as number;
  if (Object.hasOwn(msg, 'stringValue')) return msg.stringValue as string;
  if (Object.hasOwn(msg, 'boolValue')) return msg.boolValue as boolean;
  if (Object.hasOwn(msg, 'structValue')) return structToJson(msg.structValue as Wire);
  if (Object.hasOwn(msg, 'listValue')) return listToJson(msg.listValue as Wire);
  return null;
}
function structToJson(msg: Wire): Json {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries((msg.fields ?? {}) as Record<string, Wire>)) out[k] = valueToJson(v);
  return out;
}
function listToJson(msg: Wire): Json {
  return ((msg.values ?? []) as Wire[]).map(valueToJson);
}

function anyToJson(msg: Wire): Json {
  const url = String(msg.type_url ?? '');
  const bytes = (msg.value ?? new Uint8Array()) as Uint8Array;
  const type = typeForUrl(url);
  if (type === undefined) return { '@type': url, value: Buffer.from(bytes).toString('base64') };
  const inner = messageToJson(type, type.decode(bytes) as unknown as Wire);
  if (WKT_TO_JSON[shortName(type)] !== undefined) return { '@type': url, value: inner };
  return { '@type': url, ...(inner as JsonObject) };
}

const WKT_TO_JSON: Record<string, (msg: Wire) => Json> = {
  'google.protobuf.Any': anyToJson,
  'google.protobuf.Duration': durationToJson,
  'google.protobuf.Timestamp': (msg) => {
    const base = new Date(Number(String(msg.seconds ?? 0)) * 1000).toISOString().slice(0, 19);
    const nanos = Number(msg.nanos ?? 0);
    return nanos === 0 ? `${base}Z` : `${base}.${String(nanos).padStart(9, '0').replace(/(000)+$/, '')}Z`;
  },
  'google.protobuf.Struct': structToJson,
  'google.protobuf.Value': valueToJson,
  'google.protobuf.ListValue': listToJson,
  'google.protobuf.FieldMask': (msg) => ((msg.paths ?? []) as string[]).map(camel).join(','),
};
for (const [name, kind] of Object.entries(WRAPPERS)) {
  WKT_TO_JSON[name] = (msg) => {
    const v = msg.value;
    if (v === undefined || v === null) return kind === 'string' || kind === 'bytes' ? '' : kind === 'bool' ? false : 0;
    return scalarToJson(kind, v);
  };
}

// ---------------------------------------------------------------- helpers

function bad(path: string, reason: string): XdsCodecError {
  return new XdsCodecError('XDS_BAD_VALUE', path, reason);
}

function unknownWkt(path: string, key: string, type: string): XdsCodecError {
  return new XdsCodecError('XDS_UNKNOWN_FIELD', path, `unknown field "${key}" in ${type}`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return `${typeof v} ${String(v)}`;
}

/** The closest known name, if it is close enough to be a typo. */
function suggest(key: string, names: readonly string[]): string | undefined {
  const k = camel(key);
  return closestName(k, names, typoLimit(k));
}
