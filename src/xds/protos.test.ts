import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DESCRIPTOR_URL, RESOURCE_TYPE_URLS, ExtensionType, findType, typeForUrl } from './protos.ts';
import { buildDescriptor, includeDirs } from './protos-build.ts';

test('every resource and extension type is loaded', () => {
  for (const url of RESOURCE_TYPE_URLS) assert.ok(typeForUrl(url), url);
  for (const name of Object.values(ExtensionType)) assert.ok(findType(name), name);
  for (const name of ['envoy.service.discovery.v3.DiscoveryRequest', 'envoy.service.discovery.v3.DiscoveryResponse', 'google.protobuf.Struct', 'google.protobuf.UInt32Value', 'envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality']) {
    assert.ok(findType(name), name);
  }
  assert.equal(findType('no.such.Type'), undefined);
});

test('the committed descriptor matches a fresh build from the shipped protos', (t) => {
  const dirs = includeDirs();
  if (dirs === undefined) {
    t.skip('@grpc/grpc-js-xds is not installed');
    return;
  }
  assert.equal(buildDescriptor(dirs), readFileSync(DESCRIPTOR_URL, 'utf8'), 'run: node src/xds/protos-build.ts');
});
