// ReDoS (issue 13): a route regex with nested quantifiers must not stall the
// proxy. `^/redos/(a+)+$` against a 30-character non-matching path took 6.9 s
// with the backtracking engine and blocked every other request; regexes are
// now matched with linear-time semantics (src/lib/linear-regex.ts), and the
// patterns the linear engine cannot run are refused, naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProxyConfig } from '../../src/proxy/config/envoy.ts';
import { startProxy } from '../../src/proxy/proxy.ts';
import { validateResource } from '../../src/api/validate.ts';
import { addr, cluster, HCM_TYPE, startApp, request } from '../authz/kit.ts';

function config(appPort: number, regex: string) {
  return buildProxyConfig({
    version: 'redos',
    listeners: [{
      name: 'in', address: addr(0),
      filterChains: [{ filters: [{ name: 'hcm', typedConfig: {
        '@type': HCM_TYPE, statPrefix: 'in',
        routeConfig: { name: 'r', virtualHosts: [{ name: 'v', domains: ['*'], routes: [
          { match: { safeRegex: { regex } }, route: { cluster: 'app', timeout: '0s' } },
          { match: { prefix: '/' }, route: { cluster: 'app', timeout: '0s' } },
        ] }] },
        httpFilters: [{ name: 'envoy.filters.http.router' }],
      } }] }],
    }],
    clusters: [cluster('app', appPort)],
  });
}

test('a nested-quantifier route regex answers in well under 100 ms and does not stall other requests', async (t) => {
  const app = await startApp(t);
  const built = config(app, '/redos/(a+)+');
  assert.ok(built.ok, JSON.stringify(built));
  const r = await startProxy({ config: built.config, node: { id: 'redos', cluster: 'redos', locality: { region: '', zone: '', subZone: '' }, metadata: {} }, admin: false });
  assert.ok(r.ok);
  t.after(() => r.proxy.stop({ drainMs: 0 }));
  const port = r.proxy.ports.get('in')!;
  await request(port, { path: '/warm' });
  const evil = `/redos/${'a'.repeat(30)}b`;
  const t0 = performance.now();
  const [bad, other] = await Promise.all([
    request(port, { path: evil }),
    // Sent right after: on the backtracking engine it waited the whole 6.9 s.
    new Promise<number>((resolve, reject) => setTimeout(() => {
      const s = performance.now();
      request(port, { path: '/other' }).then(() => resolve(performance.now() - s), reject);
    }, 5)),
  ]);
  const took = performance.now() - t0;
  assert.equal(bad.status, 200); // the catch-all route
  t.diagnostic(`ReDoS path answered in ${took.toFixed(1)} ms; the concurrent request in ${other.toFixed(1)} ms`);
  // Generous bounds for a loaded 2-core machine; the old engine needed seconds.
  assert.ok(took < 500, `the ReDoS path took ${took} ms`);
  assert.ok(other < 500, `the other request took ${other} ms`);
  // A much longer path stays linear.
  const t1 = performance.now();
  assert.equal((await request(port, { path: `/redos/${'a'.repeat(10_000)}b` })).status, 200);
  assert.ok(performance.now() - t1 < 1000);
  // And the regex still matches what it should.
  assert.equal(JSON.parse((await request(port, { path: '/redos/aaa' })).body).path, '/redos/aaa');
});

test('patterns the linear engine cannot run are refused by the proxy and by the API, naming the field', () => {
  for (const [regex, why] of [['/(a)\\1', /linear time/], ['/x(?=y)', /linear time/], ['/x{1000}', /linear time/], ['(?i)/x', /invalid regular expression/]] as const) {
    const b = config(1, regex);
    assert.ok(!b.ok, regex);
    const text = JSON.stringify(b);
    assert.match(text, /routes\[0\]\.match\.safeRegex\.regex/, text);
    assert.match(text, why);
  }
  const route = (path: object, headers: object[] = []) => ({
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'shop' },
    spec: { parentRefs: [{ name: 'web' }], rules: [{ matches: [{ path, headers }], backendRefs: [{ name: 'web', port: 80 }] }] },
  });
  const bad = validateResource(route({ type: 'RegularExpression', value: '/(a)\\1' }));
  assert.ok(!bad.ok);
  assert.match(JSON.stringify(bad), /spec\.rules\[0\]\.matches\[0\]\.path\.value.*linear time/);
  const badHeader = validateResource(route({ type: 'PathPrefix', value: '/' }, [{ type: 'RegularExpression', name: 'x-a', value: '(?<=a)(b)\\1' }]));
  assert.ok(!badHeader.ok);
  assert.match(JSON.stringify(badHeader), /spec\.rules\[0\]\.matches\[0\]\.headers\[0\]\.value/);
  assert.ok(validateResource(route({ type: 'RegularExpression', value: '/redos/(a+)+' })).ok, 'nested quantifiers are fine: matched in linear time');
});
