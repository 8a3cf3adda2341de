import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateResource } from './validate.ts';
import { parseYamlDocuments } from './yaml-documents.ts';
import { KINDS, resolveKind } from './kinds.ts';

const route = (spec: unknown, meta: Record<string, unknown> = { name: 'reviews' }) =>
  ({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: meta, spec });

function texts(obj: unknown, source?: string): string[] {
  const r = validateResource(obj, source === undefined ? {} : { source });
  assert.equal(r.ok, false, 'expected validation to fail');
  return r.ok ? [] : r.errors.map((e) => e.text);
}

test('HTTPRoute: negative weight names the exact field', () => {
  const obj = route({ rules: [{ backendRefs: [{ name: 'a', port: 80 }] }, { backendRefs: [{ name: 'b', port: 80, weight: -1 }] }] });
  assert.deepEqual(texts(obj), ['HTTPRoute default/reviews: spec.rules[1].backendRefs[0].weight: must be >= 0']);
  assert.deepEqual(texts(obj, 'file.yaml'), ['file.yaml: HTTPRoute default/reviews: spec.rules[1].backendRefs[0].weight: must be >= 0']);
});

test('HTTPRoute: weight upper bound, enum, unknown field with suggestion', () => {
  assert.deepEqual(texts(route({ rules: [{ backendRefs: [{ name: 'b', port: 80, weight: 1_000_001 }] }] })), [
    'HTTPRoute default/reviews: spec.rules[0].backendRefs[0].weight: must be <= 1000000',
  ]);
  assert.deepEqual(texts(route({ rules: [{ matches: [{ path: { type: 'Prefix', value: '/' } }] }] })), [
    'HTTPRoute default/reviews: spec.rules[0].matches[0].path.type: unsupported value "Prefix": must be one of Exact, PathPrefix, RegularExpression',
  ]);
  assert.deepEqual(texts(route({ rules: [{ bakendRefs: [] }] })), [
    'HTTPRoute default/reviews: spec.rules[0].bakendRefs: unknown field (did you mean "backendRefs"?)',
  ]);
  assert.deepEqual(texts(route({ hostname: ['x'] })), ['HTTPRoute default/reviews: spec.hostname: unknown field (did you mean "hostnames"?)']);
  assert.deepEqual(texts({ ...route({}), extra: 1 }), ['HTTPRoute default/reviews: extra: unknown field']);
});

test('HTTPRoute: cross-field rules', () => {
  assert.deepEqual(texts(route({ rules: [{ backendRefs: [{ name: 'b' }] }] })), [
    'HTTPRoute default/reviews: spec.rules[0].backendRefs[0].port: is required when the backend is a Service',
  ]);
  assert.deepEqual(texts(route({ rules: [{ filters: [{ type: 'RequestHeaderModifier', urlRewrite: { hostname: 'x' } }] }] })), [
    'HTTPRoute default/reviews: spec.rules[0].filters[0].requestHeaderModifier: is required when type is RequestHeaderModifier',
    'HTTPRoute default/reviews: spec.rules[0].filters[0].urlRewrite: must not be set when type is RequestHeaderModifier',
  ]);
  assert.deepEqual(texts(route({ rules: [{ matches: [{ path: { type: 'Exact', value: 'api' } }] }] })), [
    'HTTPRoute default/reviews: spec.rules[0].matches[0].path.value: must be an absolute path starting with "/"',
  ]);
  assert.deepEqual(texts(route({ rules: [{ timeouts: { request: '1s', backendRequest: '2s' } }] })), [
    'HTTPRoute default/reviews: spec.rules[0].timeouts.backendRequest: must be <= timeouts.request (1s)',
  ]);
  assert.deepEqual(texts(route({ rules: [{ timeouts: { request: '10 seconds' } }] })), [
    'HTTPRoute default/reviews: spec.rules[0].timeouts.request: must be a Gateway API duration such as 10s, 500ms or 1h30m',
  ]);
  assert.deepEqual(texts(route({ rules: [{ name: 'a' }, { name: 'a' }] })), ['HTTPRoute default/reviews: spec.rules[1].name: duplicate rule name "a"']);
  const manyMatches = Array.from({ length: 3 }, () => ({ matches: Array.from({ length: 50 }, () => ({ path: { value: '/x' } })) }));
  assert.deepEqual(texts(route({ rules: manyMatches })), ['HTTPRoute default/reviews: spec.rules: must have at most 128 matches in total across rules (has 150)']);
  assert.deepEqual(texts(route({ rules: [{ filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'm', port: 80 }, percent: 101 } }] }] })), [
    'HTTPRoute default/reviews: spec.rules[0].filters[0].requestMirror.percent: must be <= 100',
  ]);
});

