// Building blocks shared by every kind's schema. Schemas are TypeBox
// definitions: one source for the JSON Schema (kept structural, so it can be
// emitted as a CRD's openAPIV3Schema) and for the static TypeScript types.
// Rules a structural schema cannot say (cross-field checks) live in each
// kind's `check` function, not here.
import { Type, type TSchema, type Static } from '@sinclair/typebox';

/** A string enum as `{type: string, enum: [...]}` (CRD-friendly, unlike anyOf of literals). */
export function StringEnum<const T extends readonly string[]>(values: T, opts: { default?: T[number]; description?: string } = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...opts });
}

/** A string-to-string map (labels, selectors) as `additionalProperties: {type: string}`. */
export function StringMap(opts: { description?: string } = {}) {
  return Type.Unsafe<Record<string, string>>({ type: 'object', additionalProperties: { type: 'string' }, ...opts });
}

/** Kubernetes IntOrString (e.g. a targetPort given as a number or a port name). */
export function IntOrString(opts: { description?: string } = {}) {
  return Type.Unsafe<number | string>({ 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }], ...opts });
}

/** A closed object: unknown fields are rejected. */
export function Closed<T extends Parameters<typeof Type.Object>[0]>(props: T, opts: { description?: string; default?: unknown } = {}) {
  return Type.Object(props, { additionalProperties: false, ...opts });
}

// Patterns (also used by messages in schema-check.ts: keep them as constants).
export const DNS1123_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
export const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const DNS1035_LABEL = '^[a-z]([-a-z0-9]*[a-z0-9])?$';
export const HOSTNAME = '^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
export const GROUP = '^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
export const KIND = '^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$';
export const DURATION = '^([0-9]{1,5}(h|m|s|ms)){1,4}$';
export const HEADER_NAME = "^[A-Za-z0-9!#$%&'*+\\-.^_\\x60|~]+$";

/** Human wording for each pattern, so errors say what is wanted, not the regex. */
export const PATTERN_MESSAGES: Record<string, string> = {
  [DNS1123_SUBDOMAIN]: "must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-' and '.', starting and ending with a letter or digit)",
  [DNS1123_LABEL]: "must be a lowercase RFC 1123 label (a-z, 0-9 and '-', starting and ending with a letter or digit)",
  [DNS1035_LABEL]: "must be a lowercase RFC 1035 label (a-z, 0-9 and '-', starting with a letter, ending with a letter or digit)",
  [HOSTNAME]: 'must be a lowercase DNS hostname, optionally starting with "*."',
  [GROUP]: 'must be empty or a lowercase DNS subdomain (an API group)',
  [KIND]: 'must be a kind name (letters, digits and "-", starting with a letter)',
  [DURATION]: 'must be a Gateway API duration such as 10s, 500ms or 1h30m',
  [HEADER_NAME]: 'must be a valid HTTP header name',
};

export const Duration = Type.String({ pattern: DURATION, description: 'Gateway API duration, e.g. 10s, 500ms, 1m30s' });
export const PortNumber = Type.Integer({ minimum: 1, maximum: 65535 });
export const ObjectName = Type.String({ minLength: 1, maxLength: 253 });
export const Namespace = Type.String({ minLength: 1, maxLength: 63, pattern: DNS1123_LABEL });
export const Group = Type.String({ maxLength: 253, pattern: GROUP });
export const KindName = Type.String({ minLength: 1, maxLength: 63, pattern: KIND });
export const SectionName = Type.String({ minLength: 1, maxLength: 253, pattern: DNS1123_SUBDOMAIN });
export const Hostname = Type.String({ minLength: 1, maxLength: 253, pattern: HOSTNAME });
export const PreciseHostname = Type.String({ minLength: 1, maxLength: 253, pattern: DNS1123_SUBDOMAIN });
export const HeaderName = Type.String({ minLength: 1, maxLength: 256, pattern: HEADER_NAME });

/** Parse a Gateway API duration ("1h30m", "500ms") into milliseconds; undefined if malformed. */
export function parseDuration(text: string): number | undefined {
  if (!new RegExp(DURATION).test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(/([0-9]+)(h|ms|m|s)/g)) {
    const n = Number(m[1]);
    ms += m[2] === 'h' ? n * 3_600_000 : m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1000 : n;
  }
  return ms;
}

export type { TSchema, Static };
