import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBootstrapFile, parseBootstrap, type BootstrapResult } from './bootstrap.ts';
import { formatFieldError } from './field-error.ts';

function ok(r: BootstrapResult) {
  if (!r.ok) assert.fail(r.errors.map(formatFieldError).join('\n'));
  return r.bootstrap;
}

function errors(r: BootstrapResult): string[] {
  assert.equal(r.ok, false, 'expected failure');
  return r.ok ? [] : r.errors.map(formatFieldError);
}

const YAML_DOC = `
node:
  id: web-1
  cluster: web
  locality: { region: r1, zone: z1 }
  metadata: { namespace: default }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 15100 } }
static_resources:
  listeners:
    - name: out
      address: { socketAddress: { address: 127.0.0.1, portValue: 15101 } }
      filterChains:
        - filters:
            - name: hcm
              typedConfig:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                statPrefix: out
                rds: { routeConfigName: r }
  routes:
    - name: r
      virtualHosts:
        - { name: all, domains: ["*"], routes: [{ match: { prefix: / }, route: { cluster: c } }] }
  clusters:
    - { name: c, type: EDS }
  endpoints:
    - clusterName: c
      endpoints:
        - lbEndpoints:
            - endpoint: { address: { socketAddress: { address: 127.0.0.1, portValue: 8080 } } }
`;

test('bootstrap YAML: node, admin, static resources with the routes/endpoints extensions', () => {
  const b = ok(parseBootstrap(YAML_DOC, 'proxy.yaml'));
  assert.deepEqual(b.node, { id: 'web-1', cluster: 'web', locality: { region: 'r1', zone: 'z1', subZone: '' }, metadata: { namespace: 'default' } });
  assert.deepEqual(b.admin, { address: '127.0.0.1', port: 15100 });
  assert.equal(b.dynamicResources, undefined);
  assert.equal(b.config.listeners[0]!.port, 15101);
  assert.equal(b.config.routeConfigs.get('r')!.virtualHosts[0]!.name, 'all');
  assert.equal(b.config.endpoints.get('c')![0]!.endpoints[0]!.port, 8080);
  assert.match(b.config.version, /^[0-9a-f]{16}$/);
  assert.equal(ok(parseBootstrap(YAML_DOC)).config.version, b.config.version, 'version is a hash of the content');
  assert.notEqual(ok(parseBootstrap(`${YAML_DOC}\n# changed\n`)).config.version, b.config.version);
});

test('bootstrap JSON is accepted; admin defaults to 127.0.0.1:15000', () => {
  const json = JSON.stringify({
    staticResources: {
      clusters: [{ name: 'x', type: 'STATIC', loadAssignment: { clusterName: 'x', endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '127.0.0.1', portValue: 1 } } } }] }] } }],
    },
  });
  const b = ok(parseBootstrap(json, 'proxy.json'));
  assert.deepEqual(b.admin, { address: '127.0.0.1', port: 15000 });
  assert.ok(b.config.clusters.has('x'));
  assert.ok(b.node.id.startsWith('trellis-'));
  const withSecrets = ok(parseBootstrap(JSON.stringify({ static_resources: { secrets: [{ name: 'cert', tls_certificate: { certificate_chain: { filename: '/c.pem' } } }] } })));
  assert.deepEqual(withSecrets.secrets, [{ name: 'cert', tlsCertificate: { certificateChain: { filename: '/c.pem' } } }]);
});

test('bootstrap: YAML syntax errors name the file, line and column', () => {
  const e = errors(parseBootstrap('node:\n  id: a\n  cluster: [unclosed\nadmin: {}\n', 'bad.yaml'));
  assert.match(e[0]!, /^bad\.yaml:4:1: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a \]$/);
  const dup = errors(parseBootstrap('node: {}\nnode: {}\n', 'dup.yaml'));
  assert.match(dup[0]!, /^dup\.yaml:2:1: YAML syntax error: .*[Uu]nique/);
  const tab = errors(parseBootstrap('{"node": {"id": 1,,}}', 'x.json'));
  assert.match(tab[0]!, /^x\.json:1:\d+: YAML syntax error/);
});

test('bootstrap: field errors carry the staticResources path; dangling references are errors', () => {
  const e = errors(
    parseBootstrap(`
staticResources:
  clusters:
    - { name: c, type: STATIC, lbPolicy: FASTEST, loadAssignment: { endpoints: [] } }
  routes:
    - name: r
      virtualHosts: [{ name: v, domains: ["*"], routes: [{ match: { prefix: / }, route: { cluster: nope } }] }]
nodee: {}
`),
  );
  assert.deepEqual(e, [
    'nodee: unknown field (did you mean "node"?); not in the supported subset (docs/proxy-config.md)',
    'staticResources.clusters[0] (c): lbPolicy: must be one of ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM, MAGLEV (got "FASTEST")',
    'staticResources.routes[0] (r): virtual host "v": route names cluster "nope", which is not defined',
  ]);
});