test('defaults: namespace, weight, path match, parentRef group/kind', () => {
  const r = validateResource(route({ parentRefs: [{ name: 'gw' }], rules: [{ matches: [{}], backendRefs: [{ name: 'b', port: 80 }] }] }));
  assert.ok(r.ok);
  assert.equal(r.resource.metadata.namespace, 'default');
  assert.deepEqual(r.resource.spec, {
    parentRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }],
    rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ group: '', kind: 'Service', name: 'b', port: 80, weight: 1 }] }],
  });
  const empty = validateResource(route({}));
  assert.ok(empty.ok);
  assert.deepEqual(empty.resource.spec, { rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }] }] });
});

test('metadata: DNS-1123 names, namespaces and label syntax', () => {
  assert.deepEqual(texts(route({}, { name: 'Reviews' })), [
    "HTTPRoute default/Reviews: metadata.name: must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-' and '.', starting and ending with a letter or digit)",
  ]);
  assert.deepEqual(texts(route({}, { name: 'r', namespace: 'a.b' })), [
    "HTTPRoute a.b/r: metadata.namespace: must be a lowercase RFC 1123 label (a-z, 0-9 and '-', starting and ending with a letter or digit)",
  ]);
  assert.deepEqual(texts(route({}, { name: 'r', labels: { 'app.kubernetes.io/name': 'ok', '-bad': 'x', version: 'v 2', n: 3 } })), [
    "HTTPRoute default/r: metadata.labels[\"-bad\"]: key name must consist of letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
    "HTTPRoute default/r: metadata.labels.version: must be empty or consist of letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
    'HTTPRoute default/r: metadata.labels.n: must be a string (quote numbers and booleans in YAML)',
  ]);
  assert.deepEqual(texts(route({}, {})), ['HTTPRoute default/<no name>: metadata.name: is required']);
  assert.deepEqual(texts({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: '1svc' }, spec: { ports: [{ port: 80 }] } }), [
    "Service default/1svc: metadata.name: must be a lowercase RFC 1035 label (a-z, 0-9 and '-', starting with a letter, ending with a letter or digit)",
  ]);
});

test('kind and apiVersion errors', () => {
  assert.deepEqual(texts({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: {} }), [
    `Pod default/p: kind: unsupported value "Pod": must be one of ${KINDS.map((k) => k.kind).join(', ')}`,
  ]);
  assert.deepEqual(texts({ ...route({}), apiVersion: 'gateway.networking.k8s.io/v2' }), [
    'HTTPRoute default/reviews: apiVersion: unsupported value "gateway.networking.k8s.io/v2" for HTTPRoute: must be gateway.networking.k8s.io/v1',
  ]);
  const beta = validateResource({ ...route({}), apiVersion: 'gateway.networking.k8s.io/v1beta1' });
  assert.ok(beta.ok);
  assert.equal(beta.resource.apiVersion, 'gateway.networking.k8s.io/v1');
});

