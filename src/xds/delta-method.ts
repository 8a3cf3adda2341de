// Incremental (delta) ADS on the wire:
// envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources,
// with DeltaDiscoveryRequest / DeltaDiscoveryResponse. Requests are rare and
// small (subscription changes, ACKs without names) and go through the strict
// codec; responses are written by hand into one buffer, each resource's
// encoded `Resource` cached by its packed value, as ads-method.ts does for
// state of the world.
import { decodeMessage, encodeMessage } from './codec.ts';
import type { JsonObject, PackedAny } from './codec.ts';
import { requireType } from './protos.ts';
import type { XdsNode } from './cache.ts';
import { lengthDelimited, nodeFromJson, nodeJson, rawStreamMethod, type NodeInput } from './ads-method.ts';

export const DELTA_ADS_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';

export interface DeltaDiscoveryRequest {
  readonly node: XdsNode | undefined;
  readonly typeUrl: string;
  readonly subscribe: readonly string[];
  readonly unsubscribe: readonly string[];
  /** name -> version the client already has (first request of a type on a stream). */
  readonly initialVersions: ReadonlyMap<string, string>;
  readonly responseNonce: string;
  readonly errorDetail: { readonly code: number; readonly message: string } | undefined;
}

export interface DeltaResource {
  readonly name: string;
  readonly version: string;
  readonly any: PackedAny;
}

export interface DeltaDiscoveryResponse {
  readonly systemVersionInfo: string;
  readonly resources: readonly DeltaResource[];
  readonly typeUrl: string;
  readonly removed: readonly string[];
  readonly nonce: string;
  readonly controlPlane?: string;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const strList = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

export function decodeDeltaRequest(buf: Buffer): DeltaDiscoveryRequest {
  const m = decodeMessage('envoy.service.discovery.v3.DeltaDiscoveryRequest', buf);
  const init = (typeof m.initialResourceVersions === 'object' && m.initialResourceVersions !== null ? m.initialResourceVersions : {}) as JsonObject;
  const ed = m.errorDetail as JsonObject | undefined;
  return {
    node: m.node === undefined ? undefined : nodeFromJson(m.node as JsonObject),
    typeUrl: str(m.typeUrl),
    subscribe: strList(m.resourceNamesSubscribe),
    unsubscribe: strList(m.resourceNamesUnsubscribe),
    initialVersions: new Map(Object.entries(init).map(([k, v]) => [k, str(v)])),
    responseNonce: str(m.responseNonce),
    errorDetail: ed === undefined ? undefined : { code: typeof ed.code === 'number' ? ed.code : 0, message: str(ed.message) },
  };
}

export function encodeDeltaRequest(req: {
  node?: NodeInput;
  typeUrl: string;
  subscribe?: readonly string[];
  unsubscribe?: readonly string[];
  initialVersions?: ReadonlyMap<string, string>;
  responseNonce?: string;
  errorDetail?: { code: number; message: string };
}): Buffer {
  const json: Record<string, unknown> = {
    typeUrl: req.typeUrl,
    resourceNamesSubscribe: [...(req.subscribe ?? [])],
    resourceNamesUnsubscribe: [...(req.unsubscribe ?? [])],
    initialResourceVersions: Object.fromEntries(req.initialVersions ?? []),
    responseNonce: req.responseNonce ?? '',
  };
  if (req.node !== undefined) json.node = nodeJson(req.node);
  if (req.errorDetail !== undefined) json.errorDetail = req.errorDetail;
  return Buffer.from(encodeMessage('envoy.service.discovery.v3.DeltaDiscoveryRequest', json));
}

// DeltaDiscoveryResponse: 1 system_version_info, 2 repeated Resource
// (1 version, 2 resource Any, 3 name), 4 type_url, 5 nonce, 6 repeated
// removed_resources, 7 control_plane (1 identifier).
const resourceFields = new WeakMap<Uint8Array, Buffer>();

function resourceField(r: DeltaResource): Buffer {
  let f = resourceFields.get(r.any.value);
  if (f === undefined) {
    const any = Buffer.concat([lengthDelimited(0x0a, Buffer.from(r.any.type_url, 'utf8')), lengthDelimited(0x12, r.any.value)]);
    const res = Buffer.concat([lengthDelimited(0x0a, Buffer.from(r.version, 'utf8')), lengthDelimited(0x12, any), lengthDelimited(0x1a, Buffer.from(r.name, 'utf8'))]);
    f = lengthDelimited(0x12, res);
    resourceFields.set(r.any.value, f);
  }
  return f;
}

export function encodeDeltaResponse(res: DeltaDiscoveryResponse): Buffer {
  const parts: Buffer[] = [];
  if (res.systemVersionInfo !== '') parts.push(lengthDelimited(0x0a, Buffer.from(res.systemVersionInfo, 'utf8')));
  for (const r of res.resources) parts.push(resourceField(r));
  if (res.typeUrl !== '') parts.push(lengthDelimited(0x22, Buffer.from(res.typeUrl, 'utf8')));
  if (res.nonce !== '') parts.push(lengthDelimited(0x2a, Buffer.from(res.nonce, 'utf8')));
  for (const n of res.removed) parts.push(lengthDelimited(0x32, Buffer.from(n, 'utf8')));
  if (res.controlPlane !== undefined && res.controlPlane !== '') parts.push(lengthDelimited(0x3a, lengthDelimited(0x0a, Buffer.from(res.controlPlane, 'utf8'))));
  return Buffer.concat(parts);
}

export function decodeDeltaResponse(buf: Buffer): DeltaDiscoveryResponse {
  const T = requireType('envoy.service.discovery.v3.DeltaDiscoveryResponse');
  const m = T.decode(buf) as unknown as {
    system_version_info?: string;
    resources?: { name?: string; version?: string; resource?: { type_url?: string; value?: Uint8Array } }[];
    type_url?: string;
    removed_resources?: string[];
    nonce?: string;
  };
  return {
    systemVersionInfo: m.system_version_info ?? '',
    resources: (m.resources ?? []).map((r) => ({
      name: r.name ?? '',
      version: r.version ?? '',
      any: { type_url: r.resource?.type_url ?? '', value: r.resource?.value ?? new Uint8Array() },
    })),
    typeUrl: m.type_url ?? '',
    removed: m.removed_resources ?? [],
    nonce: m.nonce ?? '',
  };
}

export const deltaAdsMethod = rawStreamMethod(DELTA_ADS_PATH);
