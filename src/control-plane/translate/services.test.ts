// Which workloads back which service port (Kubernetes Service semantics), as
// the EDS translation decides it: the one code path for endpoint selection.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildLoadAssignments, selectorMatches, serviceDomains } from './services.ts';
import type { MeshState, ServiceResource, WorkloadInstance } from './model.ts';

const wl = (name: string, address: string, labels: Record<string, string>, ports: WorkloadInstance['ports'], namespace = 'default'): WorkloadInstance => ({ name, namespace, address, labels, ports });

const workloads = [
  wl('reviews-v2-a', '10.0.0.3', { app: 'reviews', version: 'v2' }, [{ port: 9080, name: 'http' }]),
  wl('reviews-v1-a', '10.0.0.1', { app: 'reviews', version: 'v1' }, [{ port: 9080, name: 'http' }, { port: 9090, name: 'admin' }]),
  wl('reviews-v1-b', '10.0.0.2', { app: 'reviews', version: 'v1', extra: 'yes' }, [{ port: 9081, name: 'http' }]),
  wl('reviews-other-ns', '10.0.1.1', { app: 'reviews', version: 'v1' }, [{ port: 8080 }], 'other'),
  wl('ratings', '10.0.0.9', { app: 'ratings' }, [{ port: 80 }]),
];

const svc = (name: string, spec: ServiceResource['spec'], namespace = 'default'): ServiceResource => ({ metadata: { name, namespace }, spec });

function members(services: ServiceResource[]): Record<string, string[]> {
  const state: MeshState = { services, httpRoutes: [], grpcRoutes: [], tcpRoutes: [], workloads, vips: new Map() };
  const out: Record<string, string[]> = {};
  for (const [name, cla] of buildLoadAssignments(state)) {
    out[name] = (cla as { endpoints: { lbEndpoints: { endpoint: { address: { socketAddress: { address: string; portValue: number } } } }[] }[] }).endpoints
      .flatMap((l) => l.lbEndpoints.map((e) => `${e.endpoint.address.socketAddress.address}:${e.endpoint.address.socketAddress.portValue}`)).sort();
  }
  return out;
}

test('selector: every selector label must match; extra workload labels do not matter; empty selects nothing', () => {
  assert.equal(selectorMatches({ app: 'a' }, { app: 'a', v: '1' }), true);
  assert.equal(selectorMatches({ app: 'a', v: '2' }, { app: 'a', v: '1' }), false);
  assert.equal(selectorMatches({ app: 'a' }, {}), false);
  assert.equal(selectorMatches({ app: '' }, {}), false, 'a missing label is not an empty one');
  assert.equal(selectorMatches({ app: '' }, { app: '' }), true);
  assert.equal(selectorMatches({}, { app: 'a' }), false);
  assert.equal(selectorMatches(undefined, { app: 'a' }), false);
});

test('endpoints: selection within the namespace; numeric, digit-string, defaulted and named targetPorts', () => {
  assert.deepEqual(members([
    svc('reviews-v1', { selector: { app: 'reviews', version: 'v1' }, ports: [{ port: 80, targetPort: 9080 }, { port: 81, targetPort: '9081' }] }),
    svc('reviews', { selector: { app: 'reviews' }, ports: [{ port: 90, targetPort: 'admin' }, { port: 80, targetPort: 'http' }] }),
    svc('headless', { ports: [{ port: 80 }] }),
    svc('reviews', { selector: { app: 'reviews' }, ports: [{ port: 8080 }] }, 'other'),
  ]), {
    'headless.default.svc:80': [],
    // A named targetPort resolves per workload; one without that name is left out.
    'reviews.default.svc:80': ['10.0.0.1:9080', '10.0.0.2:9081', '10.0.0.3:9080'],
    'reviews.default.svc:90': ['10.0.0.1:9090'],
    // A number is used as is, on every selected workload.
    'reviews-v1.default.svc:80': ['10.0.0.1:9080', '10.0.0.2:9080'],
    'reviews-v1.default.svc:81': ['10.0.0.1:9081', '10.0.0.2:9081'],
    // targetPort defaults to port; only the Service's own namespace.
    'reviews.other.svc:8080': ['10.0.1.1:8080'],
  });
});

test('service names use the configured cluster domain', () => {
  const s = svc('reviews', { selector: { app: 'reviews' }, ports: [{ port: 9080 }] });
  assert.deepEqual(serviceDomains(s, 9080, 'default', undefined, 'cluster.local'), ['reviews.default.svc.cluster.local:9080', 'reviews.default.svc:9080', 'reviews.default:9080', 'reviews:9080']);
  assert.deepEqual(serviceDomains(s, 9080, 'shop', '240.240.0.1', 'mesh.example'), ['reviews.default.svc.mesh.example:9080', 'reviews.default.svc:9080', 'reviews.default:9080', '240.240.0.1:9080']);
});
