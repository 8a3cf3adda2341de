// Small Envoy messages shared by several resources: core.v3.Address,
// core.v3.Metadata (only the `trellis` namespace is read) and Any's @type.
import { FieldReader, isPlainObject, describe, camelizeDeep } from './field-reader.ts';

export const TYPE_PREFIX = 'type.googleapis.com/';

export interface SocketAddress {
  readonly address: string;
  readonly port: number;
}

/** core.v3.Address with a socketAddress (pipes and internal addresses are
 * not supported). */
export function parseAddress(r: FieldReader | undefined): SocketAddress | undefined {
  if (!r) return undefined;
  const sa = r.obj('socketAddress', { required: true });
  r.done();
  if (!sa) return undefined;
  const address = sa.str('address', { required: true });
  const port = sa.uint('portValue', { required: true, max: 65535 });
  const protocol = sa.raw('protocol');
  if (protocol !== undefined && protocol !== 'TCP' && protocol !== 0) sa.error('protocol', 'only TCP is supported');
  sa.ignore('resolverName', 'ipv4Compat');
  sa.done();
  if (address === undefined || port === undefined) return undefined;
  return { address, port };
}

/** core.v3.Metadata: returns filterMetadata.trellis (or undefined). Other
 * namespaces and typedFilterMetadata are accepted and ignored. */
export function parseTrellisMetadata(r: FieldReader | undefined): Record<string, unknown> | undefined {
  if (!r) return undefined;
  const fm = r.struct('filterMetadata');
  r.ignore('typedFilterMetadata');
  r.done();
  if (!fm) return undefined;
  for (const [ns, v] of Object.entries(fm)) {
    if (!isPlainObject(v)) r.issues.error(`${r.at('filterMetadata')}.${ns}`, `must be an object (got ${describe(v)})`);
  }
  const t = fm.trellis;
  return isPlainObject(t) ? t : undefined;
}

/** The `@type` of a google.protobuf.Any, without the type.googleapis.com/ prefix. */
export function anyType(r: FieldReader): string | undefined {
  const t = r.str('@type', { required: true });
  if (t === undefined) return undefined;
  if (!t.startsWith(TYPE_PREFIX)) {
    r.error('@type', `must start with "${TYPE_PREFIX}" (got ${JSON.stringify(t)})`);
    return undefined;
  }
  return t.slice(TYPE_PREFIX.length);
}

/** Keep an object field verbatim (validated as an object) for later work. */
export function keepObject(r: FieldReader, key: string, into: Record<string, unknown>): void {
  const v = r.raw(key);
  if (v === undefined) return;
  if (!isPlainObject(v)) {
    r.error(key, `must be an object (got ${describe(v)})`);
    return;
  }
  into[key] = camelizeDeep(v);
}

/** Keep a list-of-objects field verbatim (each validated as an object). */
export function keepObjectList(r: FieldReader, key: string, into: Record<string, unknown>): void {
  const items = r.list(key);
  if (items.length === 0) return;
  const out: unknown[] = [];
  for (const it of items) {
    if (!isPlainObject(it.value)) r.issues.error(it.path, `must be an object (got ${describe(it.value)})`);
    else out.push(camelizeDeep(it.value));
  }
  into[key] = out;
}
