// A bare ADS stream for server tests: send DiscoveryRequests by hand, await
// DiscoveryResponses one by one (each wait bounded).
import * as grpc from '@grpc/grpc-js';
import { adsMethod, decodeResponse, encodeRequest } from '../../src/xds/ads-method.ts';
import type { DiscoveryResponse, NodeInput } from '../../src/xds/ads-method.ts';

export interface RawAdsStream {
  send(req: { typeUrl: string; resourceNames?: readonly string[]; responseNonce?: string; versionInfo?: string; node?: NodeInput; error?: string }): void;
  next(timeoutMs?: number): Promise<DiscoveryResponse>;
  /** Resolves with the status the stream ended with. */
  readonly ended: Promise<grpc.StatusObject>;
  /** Stop / restart reading (to build up backpressure on the server). */
  pause(): void;
  resume(): void;
  close(): void;
}

const AdsClient = grpc.makeGenericClientConstructor({ StreamAggregatedResources: adsMethod }, 'ads');

export function openRawAds(port: number): RawAdsStream {
  const client = new AdsClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = (client as unknown as { StreamAggregatedResources(): grpc.ClientDuplexStream<Buffer, Buffer> }).StreamAggregatedResources();
  const queue: DiscoveryResponse[] = [];
  let waiter: (() => void) | undefined;
  call.on('data', (buf: Buffer) => {
    queue.push(decodeResponse(buf));
    waiter?.();
  });
  call.on('error', () => {});
  const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  return {
    send(req) {
      call.write(
        encodeRequest({
          typeUrl: req.typeUrl,
          resourceNames: req.resourceNames ?? [],
          responseNonce: req.responseNonce ?? '',
          versionInfo: req.versionInfo ?? '',
          ...(req.node === undefined ? {} : { node: req.node }),
          ...(req.error === undefined ? {} : { errorDetail: { code: 3, message: req.error } }),
        }),
      );
    },
    async next(timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (queue.length === 0) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no DiscoveryResponse within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          waiter = () => {
            clearTimeout(t);
            resolve();
          };
        });
        waiter = undefined;
      }
      return queue.shift() as DiscoveryResponse;
    },
    ended,
    pause: () => call.pause(),
    resume: () => call.resume(),
    close() {
      call.cancel();
      client.close();
    },
  };
}
