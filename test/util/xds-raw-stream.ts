// A bare ADS stream for server tests: send DiscoveryRequests by hand, await
// DiscoveryResponses one by one (each wait bounded).
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { adsMethod, decodeResponse, encodeRequest } from '../../src/xds/ads-method.ts';
import type { DiscoveryResponse, NodeInput } from '../../src/xds/ads-method.ts';
import { deltaAdsMethod, decodeDeltaResponse, encodeDeltaRequest } from '../../src/xds/delta-method.ts';
import type { DeltaDiscoveryResponse } from '../../src/xds/delta-method.ts';

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

/** `ownConnection`: not shared with other streams to the same server (a
 * paused stream then stalls only itself). */
export function openRawAds(port: number, opts: { ownConnection?: boolean } = {}): RawAdsStream {
  const client = new AdsClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), opts.ownConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {});
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

/** An ADS stream that sends one request and never reads a byte of the
 * answer, on its own HTTP/2 connection: the server's writes to it stop once
 * the stream's flow-control window (64 KiB) is full. Returns its close(). */
export function openStalledAds(port: number, req: { typeUrl: string; resourceNames?: readonly string[]; node: NodeInput }): () => void {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  const stream = session.request({
    ':method': 'POST',
    ':path': '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  stream.on('error', () => {});
  stream.pause();
  const msg = encodeRequest({ typeUrl: req.typeUrl, resourceNames: req.resourceNames ?? [], responseNonce: '', versionInfo: '', node: req.node });
  const frame = Buffer.alloc(5 + msg.length);
  frame.writeUInt32BE(msg.length, 1);
  msg.copy(frame, 5);
  stream.write(frame);
  return () => {
    stream.destroy();
    session.destroy();
  };
}

export interface RawDeltaStream {
  send(req: { typeUrl: string; subscribe?: readonly string[]; unsubscribe?: readonly string[]; initialVersions?: ReadonlyMap<string, string>; responseNonce?: string; node?: NodeInput; error?: string }): void;
  next(timeoutMs?: number): Promise<DeltaDiscoveryResponse>;
  /** Nothing arrives within `ms`. */
  quiet(ms: number): Promise<boolean>;
  /** Resolves with the status the stream ended with. */
  readonly ended: Promise<grpc.StatusObject>;
  close(): void;
}

const DeltaClient = grpc.makeGenericClientConstructor({ DeltaAggregatedResources: deltaAdsMethod }, 'delta');

/** A bare DeltaAggregatedResources stream: send DeltaDiscoveryRequests by
 * hand, await DeltaDiscoveryResponses one by one (each wait bounded). */
export function openRawDeltaAds(port: number): RawDeltaStream {
  const client = new DeltaClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = (client as unknown as { DeltaAggregatedResources(): grpc.ClientDuplexStream<Buffer, Buffer> }).DeltaAggregatedResources();
  const queue: DeltaDiscoveryResponse[] = [];
  let waiter: (() => void) | undefined;
  call.on('data', (buf: Buffer) => {
    queue.push(decodeDeltaResponse(buf));
    waiter?.();
  });
  call.on('error', () => {});
  const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  const wait = async (timeoutMs: number): Promise<boolean> => {
    const deadline = Date.now() + timeoutMs;
    while (queue.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      waiter = undefined;
    }
    return true;
  };
  return {
    send(req) {
      call.write(
        encodeDeltaRequest({
          typeUrl: req.typeUrl,
          subscribe: req.subscribe ?? [],
          unsubscribe: req.unsubscribe ?? [],
          ...(req.initialVersions === undefined ? {} : { initialVersions: req.initialVersions }),
          responseNonce: req.responseNonce ?? '',
          ...(req.node === undefined ? {} : { node: req.node }),
          ...(req.error === undefined ? {} : { errorDetail: { code: 3, message: req.error } }),
        }),
      );
    },
    async next(timeoutMs = 5000) {
      if (!(await wait(timeoutMs))) throw new Error(`no DeltaDiscoveryResponse within ${timeoutMs} ms`);
      return queue.shift() as DeltaDiscoveryResponse;
    },
    async quiet(ms) {
      return !(await wait(ms));
    },
    ended,
    close() {
      call.cancel();
      client.close();
    },
  };
}
