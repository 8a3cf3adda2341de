// Unit checks for the opaque TCP proxy's choices; the socket behaviour
// (half-close, resets, server-first) is tested end to end in
// test/proxy/tcp-through-proxy.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickWeighted } from './tcp-proxy.ts';
import { createStaticPicker } from './static-pick.ts';
import type { EndpointSpec, LocalityEndpoints, ProxyConfig } from './config/types.ts';

test('pickWeighted follows the weights and tolerates zero weights', () => {
  const seq = [0.0, 0.24, 0.26, 0.99];
  let i = 0;
  const rand = (): number => seq[i++]!;
  const cs = [{ name: 'a', weight: 1 }, { name: 'b', weight: 3 }];
  assert.deepEqual(seq.map(() => pickWeighted(cs, rand)), ['a', 'a', 'b', 'b']);
  assert.equal(pickWeighted([{ name: 'z', weight: 0 }, { name: 'y', weight: 0 }]), 'z');
  assert.equal(pickWeighted([]), undefined);
});

test('static picker: round robin over the best priority with usable endpoints', () => {
  const ep = (port: number, health: EndpointSpec['health'] = 'healthy'): EndpointSpec => ({ address: '127.0.0.1', port, weight: 1, health });
  const loc = (priority: number, endpoints: EndpointSpec[]): LocalityEndpoints => ({ locality: { region: '', zone: '', subZone: '' }, priority, weight: 1, endpoints });
  const config = {
    version: 'v', listeners: [], routeConfigs: new Map(), clusters: new Map(),
    endpoints: new Map([
      ['c', [loc(1, [ep(9)]), loc(0, [ep(1), ep(2, 'unhealthy'), ep(3, 'unknown')])]],
      ['down', [loc(0, [ep(4, 'unhealthy')])]],
    ]),
  } satisfies ProxyConfig;
  const pick = createStaticPicker(config);
  assert.deepEqual([pick('c'), pick('c'), pick('c')].map((t) => t?.port), [1, 3, 1]);
  assert.equal(pick('down'), undefined);
  assert.equal(pick('missing'), undefined);
});
