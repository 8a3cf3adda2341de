import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostsFromConfigDump, netnsName } from './transparent.ts';

test('hosts from a config dump: HTTP virtual hosts and TCP VIP chains', () => {
  const dump = {
    config: {
      routeConfigs: {
        outbound: {
          virtualHosts: [
            { domains: ['reviews.default.svc.cluster.local:9080', 'reviews.default.svc:9080', 'reviews.default:9080', 'reviews:9080', '240.240.0.1:9080'] },
            { domains: ['novip.default.svc:80', 'novip.default.svc'] },
            { domains: ['*'] },
          ],
        },
      },
      listeners: [
        { name: 'outbound', filterChains: [{ name: 'tcp|db.data.svc:5432', match: { prefixRanges: [{ address: '240.240.0.2', prefixLen: 32 }] } }, { name: 'http|9080', match: {} }] },
      ],
    },
  };
  const hosts = hostsFromConfigDump(dump, 'default');
  assert.equal(hosts.get('reviews'), '240.240.0.1');
  assert.equal(hosts.get('reviews.default.svc.cluster.local'), '240.240.0.1');
  assert.equal(hosts.has('novip.default.svc'), false);
  assert.equal(hosts.get('db.data.svc'), '240.240.0.2');
  assert.equal(hosts.has('db'), false, 'short names only in the same namespace');
  assert.equal(hostsFromConfigDump(dump, 'data').get('db'), '240.240.0.2');
  assert.equal(hostsFromConfigDump(undefined).size, 0);
});

test('namespace names are bounded and safe', () => {
  assert.equal(netnsName('Reviews_1'), 'trl-reviews-1');
  assert.ok(netnsName('x'.repeat(100)).length <= 28);
});
