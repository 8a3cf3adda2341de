// The one gRPC method both sides of ADS speak:
// envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources,
// with DiscoveryRequest / DiscoveryResponse (de)serialized by the shared Root.
import type * as grpc from '@grpc/grpc-js';
import { decodeMessage, encodeMessage } from './codec.ts';
import type { Json, JsonObject, PackedAny } from './codec.ts';
import { requireType } from './protos.ts';
import type { XdsNode } from './cache.ts';
import { internNames, type NameList } from './resource-names.ts';

export const ADS_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';

/** A DiscoveryRequest, decoded. `node` is present only where the client sent it (first request). */
export interface DiscoveryRequest {
  readonly versionInfo: string;
  readonly node: XdsNode | undefined;
  readonly resourceNames: readonly string[];
  readonly typeUrl: string;
  readonly responseNonce: string;
  /** Set on a NACK. */
  readonly errorDetail: { readonly code: number; readonly message: string } | undefined;
}

export interface DiscoveryResponse {
  readonly versionInfo: string;
  readonly resources: readonly PackedAny[];
  readonly typeUrl: string;
  readonly nonce: string;
  readonly controlPlane?: string;
}

export interface NodeInput {
  readonly id: string;
  readonly cluster?: string;
  readonly locality?: { readonly region?: string; readonly zone?: string; readonly subZone?: string };
  readonly metadata?: { readonly [key: string]: Json };
  readonly userAgentName?: string;
  readonly userAgentVersion?: string;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const obj = (v: unknown): JsonObject => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : {});

export function nodeFromJson(json: JsonObject): XdsNode {
  const loc = obj(json.locality);
  return {
    id: str(json.id),
    cluster: str(json.cluster),
    locality: { region: str(loc.region), zone: str(loc.zone), subZone: str(loc.subZone) },
    metadata: obj(json.metadata),
    userAgentName: str(json.userAgentName),
    userAgentVersion: str(json.userAgentVersion),
  };
}

/** Encodes a DiscoveryRequest (through the strict codec). */
/** A request's `node` as DiscoveryRequest / DeltaDiscoveryRequest JSON (both protocols). */
export function nodeJson(n: NodeInput): Record<string, unknown> {
  return {
    id: n.id,
    cluster: n.cluster ?? '',
    locality: { region: n.locality?.region ?? '', zone: n.locality?.zone ?? '', subZone: n.locality?.subZone ?? '' },
    metadata: n.metadata ?? {},
    userAgentName: n.userAgentName ?? 'trellis',
    userAgentVersion: n.userAgentVersion ?? '',
  };
}

export function encodeRequest(req: {
  versionInfo: string;
  node?: NodeInput;
  resourceNames: readonly string[];
  typeUrl: string;
  responseNonce: string;
  errorDetail?: { code: number; message: string };
}): Buffer {
  const json: Record<string, unknown> = {
    versionInfo: req.versionInfo,
    resourceNames: [...req.resourceNames],
    typeUrl: req.typeUrl,
    responseNonce: req.responseNonce,
  };
  if (req.node !== undefined) json.node = nodeJson(req.node);
  if (req.errorDetail !== undefined) json.errorDetail = { code: req.errorDetail.code, message: req.errorDetail.message };
  return Buffer.from(encodeMessage('envoy.service.discovery.v3.DiscoveryRequest', json));
}

/** A decoded request; `names` is its resource_names as a shared NameList
 * (resource-names.ts), `resourceNames` the same array. */
export type DecodedRequest = DiscoveryRequest & { readonly names: NameList };

function readVarint(buf: Buffer, pos: number): [number, number] {
  let n = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++]!;
    n += (b & 0x7f) * mul;
    if (b < 0x80) return [n, pos];
    mul *= 128;
  }
  throw new Error('varint longer than 10 bytes');
}

/** One of `known` whose bytes are those of `buf` at `at`. */
function matchKnown(buf: Buffer, at: number, known: readonly NameList[]): NameList | undefined {
  for (const k of known) {
    const b = k.bytes;
    if (b === null || b.length === 0 || at + b.length > buf.length) continue;
    if (buf.compare(b, 0, b.length, at, at + b.length) === 0) return k;
  }
  return undefined;
}

/**
 * DiscoveryRequest (1 version_info, 2 node, 3 repeated resource_names,
 * 4 type_url, 5 response_nonce, 6 error_detail; others skipped) read by
 * hand: an ACK repeats thousands of EDS names, and when their bytes are
 * those of one of the stream's current lists (`known`), that list is
 * returned after one byte comparison, without decoding a name. Node and
 * error_detail, rare, go through the strict codec.
 */
