import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FilterChainSpec, ListenerSpec } from './config/types.ts';
import { candidateChains, chooseChain } from './listener.ts';

function chain(name: string, match: FilterChainSpec['match'], protocol: FilterChainSpec['protocol'] = 'auto'): FilterChainSpec {
  return { name, match, protocol, tcp: { statPrefix: name, clusters: [{ name: 'c', weight: 1 }] } };
}

const spec: ListenerSpec = {
  name: 'l', address: '0.0.0.0', port: 15001, direction: 'outbound', useOriginalDst: true,
  filterChains: [
    chain('pg', { destinationPort: 5432 }, 'opaque'),
    chain('net10', { prefixRanges: [{ address: '10.0.0.0', prefixLen: 8 }] }),
    chain('tls', { transportProtocol: 'tls' }),
    chain('http', { applicationProtocols: ['http/1.1', 'h2c'] }),
    chain('default', {}, 'opaque'),
  ],
};

test('candidateChains: destination port and prefix ranges (IPv4-mapped addresses too), in config order', () => {
  assert.deepEqual(candidateChains(spec, 5432, '192.168.1.1').map((c) => c.name), ['pg', 'tls', 'http', 'default']);
  assert.deepEqual(candidateChains(spec, 80, '::ffff:10.2.3.4').map((c) => c.name), ['net10', 'tls', 'http', 'default']);
  assert.deepEqual(candidateChains(spec, 80, '11.0.0.1').map((c) => c.name), ['tls', 'http', 'default']);
});

test('chooseChain: transport protocol and application protocols decide after detection', () => {
  const c = candidateChains(spec, 80, '11.0.0.1');
  assert.equal(chooseChain(c, 'tls')?.name, 'tls');
  assert.equal(chooseChain(c, 'http1')?.name, 'http');
  assert.equal(chooseChain(c, 'http2')?.name, 'http');
  assert.equal(chooseChain(c, 'opaque')?.name, 'default');
  assert.equal(chooseChain([chain('only-http', { applicationProtocols: ['h2c'] })], 'http1'), undefined);
});
