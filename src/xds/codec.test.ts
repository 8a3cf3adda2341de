import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XdsCodecError, decodeMessage, encodeMessage, packAny, unpackAny } from './codec.ts';
import { TypeUrl } from './protos.ts';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

const listener = {
  name: 'outbound',
  address: { socketAddress: { address: '127.0.0.1', portValue: 15001 } },
  filterChains: [
    {
      filters: [
        {
          name: 'envoy.filters.network.http_connection_manager',
          typedConfig: {
            '@type': HCM,
            statPrefix: 'outbound',
            rds: { routeConfigName: 'echo', configSource: { ads: {}, resourceApiVersion: 'V3' } },
            httpFilters: [{ name: 'router', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            streamIdleTimeout: '300s',
          },
        },
      ],
    },
  ],
};

function throwsAt(fn: () => unknown, path: string, code: string, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof XdsCodecError, `expected XdsCodecError, got ${String(err)}`);
    assert.equal(err.path, path);
    assert.equal(err.code, code);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

test('round trip keeps a listener with nested Anys in proto3-JSON form', () => {
  const any = packAny('envoy.config.listener.v3.Listener', listener);
  assert.equal(any.type_url, TypeUrl.listener);
  assert.deepEqual(unpackAny(any), listener);
});

test('a misspelt field deep inside a nested Any throws with its path and a suggestion', () => {
  const bad = structuredClone(listener) as typeof listener & Record<string, unknown>;
  const hcm = bad.filterChains[0]!.filters[0]!.typedConfig as Record<string, unknown>;
  hcm.rds = { routeConfigNmae: 'echo', configSource: { ads: {} } };
  throwsAt(
    () => packAny('envoy.config.listener.v3.Listener', bad),
    'filterChains[0].filters[0].typedConfig<HttpConnectionManager>.rds.routeConfigNmae',
    'XDS_UNKNOWN_FIELD',
    /did you mean "routeConfigName"/,
  );
});

test('a misspelt top-level field throws (fromObject would drop it)', () => {
  throwsAt(() => encodeMessage('envoy.config.cluster.v3.Cluster', { name: 'c', conectTimeout: '1s' }), 'conectTimeout', 'XDS_UNKNOWN_FIELD', /connectTimeout/);
});

test('bad values name the field and the reason', () => {
  const C = 'envoy.config.cluster.v3.Cluster';
  throwsAt(() => encodeMessage(C, { name: 'c', connectTimeout: '5 seconds' }), 'connectTimeout', 'XDS_BAD_VALUE', /duration/);
  throwsAt(() => encodeMessage(C, { name: 'c', type: 'EDZ' }), 'type', 'XDS_BAD_VALUE', /not a value of DiscoveryType/);
  throwsAt(() => encodeMessage(C, { name: 7 }), 'name', 'XDS_BAD_VALUE', /expected a string/);
  throwsAt(() => encodeMessage(C, { name: 'c', type: 'EDS', clusterType: { name: 'x' } }), 'clusterType', 'XDS_BAD_VALUE', /same oneof/);
  throwsAt(() => encodeMessage(C, { name: 'c', name_x: 1 }), 'name_x', 'XDS_UNKNOWN_FIELD');
  throwsAt(() => encodeMessage(C, { name: 'c', perConnectionBufferLimitBytes: -1 }), 'perConnectionBufferLimitBytes', 'XDS_BAD_VALUE', /out of range/);
  throwsAt(
    () => encodeMessage('envoy.config.endpoint.v3.ClusterLoadAssignment', { clusterName: 'c', endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: 'a', portValue: 'x' } } } }] }] }),
    'endpoints[0].lbEndpoints[0].endpoint.address.socketAddress.portValue',
    'XDS_BAD_VALUE',
  );
  throwsAt(() => encodeMessage(C, { name: 'c', metadata: { filterMetadata: { x: 5 } } }), 'metadata.filterMetadata["x"]', 'XDS_BAD_VALUE', /Struct/);
});