export function decodeRequest(buf: Buffer, known: readonly NameList[] = []): DecodedRequest {
  let versionInfo = '';
  let typeUrl = '';
  let responseNonce = '';
  let node: XdsNode | undefined;
  let errorDetail: DiscoveryRequest['errorDetail'];
  /** Matched whole from `known`. */
  let matched: NameList | undefined;
  const nameRanges: number[] = [];
  // The names' fields as one contiguous byte range (encoders write them
  // together); -2 once another field interrupts them.
  let namesStart = -1;
  let namesEnd = -1;
  let pos = 0;
  while (pos < buf.length) {
    const tagPos = pos;
    let tag = buf[pos]!;
    if (tag < 0x80) pos++;
    else [tag, pos] = readVarint(buf, pos);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) {
      [, pos] = readVarint(buf, pos);
      continue;
    }
    if (wire === 1 || wire === 5) {
      pos += wire === 1 ? 8 : 4;
      if (pos > buf.length) throw new Error(`field ${field}: truncated`);
      continue;
    }
    if (wire !== 2) throw new Error(`field ${field}: unsupported wire type ${wire}`);
    if (pos >= buf.length) throw new Error(`field ${field}: truncated`);
    let len = buf[pos]!;
    if (len < 0x80) pos++;
    else [len, pos] = readVarint(buf, pos);
    const end = pos + len;
    if (end > buf.length) throw new Error(`field ${field}: length ${len} past the end`);
    switch (field) {
      case 1: versionInfo = buf.toString('utf8', pos, end); break;
      case 2: node = nodeFromJson(decodeMessage('envoy.config.core.v3.Node', buf.subarray(pos, end))); break;
      case 3:
        // More names after a list matched whole: not that list after all.
        if (matched !== undefined) return decodeRequest(buf);
        if (namesStart === -1) {
          matched = matchKnown(buf, tagPos, known);
          if (matched !== undefined) {
            pos = tagPos + matched.bytes!.length;
            continue;
          }
          namesStart = tagPos;
        } else if (namesEnd !== tagPos) namesStart = -2; // interleaved with other fields
        namesEnd = end;
        nameRanges.push(pos, end);
        break;
      case 4: typeUrl = buf.toString('utf8', pos, end); break;
      case 5: responseNonce = buf.toString('utf8', pos, end); break;
      case 6: {
        const st = decodeMessage('google.rpc.Status', buf.subarray(pos, end));
        errorDetail = { code: typeof st.code === 'number' ? st.code : 0, message: str(st.message) };
        break;
      }
      default: break;
    }
    pos = end;
  }
  let names = matched;
  if (names === undefined) {
    const list: string[] = [];
    for (let i = 0; i < nameRanges.length; i += 2) list.push(buf.toString('utf8', nameRanges[i], nameRanges[i + 1]));
    names = internNames(namesStart >= 0 ? buf.subarray(namesStart, namesEnd) : null, list);
  }
  return { versionInfo, node, resourceNames: names.list, typeUrl, responseNonce, errorDetail, names };
}

// DiscoveryResponse on the wire (envoy/service/discovery/v3/discovery.proto):
// 1 version_info, 2 repeated Any resources (1 type_url, 2 value), 4 type_url,
// 5 nonce, 6 control_plane (1 identifier). Written by hand into one buffer:
// the server sends thousands of responses per change, and each resource's
// encoded field is cached by its packed value (a snapshot's resources are
// shared by every stream that receives them), so a response costs one
// allocation and copies, not a protobuf writer per resource.

export function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

export function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/** `tag, length, bytes` of a length-delimited field. */
export function lengthDelimited(tag: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(1 + varintLength(body.length) + body.length);
  out[0] = tag;
  const at = writeVarint(out, 1, body.length);
  out.set(body, at);
  return out;
}

const resourceFields = new WeakMap<Uint8Array, Buffer>();

/** Field 2 of a DiscoveryResponse for one packed resource (cached). */
function resourceField(r: PackedAny): Buffer {
  let f = resourceFields.get(r.value);
  if (f === undefined) {
    const any = Buffer.concat([lengthDelimited(0x0a, Buffer.from(r.type_url, 'utf8')), lengthDelimited(0x12, r.value)]);
    f = lengthDelimited(0x12, any);
    resourceFields.set(r.value, f);
  }
  return f;
}

export function encodeResponse(res: DiscoveryResponse): Buffer {
  const parts: Buffer[] = [];
  if (res.versionInfo !== '') parts.push(lengthDelimited(0x0a, Buffer.from(res.versionInfo, 'utf8')));
  for (const r of res.resources) parts.push(resourceField(r));
  if (res.typeUrl !== '') parts.push(lengthDelimited(0x22, Buffer.from(res.typeUrl, 'utf8')));
  if (res.nonce !== '') parts.push(lengthDelimited(0x2a, Buffer.from(res.nonce, 'utf8')));
  if (res.controlPlane !== undefined && res.controlPlane !== '') {
    parts.push(lengthDelimited(0x32, lengthDelimited(0x0a, Buffer.from(res.controlPlane, 'utf8'))));
  } else if (res.controlPlane !== undefined) {
    parts.push(Buffer.from([0x32, 0x00]));
  }
  return Buffer.concat(parts);
}

export function decodeResponse(buf: Buffer): DiscoveryResponse {
  const T = requireType('envoy.service.discovery.v3.DiscoveryResponse');
  const m = T.decode(buf) as unknown as { version_info?: string; resources?: { type_url?: string; value?: Uint8Array }[]; type_url?: string; nonce?: string };
  return {
    versionInfo: m.version_info ?? '',
    resources: (m.resources ?? []).map((r) => ({ type_url: r.type_url ?? '', value: r.value ?? new Uint8Array() })),
    typeUrl: m.type_url ?? '',
    nonce: m.nonce ?? '',
  };
}

/** A bidirectional gRPC method whose messages stay bytes: the ADS methods
 * decode and encode themselves (state of the world here, delta in delta-method.ts). */
export function rawStreamMethod(path: string): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  };
}

export const adsMethod = rawStreamMethod(ADS_PATH);