test('GRPCRoute, TCPRoute, Gateway, Service and Workload field paths', () => {
  const grpc = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GRPCRoute', metadata: { name: 'g', namespace: 'shop' } };
  assert.deepEqual(texts({ ...grpc, spec: { rules: [{ matches: [{ method: { type: 'Exact' } }, { method: { service: 'bad service' } }] }] } }), [
    'GRPCRoute shop/g: spec.rules[0].matches[0].method: one or both of service and method must be set',
    'GRPCRoute shop/g: spec.rules[0].matches[1].method.service: must be a fully qualified gRPC service name such as helloworld.Greeter',
  ]);
  assert.deepEqual(texts({ apiVersion: 'gateway.networking.k8s.io/v1alpha2', kind: 'TCPRoute', metadata: { name: 't' }, spec: { rules: [] } }), [
    'TCPRoute default/t: spec.rules: must have at least 1 item',
  ]);
  assert.deepEqual(texts({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'gw' }, spec: { gatewayClassName: 'trellis', listeners: [{ name: 'http', port: 70000, protocol: 'HTTP' }] } }), [
    'Gateway default/gw: spec.listeners[0].port: must be <= 65535',
  ]);
  const svc = { apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name: 'reviews' } };
  assert.deepEqual(texts({ ...svc, spec: { ports: [{ name: 'http', port: 80, protocol: 'udp' }, { name: 'http', port: 81 }] } }), [
    'Service default/reviews: spec.ports[0].protocol: unsupported value "udp": must be one of http, http2, grpc, tcp',
  ]);
  assert.deepEqual(texts({ ...svc, spec: { ports: [{ name: 'http', port: 80 }, { name: 'http', port: 80 }] } }), [
    'Service default/reviews: spec.ports[1].name: duplicate port name "http"',
    'Service default/reviews: spec.ports[1].port: duplicate port 80',
  ]);
  assert.deepEqual(texts({ ...svc, spec: { ports: [{ port: 80, targetPort: true }] } }), [
    'Service default/reviews: spec.ports[0].targetPort: must be an integer or a string',
  ]);
  const wl = validateResource({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Workload', metadata: { name: 'reviews-1', labels: { app: 'reviews' } }, spec: { address: '10.0.0.5', ports: [{ port: 9080 }] } });
  assert.ok(wl.ok);
  assert.equal((wl.resource.spec as { serviceAccount: string }).serviceAccount, 'default');
  assert.deepEqual(texts({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Workload', metadata: { name: 'w' }, spec: { address: 'not an address!' } }), [
    'Workload default/w: spec.address: must be an IP address or a DNS name',
  ]);
});

test('YAML documents: per-document values and field lines', () => {
  const text = [
    'apiVersion: gateway.networking.k8s.io/v1',
    'kind: HTTPRoute',
    'metadata: {name: a}',
    'spec: {}',
    '---',
    '# comment',
    'apiVersion: gateway.networking.k8s.io/v1',
    'kind: HTTPRoute',
    'metadata:',
    '  name: b',
    'spec:',
    '  rules:',
    '  - backendRefs:',
    '    - name: x',
    '      port: 80',
    '      weight: -5',
    '',
  ].join('\n');
  const parsed = parseYamlDocuments(text, 'routes.yaml');
  assert.ok(parsed.ok);
  assert.equal(parsed.documents.length, 2);
  const doc = parsed.documents[1];
  assert.ok(doc);
  assert.equal(doc.line, 7);
  const r = validateResource(doc.value, { source: 'routes.yaml', lineOf: doc.lineOf });
  assert.ok(!r.ok);
  assert.deepEqual(r.errors.map((e) => e.text), ['routes.yaml:16: HTTPRoute default/b: spec.rules[0].backendRefs[0].weight: must be >= 0']);
  const bad = parseYamlDocuments('a: [1, 2\n', 'bad.yaml');
  assert.ok(!bad.ok);
  assert.match(bad.error, /^bad\.yaml:\d+:\d+: invalid YAML: /);
});

test('kind aliases', () => {
  for (const alias of ['httproute', 'httproutes', 'hr', 'HTTPRoute', 'httproutes.gateway.networking.k8s.io']) assert.equal(resolveKind(alias)?.kind, 'HTTPRoute');
  assert.equal(resolveKind('svc')?.kind, 'Service');
  assert.equal(resolveKind('wl')?.kind, 'Workload');
  assert.equal(resolveKind('nope'), undefined);
});
