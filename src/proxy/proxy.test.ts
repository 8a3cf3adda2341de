// checkConfig's structural rules; the Proxy itself is tested end to end in
// test/proxy/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ProxyConfig } from './config/types.ts';
import { checkConfig } from './proxy.ts';

test('checkConfig names missing route configs and clusters, duplicate names and ports, empty chains', () => {
  const config: ProxyConfig = {
    version: 'v',
    routeConfigs: new Map(),
    clusters: new Map(),
    endpoints: new Map(),
    listeners: [
      { name: 'a', address: '127.0.0.1', port: 1000, direction: 'outbound', useOriginalDst: false, filterChains: [
        { name: 'h', match: {}, protocol: 'auto', http: { statPrefix: 'h', routeConfigName: 'nope' } },
        { name: 't', match: {}, protocol: 'opaque', tcp: { statPrefix: 't', clusters: [{ name: 'ghost', weight: 1 }] } },
        { name: 'both', match: {}, protocol: 'auto' },
      ] },
      { name: 'a', address: '127.0.0.1', port: 1000, direction: 'outbound', useOriginalDst: false, filterChains: [] },
    ],
  };
  const errors = checkConfig(config);
  const text = errors.join('\n');
  assert.match(text, /filterChains\[0\] \(h\)\.http\.routeConfigName: route configuration "nope" is not defined/);
  assert.match(text, /filterChains\[1\] \(t\)\.tcp\.clusters\[0\]\.name: cluster "ghost" is not defined/);
  assert.match(text, /filterChains\[2\] \(both\): exactly one of http \/ tcp is required/);
  assert.match(text, /listeners\[1\] \(a\)\.name: duplicate listener name "a"/);
  assert.match(text, /listeners\[1\] \(a\)\.filterChains: at least one filter chain is required/);
  assert.match(text, /127\.0\.0\.1:1000 is also used by listener "a"/);
  assert.deepEqual(checkConfig({ ...config, listeners: [] }), []);
});
