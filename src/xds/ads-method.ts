// The one gRPC method both sides of ADS speak:
// envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources,
// with DiscoveryRequest / DiscoveryResponse (de)serialized by the shared Root.
import type * as grpc from '@grpc/grpc-js';
import { decodeMessage, encodeMessage } from './codec.ts';
import type { Json, JsonObject, PackedAny } from './codec.ts';
import { requireType } from './protos.ts';
import type { XdsNode } from './cache.ts';

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
  if (req.node !== undefined) {
    const n = req.node;
    json.node = {
      id: n.id,
      cluster: n.cluster ?? '',
      locality: { region: n.locality?.region ?? '', zone: n.locality?.zone ?? '', subZone: n.locality?.subZone ?? '' },
      metadata: n.metadata ?? {},
      userAgentName: n.userAgentName ?? 'trellis',
      userAgentVersion: n.userAgentVersion ?? '',
    };
  }
  if (req.errorDetail !== undefined) json.errorDetail = { code: req.errorDetail.code, message: req.errorDetail.message };
  return Buffer.from(encodeMessage('envoy.service.discovery.v3.DiscoveryRequest', json));
}

export function decodeRequest(buf: Buffer): DiscoveryRequest {
  const json = decodeMessage('envoy.service.discovery.v3.DiscoveryRequest', buf);
  const err = json.errorDetail === undefined ? undefined : obj(json.errorDetail);
  return {
    versionInfo: str(json.versionInfo),
    node: json.node === undefined ? undefined : nodeFromJson(obj(json.node)),
    resourceNames: Array.isArray(json.resourceNames) ? json.resourceNames.map(str) : [],
    typeUrl: str(json.typeUrl),
    responseNonce: str(json.responseNonce),
    errorDetail: err === undefined ? undefined : { code: typeof err.code === 'number' ? err.code : 0, message: str(err.message) },
  };
}

export function encodeResponse(res: DiscoveryResponse): Buffer {
  const T = requireType('envoy.service.discovery.v3.DiscoveryResponse');
  const wire: Record<string, unknown> = {
    version_info: res.versionInfo,
    resources: res.resources.map((r) => ({ type_url: r.type_url, value: r.value })),
    type_url: res.typeUrl,
    nonce: res.nonce,
  };
  if (res.controlPlane !== undefined) wire.control_plane = { identifier: res.controlPlane };
  return Buffer.from(T.encode(wire).finish());
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

export const adsMethod: grpc.MethodDefinition<Buffer, Buffer> = {
  path: ADS_PATH,
  requestStream: true,
  responseStream: true,
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
};