test('bootstrap: dynamicResources as ads.address or Envoy adsConfig naming a static cluster', () => {
  const short = ok(parseBootstrap('node: { id: n }\ndynamicResources: { ads: { address: "127.0.0.1:15010" } }\n'));
  assert.deepEqual(short.dynamicResources, { ads: { address: '127.0.0.1:15010' } });
  // Several control-plane replicas, tried in turn.
  const replicas = ok(parseBootstrap('node: { id: n }\ndynamicResources: { ads: { address: "cp-0:15010, cp-1:15010" } }\n'));
  assert.deepEqual(replicas.dynamicResources, { ads: { address: 'cp-0:15010,cp-1:15010' } });
  const badList = parseBootstrap('node: { id: n }\ndynamicResources: { ads: { address: "cp-0:15010,cp-1" } }\n');
  assert.ok(!badList.ok && badList.errors.some((e) => /comma-separated list/.test(e.message)), JSON.stringify(badList));
  const envoy = ok(
    parseBootstrap(`
node: { id: n, cluster: c }
dynamic_resources:
  lds_config: { ads: {}, resource_api_version: V3 }
  cds_config: { ads: {}, resource_api_version: V3 }
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{ envoy_grpc: { cluster_name: xds } }]
static_resources:
  clusters:
    - name: xds
      type: STRICT_DNS
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: { http2_protocol_options: {} }
      load_assignment:
        cluster_name: xds
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: control-plane, port_value: 15010 } } } }] }]
`),
  );
  assert.deepEqual(envoy.dynamicResources, { ads: { address: 'control-plane:15010', apiType: 'GRPC' } });
  assert.equal(envoy.config.clusters.get('xds')!.protocol, 'http2');
  const google = ok(parseBootstrap('node: { id: n }\ndynamicResources: { adsConfig: { apiType: GRPC, grpcServices: [{ googleGrpc: { targetUri: "dns:///cp.local:15010", statPrefix: x } }] } }\n'));
  assert.deepEqual(google.dynamicResources, { ads: { address: 'cp.local:15010', apiType: 'GRPC' } });
  assert.match(errors(parseBootstrap('node: { id: n }\ndynamicResources: { ads: { address: "nope" } }\n'))[0]!, /^dynamicResources\.ads\.address: must be "host:port"/);
  assert.match(errors(parseBootstrap('node: { id: n }\ndynamicResources: { adsConfig: { grpcServices: [{ envoyGrpc: { clusterName: missing } }] } }\n'))[0]!, /adsConfig\.grpcServices\[0\]\.envoyGrpc\.clusterName: must name a static cluster/);
  assert.match(errors(parseBootstrap('dynamicResources: { ads: { address: "a:1" } }\n'))[0]!, /^node\.id: required when dynamicResources is set/);
  assert.deepEqual(ok(parseBootstrap('node: { id: n }\ndynamicResources: { adsConfig: { apiType: DELTA_GRPC, grpcServices: [{ googleGrpc: { targetUri: "a:1" } }] } }\n')).dynamicResources, { ads: { address: 'a:1', apiType: 'DELTA_GRPC' } });
  assert.match(errors(parseBootstrap('node: { id: n }\ndynamicResources: { ads: { address: "a:1", apiType: DELTA } }\n'))[0]!, /apiType/);
});

test('loadBootstrapFile: reads a file; a missing file is an error value', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-bootstrap-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'b.yaml');
  writeFileSync(file, YAML_DOC);
  assert.equal(ok(loadBootstrapFile(file)).node.id, 'web-1');
  const missing = errors(loadBootstrapFile(join(dir, 'nope.yaml')));
  assert.match(missing[0]!, /nope\.yaml: cannot read the bootstrap file: ENOENT/);
});

test('examples/proxy-bootstrap.yaml parses and has the documented shape', () => {
  const r = loadBootstrapFile(new URL('../../../examples/proxy-bootstrap.yaml', import.meta.url).pathname);
  const b = ok(r);
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(b.admin, { address: '127.0.0.1', port: 15000 });
  const out = b.config.listeners.find((l) => l.name === 'outbound')!;
  assert.equal(out.port, 15001);
  assert.equal(out.direction, 'outbound');
  assert.deepEqual(out.filterChains.map((c) => [c.name, c.protocol, c.tcp ? 'tcp' : 'http']), [
    ['postgres', 'opaque', 'tcp'],
    ['http', 'auto', 'http'],
  ]);
  const inbound = b.config.listeners.find((l) => l.name === 'inbound')!;
  assert.equal(inbound.port, 15006);
  assert.equal(inbound.direction, 'inbound');
  const routes = b.config.routeConfigs.get('outbound-routes')!.virtualHosts[0]!.routes;
  assert.deepEqual(routes.map((r) => [r.match.path, r.action.kind === 'route' ? r.action.clusters[0]!.name : '']), [
    [{ kind: 'prefix', value: '/v2' }, 'backend-v2'],
    [{ kind: 'prefix', value: '/' }, 'backend'],
  ]);
  assert.deepEqual(
    b.config.endpoints.get('backend')![0]!.endpoints.map((e) => `${e.address}:${e.port}`),
    ['127.0.0.1:8080', '127.0.0.1:8081'],
  );
  assert.equal(b.config.clusters.get('backend')!.lbPolicy, 'peak_ewma');
  assert.equal(b.config.clusters.get('backend-v2')!.lbPolicy, 'round_robin');
});

test('examples/sidecar-pair: both sidecars parse and fit on one machine', () => {
  const load = (f: string) => ok(loadBootstrapFile(new URL(`../../../examples/sidecar-pair/${f}`, import.meta.url).pathname));
  const client = load('client-sidecar.yaml');
  const server = load('server-sidecar.yaml');
  const target = client.config.endpoints.get('server')![0]!.endpoints[0]!;
  const inbound = server.config.listeners[0]!;
  assert.equal(`${target.address}:${target.port}`, `${inbound.address}:${inbound.port}`, 'the client sidecar targets the server sidecar inbound');
  const ports = [client.admin.port, server.admin.port, ...client.config.listeners.map((l) => l.port), ...server.config.listeners.map((l) => l.port)];
  assert.equal(new Set(ports).size, ports.length, 'no port collides');
});
