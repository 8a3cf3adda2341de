import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeResponse, encodeResponse } from './ads-method.ts';
import { packAny } from './codec.ts';
import { requireType } from './protos.ts';

test('the hand-written DiscoveryResponse encoder writes the bytes protobufjs writes, and decodes back', () => {
  const T = requireType('envoy.service.discovery.v3.DiscoveryResponse');
  const big = packAny('envoy.config.cluster.v3.Cluster', { name: 'c'.repeat(300), connectTimeout: '1s', type: 'EDS', edsClusterConfig: { edsConfig: { ads: {} } } });
  const small = packAny('envoy.config.endpoint.v3.ClusterLoadAssignment', { clusterName: 'reviews.default.svc:9080' });
  const cases = [
    { versionInfo: 'v1', resources: [big, small], typeUrl: 'type.googleapis.com/envoy.config.cluster.v3.Cluster', nonce: '7-1', controlPlane: 'cp-1' },
    { versionInfo: '', resources: [], typeUrl: 'type.googleapis.com/envoy.config.listener.v3.Listener', nonce: '1-2' },
    { versionInfo: 'x'.repeat(200), resources: [small], typeUrl: 't', nonce: 'n', controlPlane: '' },
  ];
  for (const res of cases) {
    const wire: Record<string, unknown> = { version_info: res.versionInfo, resources: res.resources.map((r) => ({ type_url: r.type_url, value: r.value })), type_url: res.typeUrl, nonce: res.nonce };
    if (res.controlPlane !== undefined) wire.control_plane = { identifier: res.controlPlane };
    const expected = Buffer.from(T.encode(wire).finish());
    const got = encodeResponse(res);
    assert.deepEqual(got, expected, `case nonce ${res.nonce}`);
    // Twice: the cached resource fields give the same bytes.
    assert.deepEqual(encodeResponse(res), expected);
    const back = decodeResponse(got);
    assert.equal(back.versionInfo, res.versionInfo);
    assert.equal(back.nonce, res.nonce);
    assert.deepEqual(back.resources.map((r) => Buffer.from(r.value)), res.resources.map((r) => Buffer.from(r.value)));
  }
});

test('the hand-written DiscoveryRequest reader: every field, names matched by bytes and interned, interleaved names, malformed input', async () => {
  const { decodeRequest, encodeRequest } = await import('./ads-method.ts');
  const { NO_NAMES } = await import('./resource-names.ts');
  const names = Array.from({ length: 50 }, (_, i) => `svc-${i}.default.svc:9080`);
  const first = encodeRequest({
    versionInfo: 'v9', resourceNames: names, typeUrl: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment', responseNonce: '3-4',
    node: { id: 'default/reviews-1', cluster: 'reviews', metadata: { trellis: { kind: 'sidecar' } } },
    errorDetail: { code: 3, message: 'bad cluster' },
  });
  const a = decodeRequest(first);
  assert.equal(a.versionInfo, 'v9');
  assert.deepEqual(a.resourceNames, names);
  assert.equal(a.typeUrl, 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment');
  assert.equal(a.responseNonce, '3-4');
  assert.equal(a.node?.id, 'default/reviews-1');
  assert.deepEqual(a.node?.metadata, { trellis: { kind: 'sidecar' } });
  assert.deepEqual(a.errorDetail, { code: 3, message: 'bad cluster' });
  assert.equal(a.names.set.size, 50);
  assert.equal(a.names.wildcard, false);
  assert.deepEqual(a.names.sorted(), [...names].sort());

  // An ACK with the same names, matched against the stream's list: that very list comes back.
  const ack = encodeRequest({ versionInfo: 'v10', resourceNames: names, typeUrl: a.typeUrl, responseNonce: '3-5' });
  const b = decodeRequest(ack, [a.names]);
  assert.equal(b.names, a.names);
  assert.equal(b.resourceNames, a.resourceNames);
  assert.equal(b.versionInfo, 'v10');
  assert.equal(b.responseNonce, '3-5');
  assert.equal(b.typeUrl, a.typeUrl);
  // Another stream with the same subscription shares the interned list, without `known`.
  assert.equal(decodeRequest(ack).names, a.names);
  // One name more (the list's bytes are a prefix) or one less: decoded afresh, not matched.
  const more = decodeRequest(encodeRequest({ versionInfo: '', resourceNames: [...names, 'new'], typeUrl: a.typeUrl, responseNonce: '' }), [a.names]);
  assert.notEqual(more.names, a.names);
  assert.equal(more.resourceNames.length, 51);
  assert.equal(more.resourceNames[50], 'new');
  const fewer = decodeRequest(encodeRequest({ versionInfo: '', resourceNames: names.slice(0, 49), typeUrl: a.typeUrl, responseNonce: '' }), [a.names, more.names]);
  assert.equal(fewer.resourceNames.length, 49);
  assert.equal(decodeRequest(encodeRequest({ versionInfo: '', resourceNames: [], typeUrl: 't', responseNonce: '' }), [a.names]).names, NO_NAMES);
  assert.equal(decodeRequest(encodeRequest({ versionInfo: '', resourceNames: ['*'], typeUrl: 't', responseNonce: '' })).names.wildcard, true);

  // Names split by another field (legal protobuf): not matchable by bytes, still all decoded.
  const s = (field: number, v: string): Buffer => { const b = Buffer.from(v); return Buffer.concat([Buffer.from([(field << 3) | 2, b.length]), b]); };
  const odd = decodeRequest(Buffer.concat([s(3, 'a'), s(4, 'T'), s(3, 'b'), Buffer.from([0x38, 0x01])]));
  assert.deepEqual(odd.resourceNames, ['a', 'b']);
  assert.equal(odd.typeUrl, 'T');
  assert.equal(odd.names.bytes, null);
  // A known list matched first, then more names later in the message: decoded whole.
  const ab = decodeRequest(Buffer.concat([s(3, 'a'), s(3, 'b')]));
  const split = decodeRequest(Buffer.concat([s(3, 'a'), s(3, 'b'), s(4, 'T'), s(3, 'c')]), [ab.names]);
  assert.deepEqual(split.resourceNames, ['a', 'b', 'c']);
  assert.equal(split.typeUrl, 'T');

  assert.throws(() => decodeRequest(Buffer.from([0x1a, 0x10, 0x61])), /past the end/);
  assert.throws(() => decodeRequest(Buffer.from([0x1b])), /wire type 3/);
  assert.throws(() => decodeRequest(Buffer.from([0x1a])), /truncated/);
});
