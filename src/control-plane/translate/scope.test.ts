// Config scoping by declared dependencies: a Sidecar resource's egress hosts
// decide which services a proxy's routes, clusters and endpoints hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { translate } from './translate.ts';
import type { MeshState, ProxyNode, SidecarResource } from './model.ts';
import { validateResource } from '../../api/validate.ts';

const svc = (name: string, namespace = 'shop') => ({ metadata: { name, namespace }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 8080, protocol: 'http' as const }] } });
const wl = (name: string, app: string, namespace = 'shop') => ({ name, namespace, address: '10.0.0.1', labels: { app }, ports: [{ port: 8080, protocol: 'http' as const }] });
const sidecar = (name: string, spec: SidecarResource['spec'], namespace = 'shop'): SidecarResource => ({ kind: 'Sidecar', metadata: { name, namespace }, spec });

function state(sidecars: SidecarResource[]): MeshState {
  return {
    services: [svc('a'), svc('b'), svc('c'), svc('d', 'other')],
    // a splits 10% to c: c's cluster must come along even if c is not declared.
    httpRoutes: [{ metadata: { name: 'a', namespace: 'shop' }, spec: { parentRefs: [{ kind: 'Service', name: 'a', port: 8080 }], rules: [{ backendRefs: [{ name: 'a', port: 8080, weight: 90 }, { name: 'c', port: 8080, weight: 10 }] }] } }],
    grpcRoutes: [],
    tcpRoutes: [],
    workloads: [wl('a-1', 'a'), wl('b-1', 'b'), wl('c-1', 'c'), wl('d-1', 'd', 'other'), wl('client-1', 'client'), wl('batch-1', 'batch')],
    vips: new Map(),
    sidecars,
  };
}

const node = (workload: string): ProxyNode => ({ id: workload, kind: 'sidecar', namespace: 'shop', workload });
const hosts = (r: ReturnType<typeof translate>): string[] =>
  ((r.routes.find((x) => (x as { name: string }).name === 'outbound') as { virtualHosts: { name: string }[] }).virtualHosts.map((v) => v.name)).filter((n) => n.includes('.svc:')).sort();
const names = (xs: object[], field = 'name'): string[] => xs.map((x) => (x as Record<string, string>)[field]!).filter((n) => n.includes('.svc:')).sort();

test('a Sidecar scopes its workloads to the services they call; others get the whole mesh', () => {
  const s = state([sidecar('client', { selector: { app: 'client' }, egress: [{ hosts: ['./a', 'other/*'] }] })]);
  const scoped = translate(s, node('client-1'));
  assert.deepEqual(hosts(scoped), ['a.shop.svc:8080', 'd.other.svc:8080']);
  assert.deepEqual(names(scoped.clusters), ['a.shop.svc:8080', 'c.shop.svc:8080', 'd.other.svc:8080'], 'c: a route of a sends to it');
  assert.deepEqual(names(scoped.endpoints, 'clusterName'), ['a.shop.svc:8080', 'c.shop.svc:8080', 'd.other.svc:8080']);
  // The "no such port" answers (egress.ts) are scoped too: an undeclared service is not half-known.
  const outbound = scoped.routes.find((x) => (x as { name: string }).name === 'outbound') as { virtualHosts: { name: string }[] };
  assert.deepEqual(outbound.virtualHosts.map((v) => v.name).filter((n) => n.startsWith('no-such-port|')).sort(), ['no-such-port|other/d', 'no-such-port|shop/a']);

  const whole = translate(s, node('batch-1'));
  assert.deepEqual(hosts(whole), ['a.shop.svc:8080', 'b.shop.svc:8080', 'c.shop.svc:8080', 'd.other.svc:8080']);
  assert.equal(names(whole.clusters).length, 4);
});

test('the most specific Sidecar wins: selector over namespace-wide', () => {
  const s = state([
    sidecar('ns-wide', { egress: [{ hosts: ['./b'] }] }),
    sidecar('client', { selector: { app: 'client' }, egress: [{ hosts: ['*/d'] }] }),
  ]);
  assert.deepEqual(hosts(translate(s, node('client-1'))), ['d.other.svc:8080']);
  assert.deepEqual(hosts(translate(s, node('batch-1'))), ['b.shop.svc:8080']);
});

test('Sidecar validation names the field and the reason', () => {
  const bad = validateResource({
    apiVersion: 'trellis.dev/v1alpha1', kind: 'Sidecar', metadata: { name: 's', namespace: 'shop' },
    spec: { egress: [{ hosts: ['./a', 'no-slash', 'a/b/c', 'Shop/x'] }] },
  });
  assert.ok(!bad.ok);
  assert.deepEqual(bad.errors.map((e) => e.path), ['spec.egress[0].hosts[1]', 'spec.egress[0].hosts[2]', 'spec.egress[0].hosts[3]']);
  assert.match(bad.errors[0]!.message, /must be "namespace\/service"/);
  const missing = validateResource({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Sidecar', metadata: { name: 's' }, spec: {} });
  assert.ok(!missing.ok);
  assert.match(missing.errors[0]!.text, /egress/);
  assert.ok(validateResource({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Sidecar', metadata: { name: 's' }, spec: { selector: { app: 'x' }, egress: [{ hosts: ['./*', '*/*', 'other/d'] }] } }).ok);
});
