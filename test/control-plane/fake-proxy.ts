// A proxy on a raw ADS stream (test/util/xds-raw-stream.ts) that subscribes
// to CDS, then LDS, and answers the LDS response as told: ACK, NACK or
// nothing yet.
import type { TestContext } from 'node:test';
import type { ControlPlane } from '../../src/control-plane/control-plane.ts';
import { openRawAds, type RawAdsStream } from '../util/xds-raw-stream.ts';
import { TypeUrl } from '../../src/xds/protos.ts';

export type Answer = 'ack' | 'nack' | 'none';

export async function fakeProxy(t: TestContext, cp: ControlPlane, id: string, cluster: string, lds: Answer): Promise<{ stream: RawAdsStream; ldsVersion: string }> {
  const s = openRawAds(cp.xdsPort);
  t.after(() => s.close());
  s.send({ typeUrl: TypeUrl.cluster, node: { id, cluster, metadata: { trellis: { kind: 'sidecar', namespace: 'default' } } } });
  const cds = await s.next();
  s.send({ typeUrl: TypeUrl.cluster, versionInfo: cds.versionInfo, responseNonce: cds.nonce });
  s.send({ typeUrl: TypeUrl.listener });
  const ldsRes = await s.next();
  if (lds === 'ack') s.send({ typeUrl: TypeUrl.listener, versionInfo: ldsRes.versionInfo, responseNonce: ldsRes.nonce });
  if (lds === 'nack') s.send({ typeUrl: TypeUrl.listener, responseNonce: ldsRes.nonce, error: 'listener "outbound": filterChains[0]: unsupported filter "envoy.filters.network.mongo_proxy"' });
  return { stream: s, ldsVersion: ldsRes.versionInfo };
}
