// Child process of `npm run bench:control-plane`: many simulated sidecars,
// each one ADS stream on its own HTTP/2 connection, subscribing as a Trellis
// sidecar does (LDS and CDS wildcard, then RDS "outbound" and EDS for every
// cluster) and ACKing every response at once. They read only a response's
// version, type and nonce, not its resources: the benchmark measures the
// control plane, not the clients.
// Protocol: "sotw" (StreamAggregatedResources) or "delta"
// (DeltaAggregatedResources: wildcard LDS/CDS, then RDS and EDS by name; an
// ACK is the nonce alone). Scoped (K > 0): each sidecar's workload declares
// K services in a Sidecar (cp-server.ts), and it subscribes to EDS for
// those only. Each client reports the bytes of its first full config.
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { adsMethod, encodeRequest } from '../src/xds/ads-method.ts';
import { deltaAdsMethod, encodeDeltaRequest } from '../src/xds/delta-method.ts';
import { scopedDeps } from './cp-scope.ts';
import { TypeUrl } from '../src/xds/protos.ts';

const [portArg, countArg, offsetArg, servicesArg, protocolArg = 'sotw', scopeArg = '0'] = process.argv.slice(2);
const delta = protocolArg === 'delta';
const K = Number(scopeArg);
const port = Number(portArg);
const count = Number(countArg);
const offset = Number(offsetArg);
const services = Number(servicesArg);

const AdsClient = grpc.makeGenericClientConstructor({ StreamAggregatedResources: adsMethod, DeltaAggregatedResources: deltaAdsMethod }, 'ads');
const edsNames = Array.from({ length: services }, (_, i) => `svc-${i}.default.svc:8080`);

// An ACK repeats the whole subscription (a thousand EDS names): encode that
// part once, so a client's ACK costs microseconds, as in a real proxy that
// keeps its request around, and the benchmark measures the control plane.
const namesField = (names: readonly string[]): Buffer => {
  const w = protobuf.Writer.create();
  for (const n of names) w.uint32((3 << 3) | 2).string(n); // DiscoveryRequest.resource_names
  return Buffer.from(w.finish());
};
const encodedNames = new Map<string, Buffer>();
function fastAck(typeUrl: string, names: readonly string[], versionInfo: string, responseNonce: string): Buffer {
  let nb = encodedNames.get(typeUrl);
  if (nb === undefined) encodedNames.set(typeUrl, (nb = namesField(names)));
  const w = protobuf.Writer.create();
  w.uint32((1 << 3) | 2).string(versionInfo); // version_info
  w.uint32((4 << 3) | 2).string(typeUrl); // type_url
  w.uint32((5 << 3) | 2).string(responseNonce); // response_nonce
  return Buffer.concat([Buffer.from(w.finish()), nb]);
}
/** version_info (1), type_url (4) and nonce (5) of a DiscoveryResponse,
 * skipping the resources (2) undecoded: what an ACK needs. */
function peekResponse(buf: Buffer): { versionInfo: string; typeUrl: string; nonce: string } {
  const out = { versionInfo: '', typeUrl: '', nonce: '' };
  let pos = 0;
  const varint = (): number => {
    let n = 0;
    let mul = 1;
    for (;;) {
      const b = buf[pos++]!;
      n += (b & 0x7f) * mul;
      if (b < 0x80) return n;
      mul *= 128;
    }
  };
  while (pos < buf.length) {
    const tag = varint();
    if ((tag & 7) !== 2) throw new Error(`unexpected wire type in field ${tag >> 3}`);
    const len = varint();
    const field = tag >> 3;
    if (field === 1) out.versionInfo = buf.toString('utf8', pos, pos + len);
    else if (field === 4) out.typeUrl = buf.toString('utf8', pos, pos + len);
    else if (field === 5) out.nonce = buf.toString('utf8', pos, pos + len);
    pos += len;
  }
  return out;
}
let ready = 0;
let configBytes = 0;

