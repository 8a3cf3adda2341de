import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { hostsFromConfigDump, leaseAddress, LEASE_DIR, netnsName, startIdentityRelay } from './transparent.ts';

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
  // A control plane with another cluster domain: TCP services get names in it too.
  const other = JSON.parse(JSON.stringify(dump).replaceAll('svc.cluster.local', 'svc.mesh.example'));
  assert.equal(hostsFromConfigDump(other, 'default').get('db.data.svc.mesh.example'), '240.240.0.2');
  assert.equal(hostsFromConfigDump(other, 'default').has('db.data.svc.cluster.local'), false);
});

test('namespace names are bounded and safe', () => {
  assert.equal(netnsName('Reviews_1'), 'trl-reviews-1');
  assert.ok(netnsName('x'.repeat(100)).length <= 28);
});

test('identity relay: forwards the CSR and trust-bundle calls with their credentials, refuses the rest of the API', async (t) => {
  const seen: string[] = [];
  const api = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? '-'} ${body}`);
      res.writeHead(req.url === '/api/v1/identity/csr' ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: req.url }));
    });
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
  t.after(() => api.close());
  const relay = await startIdentityRelay(`http://127.0.0.1:${(api.address() as AddressInfo).port}`, '127.0.0.1');
  t.after(() => relay.close());
  const base = `http://127.0.0.1:${(relay.address() as AddressInfo).port}`;

  const csr = await fetch(`${base}/api/v1/identity/csr`, { method: 'POST', headers: { authorization: 'Bearer tjt_x', 'content-type': 'application/json' }, body: '{"csr":"pem"}' });
  assert.equal(csr.status, 200);
  assert.deepEqual(await csr.json(), { ok: '/api/v1/identity/csr' });
  assert.equal((await fetch(`${base}/api/v1/identity/trust-bundle`)).status, 404, 'the API\'s own status passes through');
  assert.deepEqual(seen, ['POST /api/v1/identity/csr Bearer tjt_x {"csr":"pem"}', 'GET /api/v1/identity/trust-bundle - ']);

  // Admin calls (the control plane would see the runner's loopback address) never leave the relay.
  for (const [method, p] of [['POST', '/api/v1/identity/join-tokens'], ['POST', '/api/v1/apply'], ['GET', '/api/v1/identity/csr'], ['DELETE', '/api/v1/registry/workloads/default/x']]) {
    const res = await fetch(`${base}${p}`, { method, ...(method === 'POST' ? { body: '{}' } : {}) });
    assert.equal(res.status, 403, `${method} ${p}`);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'PERMISSION_DENIED');
  }
  assert.equal(seen.length, 2);

  // The control plane away: 502 with the reason.
  api.close();
  api.closeAllConnections();
  const down = await fetch(`${base}/api/v1/identity/trust-bundle`);
  assert.equal(down.status, 502);
  assert.equal(((await down.json()) as { error: { code: string } }).error.code, 'UNAVAILABLE');
});

test('address leases: a lease whose namespace is gone is taken back, and its first owner\'s release leaves the new owner\'s lease alone', { skip: process.getuid?.() !== 0 ? 'needs root (/run/trellis)' : false }, () => {
  // Neither namespace exists, so the first lease is stale as soon as it is taken.
  const first = leaseAddress(`trl-lease-test-a-${process.pid}`);
  const second = leaseAddress(`trl-lease-test-b-${process.pid}`);
  const file = path.join(LEASE_DIR, second.ip);
  try {
    assert.equal(second.ip, first.ip, 'the stale lease was taken back');
    first.release();
    assert.equal(readFileSync(file, 'utf8'), `trl-lease-test-b-${process.pid}`, 'the first owner did not delete the new lease');
  } finally {
    second.release();
  }
  assert.equal(existsSync(file), false);
});
