import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chainForSni, gatewayCertFiles } from './gateway-tls.ts';
import type { FilterChainSpec } from './config/types.ts';

const DOWNSTREAM = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const chain = (name: string, serverNames?: string[], files = true): FilterChainSpec => ({
  name,
  match: { transportProtocol: 'tls', ...(serverNames ? { serverNames } : {}) },
  protocol: 'auto',
  extensions: {
    transportSocket: {
      name: 'tls',
      typedConfig: {
        '@type': DOWNSTREAM,
        commonTlsContext: files ? { tlsCertificates: [{ certificateChain: { filename: `/c/${name}.crt` }, privateKey: { filename: `/c/${name}.key` } }] } : {},
      },
    },
  },
});

test('SNI picks the exact name, then the longest wildcard, then a chain without names, then the detected one', () => {
  const a = chain('a', ['a.example.com']);
  const wild = chain('wild', ['*.example.com']);
  const deeper = chain('deeper', ['*.eu.example.com']);
  const any = chain('any');
  const all = [a, wild, deeper, any];
  assert.equal(chainForSni(all, 'a.example.com', a).name, 'a');
  assert.equal(chainForSni(all, 'A.Example.com', wild).name, 'a');
  assert.equal(chainForSni(all, 'b.example.com', a).name, 'wild');
  assert.equal(chainForSni(all, 'x.eu.example.com', a).name, 'deeper');
  assert.equal(chainForSni(all, 'other.org', a).name, 'any');
  assert.equal(chainForSni(all, undefined, a).name, 'any');
  assert.equal(chainForSni([a, wild], 'other.org', a).name, 'a');
});

test('only chains naming certificate files are gateway chains (mesh mTLS chains are not)', () => {
  assert.deepEqual(gatewayCertFiles(chain('a', ['a.example.com'])), [{ cert: '/c/a.crt', key: '/c/a.key' }]);
  assert.deepEqual(gatewayCertFiles(chain('mesh', undefined, false)), []);
  assert.deepEqual(gatewayCertFiles({ name: 'plain', match: {}, protocol: 'auto' }), []);
});