/** system_version_info (1), type_url (4), nonce (5) of a DeltaDiscoveryResponse. */
function peekDelta(buf: Buffer): { versionInfo: string; typeUrl: string; nonce: string } {
  const out = { versionInfo: '', typeUrl: '', nonce: '' };
  let pos = 0;
  const varint = (): number => {
    let n = 0;
    let mul = 1;
    for (;;) {
      const b = buf[pos++]!;
      n += (b & 0x7f) * mul;
      if (b < 0x80) return n;
      mul *= 128;
    }
  };
  while (pos < buf.length) {
    const tag = varint();
    const len = varint();
    const field = tag >> 3;
    if (field === 1) out.versionInfo = buf.toString('utf8', pos, pos + len);
    else if (field === 4) out.typeUrl = buf.toString('utf8', pos, pos + len);
    else if (field === 5) out.nonce = buf.toString('utf8', pos, pos + len);
    pos += len;
  }
  return out;
}

const deltaAcks = new Map<string, Buffer>();
function deltaAck(typeUrl: string, nonce: string): Buffer {
  let head = deltaAcks.get(typeUrl);
  if (head === undefined) deltaAcks.set(typeUrl, (head = encodeDeltaRequest({ typeUrl })));
  const w = protobuf.Writer.create();
  w.uint32((6 << 3) | 2).string(nonce); // response_nonce
  return Buffer.concat([head, Buffer.from(w.finish())]);
}

function startClient(i: number): void {
  const client = new AdsClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  const methods = client as unknown as Record<'StreamAggregatedResources' | 'DeltaAggregatedResources', () => grpc.ClientDuplexStream<Buffer, Buffer>>;
  const call = delta ? methods.DeltaAggregatedResources() : methods.StreamAggregatedResources();
  const w = Math.floor((offset + i) / 2);
  const myEds = K > 0 ? scopedDeps(w, services, K).map((d) => `svc-${d}.default.svc:8080`) : edsNames;
  const node = {
    id: `default/svc-${w}-${(offset + i) % 2}`,
    cluster: `svc-${w}`,
    metadata: { trellis: { kind: 'sidecar', namespace: 'default', workload: `svc-${w}-${(offset + i) % 2}` } },
  };
  const subs = new Map<string, string[]>([
    [TypeUrl.listener, []],
    [TypeUrl.cluster, []],
  ]);
  const seen = new Set<string>();
  const send = (typeUrl: string, versionInfo = '', responseNonce = '', first = false): void => {
    const names = subs.get(typeUrl) ?? [];
    if (delta) {
      if (responseNonce !== '') call.write(deltaAck(typeUrl, responseNonce));
      else call.write(encodeDeltaRequest({ typeUrl, subscribe: names, ...(first ? { node } : {}) }));
      return;
    }
    if (first || responseNonce === '') call.write(encodeRequest({ typeUrl, resourceNames: names, versionInfo, responseNonce, ...(first ? { node } : {}) }));
    else call.write(fastAck(typeUrl, names, versionInfo, responseNonce));
  };
  let complete = false;
  call.on('data', (buf: Buffer) => {
    const res = delta ? peekDelta(buf) : peekResponse(buf);
    if (!complete) configBytes += buf.length;
    send(res.typeUrl, res.versionInfo, res.nonce);
    if (res.typeUrl === TypeUrl.listener && !subs.has(TypeUrl.route)) {
      subs.set(TypeUrl.route, ['outbound']);
      send(TypeUrl.route);
    }
    if (res.typeUrl === TypeUrl.cluster && !subs.has(TypeUrl.endpoint)) {
      subs.set(TypeUrl.endpoint, myEds);
      send(TypeUrl.endpoint);
    }
    if (!seen.has(res.typeUrl)) {
      seen.add(res.typeUrl);
      if (seen.size === 4) {
        complete = true;
        ready++;
        if (ready === count) process.stdout.write(`${JSON.stringify({ ready: count, configBytesPerClient: Math.round(configBytes / count) })}\n`);
      }
    }
  });
  call.on('error', () => {});
  send(TypeUrl.listener, '', '', true);
  send(TypeUrl.cluster);
}

for (let i = 0; i < count; i++) {
  startClient(i);
  // Spread connection setup a little so the server is not hit by 1000 handshakes in one tick.
  if (i % 50 === 49) await new Promise((r) => setTimeout(r, 5));
}
process.on('SIGTERM', () => process.exit(0));
