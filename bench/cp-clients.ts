// Child process of `npm run bench:control-plane`: many simulated sidecars,
// each one ADS stream on its own HTTP/2 connection, subscribing as a Trellis
// sidecar does (LDS and CDS wildcard, then RDS "outbound" and EDS for every
// cluster) and ACKing every response at once. They do not decode resources:
// the benchmark measures the control plane, not the clients.
import * as grpc from '@grpc/grpc-js';
import { adsMethod, decodeResponse, encodeRequest } from '../src/xds/ads-method.ts';
import { TypeUrl } from '../src/xds/protos.ts';

const [portArg, countArg, offsetArg, servicesArg] = process.argv.slice(2);
const port = Number(portArg);
const count = Number(countArg);
const offset = Number(offsetArg);
const services = Number(servicesArg);

const AdsClient = grpc.makeGenericClientConstructor({ StreamAggregatedResources: adsMethod }, 'ads');
const edsNames = Array.from({ length: services }, (_, i) => `svc-${i}.default.svc:8080`);
let ready = 0;

function startClient(i: number): void {
  const client = new AdsClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  const call = (client as unknown as { StreamAggregatedResources(): grpc.ClientDuplexStream<Buffer, Buffer> }).StreamAggregatedResources();
  const w = Math.floor((offset + i) / 2);
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
    call.write(encodeRequest({ typeUrl, resourceNames: subs.get(typeUrl) ?? [], versionInfo, responseNonce, ...(first ? { node } : {}) }));
  };
  call.on('data', (buf: Buffer) => {
    const res = decodeResponse(buf);
    send(res.typeUrl, res.versionInfo, res.nonce);
    if (res.typeUrl === TypeUrl.listener && !subs.has(TypeUrl.route)) {
      subs.set(TypeUrl.route, ['outbound']);
      send(TypeUrl.route);
    }
    if (res.typeUrl === TypeUrl.cluster && !subs.has(TypeUrl.endpoint)) {
      subs.set(TypeUrl.endpoint, edsNames);
      send(TypeUrl.endpoint);
    }
    if (!seen.has(res.typeUrl)) {
      seen.add(res.typeUrl);
      if (seen.size === 4) {
        ready++;
        if (ready === count) process.stdout.write(`${JSON.stringify({ ready: count })}\n`);
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