test('Any needs a known type URL with a prefix', () => {
  const L = 'envoy.config.listener.v3.Listener';
  throwsAt(() => encodeMessage(L, { name: 'l', apiListener: { apiListener: { statPrefix: 'x' } } }), 'apiListener.apiListener.@type', 'XDS_BAD_VALUE');
  throwsAt(() => encodeMessage(L, { name: 'l', apiListener: { apiListener: { '@type': 'envoy.x.Y' } } }), 'apiListener.apiListener.@type', 'XDS_BAD_VALUE', /type\.googleapis\.com\/envoy\.x\.Y/);
  throwsAt(() => encodeMessage(L, { name: 'l', apiListener: { apiListener: { '@type': 'type.googleapis.com/no.Such' } } }), 'apiListener.apiListener.@type', 'XDS_UNKNOWN_TYPE');
  throwsAt(() => encodeMessage('no.Such', {}), '', 'XDS_UNKNOWN_TYPE');
});

test('well-known types: durations, wrappers, Struct, enums, 64-bit integers', () => {
  const cluster = {
    name: 'c',
    type: 'EDS',
    connectTimeout: { seconds: 1, nanos: 500_000_000 },
    maxRequestsPerConnection: { value: 7 },
    perConnectionBufferLimitBytes: 1024,
    metadata: { filterMetadata: { trellis: { version: 'v2', weight: 3, tags: ['a', null, true], nested: { x: 1 } } } },
    commonHttpProtocolOptions: { idleTimeout: '0.000001s', maxRequestsPerConnection: 3 },
    ringHashLbConfig: { minimumRingSize: '1024', maximumRingSize: 9007199254740993n.toString() },
    typedExtensionProtocolOptions: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicitHttpConfig: { http2ProtocolOptions: {} },
      },
      wrapped: { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '2s' },
    },
  };
  const json = unpackAny(packAny('envoy.config.cluster.v3.Cluster', cluster));
  assert.equal(json.connectTimeout, '1.500s');
  assert.equal(json.maxRequestsPerConnection, 7);
  assert.equal(json.perConnectionBufferLimitBytes, 1024);
  assert.deepEqual(json.metadata, cluster.metadata);
  assert.deepEqual(json.commonHttpProtocolOptions, { idleTimeout: '0.000001s', maxRequestsPerConnection: 3 });
  assert.deepEqual(json.ringHashLbConfig, { minimumRingSize: 1024, maximumRingSize: '9007199254740993' });
  assert.deepEqual((json.typedExtensionProtocolOptions as Record<string, unknown>).wrapped, { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '2s' });
  // snake_case proto names are accepted too, and the output is lowerCamelCase.
  const snake = decodeMessage('envoy.config.cluster.v3.Cluster', encodeMessage('envoy.config.cluster.v3.Cluster', { name: 'c', connect_timeout: '3s', lb_policy: 'RING_HASH' }));
  assert.deepEqual(snake, { name: 'c', connectTimeout: '3s', lbPolicy: 'RING_HASH' });
  // a field given in both spellings is an error
  throwsAt(() => encodeMessage('envoy.config.cluster.v3.Cluster', { connect_timeout: '3s', connectTimeout: '1s' }), 'connectTimeout', 'XDS_BAD_VALUE', /twice/);
  // null means "not set"
  assert.deepEqual(decodeMessage('envoy.config.cluster.v3.Cluster', encodeMessage('envoy.config.cluster.v3.Cluster', { name: 'c', connectTimeout: null })), { name: 'c' });
});

test('garbage bytes fail to decode with a code', () => {
  assert.throws(() => unpackAny({ type_url: TypeUrl.cluster, value: new Uint8Array([0x0a, 0xff, 0xff]) }), (e: unknown) => e instanceof XdsCodecError && e.code === 'XDS_DECODE_FAILED');
  assert.throws(() => unpackAny({ type_url: 'type.googleapis.com/x.Y', value: new Uint8Array() }), (e: unknown) => e instanceof XdsCodecError && e.code === 'XDS_UNKNOWN_TYPE');
});
