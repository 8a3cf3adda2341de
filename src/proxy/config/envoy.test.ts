import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildProxyConfig,
  formatErrors,
  formatFieldError,
  parseCluster,
  parseClusterLoadAssignment,
  parseListener,
  parseRouteConfiguration,
  type Parsed,
} from './envoy.ts';
import { parseDuration } from './duration.ts';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
const HPO = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

function ok<T>(r: Parsed<T>): T {
  if (!r.ok) assert.fail(`expected success, got:\n${formatErrors(r.errors)}`);
  return r.value;
}

function errs<T>(r: Parsed<T>): string[] {
  assert.equal(r.ok, false, 'expected a parse failure');
  return r.ok ? [] : r.errors.map(formatFieldError);
}

function hcm(extra: Record<string, unknown> = {}) {
  return { '@type': HCM, statPrefix: 'http', rds: { routeConfigName: 'rc' }, httpFilters: [{ name: 'envoy.filters.http.router' }], ...extra };
}

function listener(extra: Record<string, unknown> = {}) {
  return {
    name: 'outbound',
    address: { socketAddress: { address: '127.0.0.1', portValue: 15001 } },
    trafficDirection: 'OUTBOUND',
    filterChains: [{ name: 'http', filters: [{ name: 'envoy.filters.network.http_connection_manager', typedConfig: hcm() }] }],
    ...extra,
  };
}

function staticCluster(name: string, port = 8080, extra: Record<string, unknown> = {}) {
  return {
    name,
    type: 'STATIC',
    loadAssignment: { clusterName: name, endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '127.0.0.1', portValue: port } } } }] }] },
    ...extra,
  };
}

// ---- durations ----

test('durations: strings, {seconds, nanos}, and errors', () => {
  assert.deepEqual(parseDuration('1.5s'), { ok: true, ms: 1500 });
  assert.deepEqual(parseDuration('0s'), { ok: true, ms: 0 });
  assert.deepEqual(parseDuration('0.000250s'), { ok: true, ms: 0.25 });
  assert.deepEqual(parseDuration({ seconds: '2', nanos: 500_000_000 }), { ok: true, ms: 2500 });
  assert.deepEqual(parseDuration({ seconds: 3 }), { ok: true, ms: 3000 });
  assert.equal(parseDuration('1500ms').ok, false);
  assert.equal(parseDuration(1.5).ok, false);
  assert.equal(parseDuration('-1s').ok, false);
  assert.equal(parseDuration({ seconds: 1, nano: 2 }).ok, false);
});

// ---- listeners ----

test('listener: address, direction, original dst, HCM fields', () => {
  const l = ok(
    parseListener(
      listener({
        useOriginalDst: true,
        filterChains: [
          {
            name: 'http',
            filterChainMatch: { destinationPort: 80, prefixRanges: [{ addressPrefix: '10.0.0.0', prefixLen: 8 }] },
            filters: [
              {
                name: 'hcm',
                typedConfig: hcm({
                  codecType: 'HTTP2',
                  requestTimeout: '30s',
                  commonHttpProtocolOptions: { idleTimeout: '300s' },
                  via: 'trellis',
                  accessLog: [{ name: 'x' }],
                }),
              },
            ],
          },
        ],
      }),
    ),
  );
  assert.equal(l.spec.name, 'outbound');
  assert.equal(l.spec.address, '127.0.0.1');
  assert.equal(l.spec.port, 15001);
  assert.equal(l.spec.direction, 'outbound');
  assert.equal(l.spec.useOriginalDst, true);
  const c = l.spec.filterChains[0]!;
  assert.deepEqual(c.match, { destinationPort: 80, prefixRanges: [{ address: '10.0.0.0', prefixLen: 8 }] });
  assert.equal(c.protocol, 'http2');
  assert.deepEqual(c.http, { statPrefix: 'http', routeConfigName: 'rc', via: 'trellis', requestTimeoutMs: 30_000, idleTimeoutMs: 300_000 });
});

test('listener: inbound, gateway metadata, default direction', () => {
  assert.equal(ok(parseListener(listener({ trafficDirection: 'INBOUND' }))).spec.direction, 'inbound');
  assert.equal(ok(parseListener(listener({ trafficDirection: undefined }))).spec.direction, 'outbound');
  const gw = ok(parseListener(listener({ trafficDirection: 'INBOUND', metadata: { filterMetadata: { trellis: { direction: 'gateway' } } } })));
  assert.equal(gw.spec.direction, 'gateway');
  const bad = errs(parseListener(listener({ metadata: { filterMetadata: { trellis: { direction: 'sideways' } } } })));
  assert.match(bad[0]!, /^listener \(outbound\): metadata\.filterMetadata\.trellis\.direction: must be "gateway"/);
});

test('listener: tcp_proxy chains are opaque unless the match needs client bytes; chains ordered by specificity', () => {
  const tcp = (cluster: string) => ({ name: 'tcp', typedConfig: { '@type': TCP, statPrefix: 'tcp', cluster, idleTimeout: '60s' } });
  const l = ok(
    parseListener(
      listener({
        filterChains: [
          { name: 'catch-all', filters: [tcp('a')] },
          { name: 'tls', filterChainMatch: { transportProtocol: 'tls', serverNames: ['db.example.com'] }, filters: [tcp('b')] },
          { name: 'mysql', filterChainMatch: { destinationPort: 3306 }, filters: [tcp('c')] },
        ],
        defaultFilterChain: { filters: [tcp('d')] },
      }),
    ),
  );
  assert.deepEqual(
    l.spec.filterChains.map((c) => [c.name, c.protocol]),
    [
      ['mysql', 'opaque'],
      ['tls', 'auto'],
      ['catch-all', 'opaque'],
      ['default', 'opaque'],
    ],
  );
  assert.deepEqual(l.spec.filterChains[0]!.tcp, { statPrefix: 'tcp', clusters: [{ name: 'c', weight: 1 }], idleTimeoutMs: 60_000 });
  assert.deepEqual(l.spec.filterChains[1]!.match, { transportProtocol: 'tls', serverNames: ['db.example.com'] });
  const alpn = ok(parseListener(listener({ filterChains: [{ filterChainMatch: { applicationProtocols: ['h2', 'http/1.1'], transportProtocol: 'raw_buffer' }, filters: [tcp('a')] }] })));
  assert.deepEqual(alpn.spec.filterChains[0]!.match, { transportProtocol: 'raw_buffer', applicationProtocols: ['h2', 'http/1.1'] });
  assert.equal(alpn.spec.filterChains[0]!.protocol, 'auto');
  assert.match(errs(parseListener(listener({ filterChains: [{ filterChainMatch: { transportProtocol: 'quic' }, filters: [tcp('a')] }] })))[0]!, /filterChainMatch\.transportProtocol: must be tls or raw_buffer \(got "quic"\)$/);
  assert.match(errs(parseListener(listener({ filterChains: [{ filterChainMatch: { prefixRanges: [{ addressPrefix: '10.0.0', prefixLen: 8 }] }, filters: [tcp('a')] }] })))[0]!, /prefixRanges\[0\]\.addressPrefix: must be an IPv4 or IPv6 address/);
});

test('listener: tcp weightedClusters and HTTP codecs', () => {
  const l = ok(
    parseListener(
      listener({
        filterChains: [
          { name: 'w', filterChainMatch: { destinationPort: 1 }, filters: [{ name: 't', typedConfig: { '@type': TCP, statPrefix: 's', weightedClusters: { clusters: [{ name: 'a', weight: 3 }, { name: 'b', weight: 1 }] } } }] },
          { name: 'h1', filterChainMatch: { destinationPort: 2 }, filters: [{ name: 'h', typedConfig: hcm({ codecType: 'HTTP1' }) }] },
          { name: 'auto', filters: [{ name: 'h', typedConfig: hcm({ codecType: 'AUTO' }) }] },
        ],
      }),
    ),
  );
  assert.deepEqual(l.spec.filterChains[0]!.tcp!.clusters, [{ name: 'a', weight: 3 }, { name: 'b', weight: 1 }]);
  assert.equal(l.spec.filterChains[1]!.protocol, 'http1');
  assert.equal(l.spec.filterChains[2]!.protocol, 'auto');
});

test('listener: inline routeConfig is registered under a generated name', () => {
  const l = ok(
    parseListener(
      listener({
        filterChains: [
          {
            name: 'in',
            filters: [
              {
                name: 'hcm',
                typedConfig: hcm({ rds: undefined, routeConfig: { virtualHosts: [{ name: 'app', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'app' } }] }] } }),
              },
            ],
          },
        ],
      }),
    ),
  );
  assert.equal(l.spec.filterChains[0]!.http!.routeConfigName, 'inline/outbound/in');
  assert.equal(l.inlineRoutes[0]!.name, 'inline/outbound/in');
  assert.equal(l.inlineRoutes[0]!.virtualHosts[0]!.routes[0]!.action.kind, 'route');
});

test('listener: snake_case field names are accepted', () => {
  const l = ok(
    parseListener({
      name: 'snake',
      address: { socket_address: { address: '0.0.0.0', port_value: 15006 } },
      traffic_direction: 'INBOUND',
      use_original_dst: true,
      filter_chains: [
        {
          filter_chain_match: { destination_port: 8080 },
          filters: [
            {
              name: 'hcm',
              typed_config: { '@type': HCM, stat_prefix: 'in', codec_type: 'AUTO', rds: { route_config_name: 'rc' }, http_filters: [{ name: 'envoy.filters.http.router' }] },
            },
          ],
        },
      ],
    }),
  );
  assert.equal(l.spec.port, 15006);
  assert.equal(l.spec.useOriginalDst, true);
  assert.equal(l.spec.filterChains[0]!.match.destinationPort, 8080);
  assert.equal(l.spec.filterChains[0]!.name, 'chain-0');
});

test('listener errors: precise paths for misspellings, types, missing fields and unknown @type', () => {
  const misspelt = errs(
    parseListener(
      listener({
        filterChains: [{ filters: [{ name: 'h', typedConfig: hcm({ rds: { routeConfigNme: 'rc' } }) }] }],
      }),
    ),
  );
  assert.deepEqual(misspelt, [
    'listener (outbound): filterChains[0].filters[0].typedConfig.rds.routeConfigName: required',
    'listener (outbound): filterChains[0].filters[0].typedConfig.rds.routeConfigNme: unknown field (did you mean "routeConfigName"?); not in the supported subset (docs/proxy-config.md)',
  ]);
  const wrongType = errs(parseListener(listener({ address: { socketAddress: { address: '127.0.0.1', portValue: '15001x' } } })));
  assert.deepEqual(wrongType, ['listener (outbound): address.socketAddress.portValue: must be a non-negative integer (got "15001x")']);
  const port = errs(parseListener(listener({ address: { socketAddress: { address: '127.0.0.1', portValue: 70000 } } })));
  assert.match(port[0]!, /address\.socketAddress\.portValue: must be between 0 and 65535/);
  const unknownType = errs(parseListener(listener({ filterChains: [{ filters: [{ name: 'x', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy' } }] }] })));
  assert.match(unknownType[0]!, /^listener \(outbound\): filterChains\[0\]\.filters\[0\]\.typedConfig\.@type: unsupported network filter "envoy\.extensions\.filters\.network\.redis_proxy\.v3\.RedisProxy"/);
  const noPrefix = errs(parseListener(listener({ filterChains: [{ filters: [{ name: 'x', typedConfig: { '@type': 'HttpConnectionManager' } }] }] })));
  assert.match(noPrefix[0]!, /typedConfig\.@type: must start with "type\.googleapis\.com\/"/);
  const direction = errs(parseListener(listener({ trafficDirection: 'OUTWARD' })));
  assert.match(direction[0]!, /trafficDirection: must be one of UNSPECIFIED, INBOUND, OUTBOUND/);
  const both = errs(parseListener(listener({ filterChains: [{ filters: [{ name: 'h', typedConfig: hcm({ routeConfig: { virtualHosts: [] } }) }] }] })));
  assert.match(both[0]!, /typedConfig\.routeConfig: cannot be combined with rds/);
  const notList = errs(parseListener(listener({ filterChains: { name: 'x' } })));
  assert.deepEqual(notList, ['listener (outbound): filterChains: must be a list (got an object)']);
  const noName = errs(parseListener({ address: { socketAddress: { address: '1.2.3.4', portValue: 1 } }, filterChains: [] }));
  assert.equal(noName[0], 'listener: name: required');
  const routerNotLast = errs(parseListener(listener({ filterChains: [{ filters: [{ name: 'h', typedConfig: hcm({ httpFilters: [{ name: 'envoy.filters.http.router' }, { name: 'envoy.filters.http.cors' }] }) }] }] })));
  assert.ok(routerNotLast.some((e) => /httpFilters\[0\]\.name: the router must be the last HTTP filter/.test(e)));
  const h3 = errs(parseListener(listener({ filterChains: [{ filters: [{ name: 'h', typedConfig: hcm({ codecType: 'HTTP3' }) }] }] })));
  assert.match(h3[0]!, /codecType: HTTP3 is not supported/);
});

test('listener: other HTTP filters are skipped with a warning when isOptional; ignored fields accepted silently', () => {
  const r = parseListener(
    listener({
      statPrefix: 'x',
      listenerFilters: [{ name: 'envoy.filters.listener.tls_inspector' }],
      filterChains: [
        {
          filters: [
            {
              name: 'h',
              typedConfig: hcm({
                httpFilters: [{ name: 'envoy.filters.http.cors', isOptional: true, typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors', anything: 1 } }, { name: 'envoy.filters.http.router' }],
                useRemoteAddress: true,
              }),
            },
          ],
          transportSocket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': 'type.googleapis.com/x', common_tls_context: {} } },
        },
      ],
    }),
  );
  const v = ok(r);
  assert.equal(r.warnings.length, 1);
  assert.match(r.warnings[0]!, /HTTP filter "envoy\.filters\.http\.cors" is skipped \(isOptional/);
  assert.deepEqual(v.spec.filterChains[0]!.extensions, { transportSocket: { name: 'envoy.transport_sockets.tls', typedConfig: { '@type': 'type.googleapis.com/x', commonTlsContext: {} } } });
});

test('listener: an HTTP filter the proxy cannot run fails closed (issue 13), unless optional; per-route filters as placeholders pass', () => {
  const withFilters = (httpFilters: object[]) => parseListener(listener({ filterChains: [{ filters: [{ name: 'h', typedConfig: hcm({ httpFilters: [...httpFilters, { name: 'envoy.filters.http.router' }] }) }] }] }));
  const extAuthz = errs(withFilters([{ name: 'envoy.filters.http.ext_authz', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz', grpcService: {} } }]));
  assert.equal(extAuthz.length, 1);
  assert.match(extAuthz[0]!, /httpFilters\[0\]\.name: HTTP filter "envoy\.filters\.http\.ext_authz" \(envoy\.extensions\.filters\.http\.ext_authz\.v3\.ExtAuthz\) is not supported by the Trellis proxy .*mark it isOptional: true/);
  assert.equal(errs(withFilters([{ name: 'no-config' }])).length, 1, 'a filter without typedConfig is unknown too');
  const lrl = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
  ok(withFilters([{ name: 'envoy.filters.http.local_ratelimit', typedConfig: { '@type': lrl, statPrefix: 'rl' } }, { name: 'envoy.filters.http.fault', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault' } }]));
  const hcmLevel = errs(withFilters([{ name: 'envoy.filters.http.local_ratelimit', typedConfig: { '@type': lrl, statPrefix: 'rl', tokenBucket: { maxTokens: 1, fillInterval: '1s' } } }]));
  assert.match(hcmLevel[0]!, /typedConfig: envoy\.filters\.http\.local_ratelimit with filter-level settings is not applied/);
});

// ---- routes ----

function rc(routes: unknown[], vhExtra: Record<string, unknown> = {}, rcExtra: Record<string, unknown> = {}) {
  return { name: 'rc', virtualHosts: [{ name: 'vh', domains: ['*'], routes, ...vhExtra }], ...rcExtra };
}

test('route configuration: matches of every kind', () => {
  const spec = ok(
    parseRouteConfiguration(
      rc([
        { name: 'p', match: { prefix: '/api', caseSensitive: false }, route: { cluster: 'a' } },
        { match: { path: '/exact' }, route: { cluster: 'a' } },
        { match: { safeRegex: { regex: '/v[0-9]+/.*', googleRe2: {} } }, route: { cluster: 'a' } },
        { match: { pathSeparatedPrefix: '/docs' }, route: { cluster: 'a' } },
        {
          match: {
            prefix: '/',
            headers: [
              { name: ':method', exactMatch: 'POST' },
              { name: 'X-Env', stringMatch: { exact: 'Canary', ignoreCase: true } },
              { name: 'x-a', prefixMatch: 'p' },
              { name: 'x-b', suffixMatch: 's' },
              { name: 'x-c', containsMatch: 'c' },
              { name: 'x-d', safeRegexMatch: { regex: 'd+' } },
              { name: 'x-e', presentMatch: true, invertMatch: true },
              { name: 'x-f' },
            ],
            queryParameters: [{ name: 'q', stringMatch: { prefix: 'v' } }, { name: 'debug', presentMatch: true }, { name: 'any' }],
            grpc: {},
          },
          route: { cluster: 'a' },
        },
      ]),
    ),
  );
  const routes = spec.virtualHosts[0]!.routes;
  assert.deepEqual(routes[0]!.match.path, { kind: 'prefix', value: '/api', ignoreCase: true });
  assert.equal(routes[0]!.name, 'p');
  assert.deepEqual(routes[1]!.match.path, { kind: 'exact', value: '/exact' });
  const rx = routes[2]!.match.path!;
  assert.equal(rx.kind, 'regex');
  assert.ok(rx.kind === 'regex' && rx.regex.test('/v2/x') && !rx.regex.test('/a/v2/x'), 'regex must match the whole path');
  assert.deepEqual(routes[3]!.match.path, { kind: 'prefix', value: '/docs', separated: true });
  const m = routes[4]!.match;
  assert.equal(m.method, 'POST');
  assert.equal(m.grpc, true);
  assert.deepEqual(
    m.headers.map((h) => [h.name, h.match.kind, h.invert ?? false]),
    [
      ['x-env', 'exact', false],
      ['x-a', 'prefix', false],
      ['x-b', 'suffix', false],
      ['x-c', 'contains', false],
      ['x-d', 'regex', false],
      ['x-e', 'present', true],
      ['x-f', 'present', false],
    ],
  );
  assert.deepEqual(m.headers[0]!.match, { kind: 'exact', value: 'Canary', ignoreCase: true });
  assert.deepEqual(m.queryParams, [
    { name: 'q', match: { kind: 'prefix', value: 'v' } },
    { name: 'debug', match: { kind: 'present', present: true } },
    { name: 'any', match: { kind: 'present', present: true } },
  ]);
});

test('route configuration: route action fields and extensions', () => {
  const spec = ok(
    parseRouteConfiguration(
      rc(
        [
          {
            match: { prefix: '/a' },
            route: {
              weightedClusters: { clusters: [{ name: 'v1', weight: 90 }, { name: 'v2', weight: 10 }] },
              timeout: '2.5s',
              prefixRewrite: '/b',
              hostRewriteLiteral: 'backend.internal',
              hashPolicy: [{ header: { headerName: 'X-User' } }, { cookie: { name: 'sid' }, terminal: true }, { connectionProperties: { sourceIp: true } }, { queryParameter: { name: 'u' } }],
              retry_policy: { retry_on: '5xx', num_retries: 3, per_try_timeout: '1s' },
              requestMirrorPolicies: [{ cluster: 'shadow' }],
              maxStreamDuration: { maxStreamDuration: '60s' },
            },
          },
          { match: { safeRegex: { regex: '/r/(.*)' } }, route: { cluster: 'c', regexRewrite: { pattern: { regex: '^/r/(.*)$' }, substitution: '/\\1' }, timeout: '0s' } },
        ],
        { retryPolicy: { retryOn: 'connect-failure' } },
      ),
    ),
  );
  const a = spec.virtualHosts[0]!.routes[0]!.action;
  assert.equal(a.kind, 'route');
  if (a.kind !== 'route') return;
  assert.deepEqual(a.clusters, [{ name: 'v1', weight: 90 }, { name: 'v2', weight: 10 }]);
  assert.equal(a.timeoutMs, 2500);
  assert.equal(a.prefixRewrite, '/b');
  assert.equal(a.hostRewrite, 'backend.internal');
  assert.deepEqual(a.hashPolicy, [
    { kind: 'header', name: 'x-user' },
    { kind: 'cookie', name: 'sid', terminal: true },
    { kind: 'source_ip' },
    { kind: 'query_parameter', name: 'u' },
  ]);
  assert.deepEqual(a.extensions, {
    retryPolicy: { retryOn: '5xx', numRetries: 3, perTryTimeout: '1s' },
    requestMirrorPolicies: [{ cluster: 'shadow' }],
    maxStreamDuration: { maxStreamDuration: '60s' },
  });
  const b = spec.virtualHosts[0]!.routes[1]!.action;
  assert.ok(b.kind === 'route');
  if (b.kind !== 'route') return;
  assert.equal(b.timeoutMs, undefined, '"0s" disables the timeout');
  assert.equal(b.regexRewrite!.substitution, '/\\1');
  assert.deepEqual(b.extensions, { retryPolicy: { retryOn: 'connect-failure' } }, 'virtual host retry policy is inherited');
});

test('route configuration: redirect, direct response, header mutations at three levels', () => {
  const mut = (p: string) => ({
    requestHeadersToAdd: [
      { header: { key: `X-${p}`, value: '1' } },
      { header: { key: `x-${p}-o`, value: '50%%' }, append: false },
      { header: { key: `x-${p}-a`, value: 'v' }, appendAction: 'ADD_IF_ABSENT' },
    ],
    requestHeadersToRemove: [`x-${p}-gone`],
    responseHeadersToAdd: [{ header: { key: `x-${p}-res`, value: 'r' }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
    responseHeadersToRemove: ['server'],
  });
  const spec = ok(
    parseRouteConfiguration(
      rc(
        [
          { match: { prefix: '/old' }, redirect: { httpsRedirect: true, hostRedirect: 'new.example.com', portRedirect: 8443, prefixRewrite: '/new', responseCode: 'PERMANENT_REDIRECT', stripQuery: true } },
          { match: { path: '/p' }, redirect: { schemeRedirect: 'HTTP', pathRedirect: '/x?y=1' } },
          { match: { path: '/health' }, directResponse: { status: 200, body: { inlineString: 'ok' } } },
          { match: { path: '/bytes' }, directResponse: { status: 503, body: { inlineBytes: Buffer.from('down').toString('base64') } } },
          { match: { path: '/empty' }, directResponse: { status: 204 } },
          { match: { prefix: '/' }, route: { cluster: 'c' }, ...mut('route') },
        ],
        mut('vh'),
        mut('rc'),
      ),
    ),
  );
  const routes = spec.virtualHosts[0]!.routes;
  assert.deepEqual(routes[0]!.action, { kind: 'redirect', status: 308, scheme: 'https', host: 'new.example.com', port: 8443, prefixRewrite: '/new', stripQuery: true });
  assert.deepEqual(routes[1]!.action, { kind: 'redirect', status: 301, scheme: 'http', path: '/x?y=1' });
  assert.deepEqual(routes[2]!.action, { kind: 'direct_response', status: 200, body: 'ok' });
  assert.deepEqual(routes[3]!.action, { kind: 'direct_response', status: 503, body: 'down' });
  assert.deepEqual(routes[4]!.action, { kind: 'direct_response', status: 204 });
  assert.deepEqual(routes[5]!.requestHeaders, {
    add: [
      { name: 'x-route', value: '1', append: true },
      { name: 'x-route-o', value: '50%', append: false },
      { name: 'x-route-a', value: 'v', append: false, action: 'add_if_absent' },
    ],
    remove: ['x-route-gone'],
  });
  assert.deepEqual(routes[5]!.responseHeaders, { add: [{ name: 'x-route-res', value: 'r', append: false }], remove: ['server'] });
  assert.equal(spec.virtualHosts[0]!.requestHeaders!.add[0]!.name, 'x-vh');
  assert.equal(spec.requestHeaders!.add[0]!.name, 'x-rc');
  assert.deepEqual(spec.responseHeaders!.remove, ['server']);
});

test('route configuration errors', () => {
  const e = (routes: unknown[], vh: Record<string, unknown> = {}) => errs(parseRouteConfiguration(rc(routes, vh)));
  assert.deepEqual(e([{ match: { prefix: '/' }, route: { weightedClusters: { clusters: [{ name: 'a', weight: -1 }] } } }]), [
    'routeConfiguration (rc): virtualHosts[0].routes[0].route.weightedClusters.clusters[0].weight: must not be negative (got -1)',
  ]);
  assert.deepEqual(e([{ match: { prefix: '/' }, route: { weightedClusters: { clusters: [{ name: 'a', weight: 0 }] } } }]), [
    'routeConfiguration (rc): virtualHosts[0].routes[0].route.weightedClusters.clusters: the weights must not all be zero',
  ]);
  assert.deepEqual(e([{ match: { prefx: '/' }, route: { cluster: 'a' } }]), [
    'routeConfiguration (rc): virtualHosts[0].routes[0].match: one of prefix, path, safeRegex, pathSeparatedPrefix, connectMatcher is required',
    'routeConfiguration (rc): virtualHosts[0].routes[0].match.prefx: unknown field (did you mean "prefix"?); not in the supported subset (docs/proxy-config.md)',
  ]);
  assert.deepEqual(e([{ match: { prefix: '/' } }]), ['routeConfiguration (rc): virtualHosts[0].routes[0]: one of route, redirect, directResponse is required']);
  assert.match(e([{ match: { safeRegex: { regex: '(' } }, route: { cluster: 'a' } }])[0]!, /match\.safeRegex\.regex: invalid regular expression/);
  assert.match(e([{ match: { safeRegex: { regex: '/x' } }, route: { cluster: 'a', prefixRewrite: '/' } }])[0]!, /route\.prefixRewrite: requires a prefix, path or pathSeparatedPrefix match/);
  assert.match(e([{ match: { prefix: '/' }, route: { cluster: 'a', timeout: '10' } }])[0]!, /route\.timeout: must be a duration string/);
  assert.match(e([{ match: { prefix: '/' }, route: { cluster: 'a', retryPolicy: 'often' } }])[0]!, /route\.retryPolicy: must be an object/);
  assert.match(e([{ match: { prefix: '/' }, route: { cluster: 'a', requestMirrorPolicies: ['x'] } }])[0]!, /route\.requestMirrorPolicies\[0\]: must be an object/);
  assert.match(e([{ match: { prefix: '/' }, route: { cluster: 'a' }, requestHeadersToAdd: [{ header: { key: ':path', value: '/' } }] }])[0]!, /requestHeadersToAdd\[0\]\.header\.key: is not a header name that can be set/);
  assert.match(e([{ match: { prefix: '/' }, route: { cluster: 'a' }, requestHeadersToAdd: [{ header: { key: 'x-ip', value: '%DOWNSTREAM_REMOTE_ADDRESS%' } }] }])[0]!, /header\.value: substitution commands/);
  assert.match(e([{ match: { prefix: '/' }, route: { cluster: 'a' }, requestHeadersToAdd: [{ header: { key: 'x', value: 'v' }, append: true, appendAction: 'ADD_IF_ABSENT' }] }])[0]!, /appendAction: cannot be combined with append/);
  assert.match(e([{ match: { prefix: '/' }, directResponse: { status: 99 } }])[0]!, /directResponse\.status: must be between 200 and 599/);
  assert.match(e([{ match: { prefix: '/' }, route: { cluster: 'a', hashPolicy: [{ cookie: { name: 's', ttl: '10s' } }] } }])[0]!, /hashPolicy\[0\]\.cookie\.ttl: generating cookies is not supported/);
  assert.match(e([], { domains: ['a.*.com'] })[0]!, /virtualHosts\[0\]\.domains\[0\]: a wildcard is only allowed/);
  const dup = errs(parseRouteConfiguration({ name: 'rc', virtualHosts: [{ name: 'a', domains: ['x.com'] }, { name: 'b', domains: ['X.com'] }] }));
  assert.deepEqual(dup, ['routeConfiguration (rc): virtualHosts[1].domains[0]: domain "x.com" is already used by virtual host "a"']);
  const twice = errs(parseRouteConfiguration({ name: 'rc', virtual_hosts: [], virtualHosts: [] }));
  assert.deepEqual(twice, ['routeConfiguration: virtualHosts: set twice (snake_case and camelCase spellings of the same field)']);
});

// ---- clusters ----

test('cluster: defaults (peak EWMA, HTTP/1, Envoy circuit breakers)', () => {
  const c = ok(parseCluster(staticCluster('a')));
  assert.deepEqual(c.spec, {
    name: 'a',
    lbPolicy: 'peak_ewma',
    protocol: 'http1',
    connectTimeoutMs: 5000,
    idleTimeoutMs: 60_000,
    maxRequestsPerConnection: 0,
    circuitBreakers: { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 },
    localityAware: false,
    discovery: 'static',
  });
  assert.deepEqual(c.inlineEndpoints, [
    { locality: { region: '', zone: '', subZone: '' }, priority: 0, weight: 1, endpoints: [{ address: '127.0.0.1', port: 8080, weight: 1, health: 'unknown' }] },
  ]);
});

test('cluster: every supported field', () => {
  const c = ok(
    parseCluster({
      name: 'b',
      type: 'EDS',
      edsClusterConfig: { edsConfig: { ads: {} }, serviceName: 'b.svc' },
      connectTimeout: '0.25s',
      lbPolicy: 'MAGLEV',
      ringHashLbConfig: { minimumRingSize: '64', maximumRingSize: 4096 },
      commonLbConfig: { zoneAwareLbConfig: {} },
      circuitBreakers: { thresholds: [{ maxConnections: 10, maxPendingRequests: 20, maxRequests: 30, maxRetries: 4, retryBudget: { budgetPercent: { value: 20 } } }, { priority: 'HIGH', maxConnections: 1 }] },
      typedExtensionProtocolOptions: {
        [HPO]: { '@type': `type.googleapis.com/${HPO}`, explicitHttpConfig: { http2ProtocolOptions: {} }, commonHttpProtocolOptions: { idleTimeout: '30s', maxRequestsPerConnection: 100 } },
      },
      outlierDetection: { consecutive_5xx: 5 },
      healthChecks: [{ timeout: '1s' }],
      transportSocket: { name: 'tls' },
    }),
  );
  assert.deepEqual(c.spec, {
    name: 'b',
    lbPolicy: 'ring_hash',
    protocol: 'http2',
    connectTimeoutMs: 250,
    idleTimeoutMs: 30_000,
    maxRequestsPerConnection: 100,
    circuitBreakers: { maxConnections: 10, maxPendingRequests: 20, maxRequests: 30, maxRetries: 4 },
    ringHash: { minRingSize: 64, maxRingSize: 4096 },
    localityAware: true,
    discovery: 'eds',
    edsServiceName: 'b.svc',
    extensions: { outlierDetection: { consecutive5xx: 5 }, healthChecks: [{ timeout: '1s' }], transportSocket: { name: 'tls' }, retryBudget: { budgetPercent: { value: 20 } } },
  });
  assert.equal(c.inlineEndpoints, undefined);
});

test('cluster: lb policy selection, downstream protocol, STRICT_DNS warning', () => {
  const lb = (extra: Record<string, unknown>) => ok(parseCluster(staticCluster('c', 1, extra))).spec.lbPolicy;
  assert.equal(lb({ lbPolicy: 'ROUND_ROBIN' }), 'round_robin');
  assert.equal(ok(parseCluster(staticCluster('l', 1, { commonLbConfig: { localityWeightedLbConfig: {} } }))).spec.localityAware, true);
  const wrapped = ok(parseCluster(staticCluster('w', 1, { circuitBreakers: { thresholds: [{ maxRequests: { value: 7 } }] }, maxRequestsPerConnection: { value: '9' } })));
  assert.equal(wrapped.spec.circuitBreakers.maxRequests, 7, 'wrapper objects {value} are unwrapped');
  assert.equal(wrapped.spec.maxRequestsPerConnection, 9);
  assert.equal(lb({ lbPolicy: 'LEAST_REQUEST' }), 'least_request');
  assert.equal(lb({ lbPolicy: 'RANDOM' }), 'random');
  assert.equal(lb({ lbPolicy: 'RING_HASH' }), 'ring_hash');
  assert.equal(lb({ lbPolicy: 'ROUND_ROBIN', metadata: { filterMetadata: { trellis: { lbPolicy: 'weighted_round_robin' } } } }), 'weighted_round_robin');
  assert.equal(lb({ metadata: { filterMetadata: { trellis: { lbPolicy: 'ROUND_ROBIN' } } } }), 'round_robin');
  const ds = ok(parseCluster(staticCluster('d', 1, { typedExtensionProtocolOptions: { [HPO]: { '@type': `type.googleapis.com/${HPO}`, useDownstreamProtocolConfig: {} } } })));
  assert.equal(ds.spec.protocol, 'downstream');
  const legacy = ok(parseCluster(staticCluster('e', 1, { http2ProtocolOptions: {}, maxRequestsPerConnection: 7 })));
  assert.equal(legacy.spec.protocol, 'http2');
  assert.equal(legacy.spec.maxRequestsPerConnection, 7);
  const dns = parseCluster(staticCluster('f', 1, { type: 'STRICT_DNS' }));
  assert.equal(ok(dns).spec.discovery, 'static');
  assert.match(dns.warnings[0]!, /^cluster \(f\): type: STRICT_DNS is treated as STATIC/);
});

test('cluster errors', () => {
  assert.deepEqual(errs(parseCluster({ name: 'x', type: 'STATIC' })), ['cluster (x): loadAssignment: required for a STATIC cluster']);
  assert.match(errs(parseCluster(staticCluster('x', 1, { lbPolicy: 'FASTEST' })))[0]!, /^cluster \(x\): lbPolicy: must be one of ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM, MAGLEV/);
  assert.match(errs(parseCluster(staticCluster('x', 1, { metadata: { filterMetadata: { trellis: { lbPolicy: 'fastest' } } } })))[0]!, /metadata\.filterMetadata\.trellis\.lbPolicy: must be one of peak_ewma/);
  assert.match(errs(parseCluster(staticCluster('x', 1, { connectTimeout: '-1s' })))[0]!, /connectTimeout: must not be negative/);
  assert.match(errs(parseCluster(staticCluster('x', 1, { circuitBreakers: { thresholds: [{ maxConnections: -5 }] } })))[0]!, /circuitBreakers\.thresholds\[0\]\.maxConnections: must not be negative/);
  assert.match(errs(parseCluster(staticCluster('x', 1, { typedExtensionProtocolOptions: { 'envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions': {} } })))[0]!, /typedExtensionProtocolOptions\["envoy\.extensions\.upstreams\.tcp\.v3\.TcpProtocolOptions"\]: unsupported protocol options/);
  assert.match(errs(parseCluster(staticCluster('x', 1, { typedExtensionProtocolOptions: { [HPO]: { '@type': 'type.googleapis.com/x.Y', explicitHttpConfig: { httpProtocolOptions: {} } } } })))[0]!, /\["envoy\.extensions\.upstreams\.http\.v3\.HttpProtocolOptions"\]\.@type: must be/);
  assert.match(errs(parseCluster(staticCluster('x', 1, { type: 'ORIGINAL_DST' })))[0]!, /type: ORIGINAL_DST clusters are not supported/);
  assert.match(errs(parseCluster(staticCluster('x', 1, { lb_polcy: 'ROUND_ROBIN' })))[0]!, /^cluster \(x\): lbPolcy: unknown field \(did you mean "lbPolicy"\?\)/);
});

// ---- endpoints ----

test('cluster load assignment: localities, priorities, weights, health, labels', () => {
  const cla = ok(
    parseClusterLoadAssignment({
      cluster_name: 'b.svc',
      endpoints: [
        {
          locality: { region: 'eu', zone: 'eu-1a', subZone: 'rack1' },
          priority: 1,
          loadBalancingWeight: 5,
          lb_endpoints: [
            { endpoint: { address: { socketAddress: { address: '10.0.0.1', portValue: 80 } } }, healthStatus: 'HEALTHY', loadBalancingWeight: 3, metadata: { filterMetadata: { trellis: { version: 'v2' } } } },
            { endpoint: { address: { socketAddress: { address: '10.0.0.2', portValue: 80 } } }, healthStatus: 'DRAINING' },
            { endpoint: { address: { socketAddress: { address: '10.0.0.3', portValue: 80 } } }, healthStatus: 2 },
          ],
        },
      ],
      policy: { overprovisioningFactor: 140 },
    }),
  );
  assert.equal(cla.clusterName, 'b.svc');
  assert.deepEqual(cla.localities, [
    {
      locality: { region: 'eu', zone: 'eu-1a', subZone: 'rack1' },
      priority: 1,
      weight: 5,
      endpoints: [
        { address: '10.0.0.1', port: 80, weight: 3, health: 'healthy', labels: { version: 'v2' } },
        { address: '10.0.0.2', port: 80, weight: 1, health: 'draining' },
        { address: '10.0.0.3', port: 80, weight: 1, health: 'unhealthy' },
      ],
    },
  ]);
  const bad = errs(parseClusterLoadAssignment({ clusterName: 'x', endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: 'a', portValue: 1 } } }, loadBalancingWeight: 0, healthStatus: 'FINE' }] }] }));
  assert.deepEqual(bad, [
    'clusterLoadAssignment: endpoints[0].lbEndpoints[0].healthStatus: must be one of UNKNOWN, HEALTHY, UNHEALTHY, DRAINING, TIMEOUT, DEGRADED (got "FINE")',
    'clusterLoadAssignment: endpoints[0].lbEndpoints[0].loadBalancingWeight: must be between 1 and 4294967295 (got 0)',
  ]);
  assert.match(errs(parseClusterLoadAssignment({ endpoints: [] }))[0]!, /clusterName: required/);
});

// ---- the whole set ----

test('buildProxyConfig: joins resources, EDS by service name, inline routes', () => {
  const r = buildProxyConfig({
    version: 'v7',
    listeners: [listener()],
    routeConfigs: [rc([{ match: { prefix: '/' }, route: { weightedClusters: { clusters: [{ name: 'a', weight: 1 }, { name: 'b', weight: 1 }] } } }])],
    clusters: [staticCluster('a'), { name: 'b', type: 'EDS', edsClusterConfig: { serviceName: 'b.svc' } }],
    endpoints: [{ clusterName: 'b.svc', endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '10.1.1.1', portValue: 9 } } } }] }] }],
  });
  assert.ok(r.ok, r.ok ? '' : formatErrors(r.errors));
  if (!r.ok) return;
  assert.deepEqual(r.warnings, []);
  assert.equal(r.config.version, 'v7');
  assert.equal(r.config.listeners.length, 1);
  assert.ok(r.config.routeConfigs.has('rc'));
  assert.deepEqual([...r.config.clusters.keys()], ['a', 'b']);
  assert.equal(r.config.endpoints.get('a')![0]!.endpoints[0]!.port, 8080);
  assert.equal(r.config.endpoints.get('b')![0]!.endpoints[0]!.address, '10.1.1.1');
});

test('buildProxyConfig: dangling references are warnings by default, errors when asked', () => {
  const input = { version: '1', listeners: [listener()], routeConfigs: [rc([{ match: { prefix: '/' }, route: { cluster: 'missing' } }])], clusters: [] };
  const warn = buildProxyConfig(input);
  assert.ok(warn.ok);
  assert.deepEqual(warn.warnings, ['routeConfigs[0] (rc): virtual host "vh": route names cluster "missing", which is not defined']);
  const strict = buildProxyConfig({ ...input, routeConfigs: [] }, { references: 'error' });
  assert.ok(!strict.ok);
  if (strict.ok) return;
  assert.deepEqual(strict.errors.map(formatFieldError), ['listeners[0] (outbound): filter chain "http": route configuration "rc" is not defined']);
});

test('buildProxyConfig: duplicates and per-resource error paths', () => {
  const r = buildProxyConfig({
    version: '1',
    listeners: [listener(), listener({ name: 'other' }), listener({ name: 'outbound', address: { socketAddress: { address: '127.0.0.1', portValue: 2 } } })],
    clusters: [staticCluster('a'), staticCluster('a'), { name: 'bad', lbPolicy: 'X', type: 'STATIC', loadAssignment: { endpoints: [] } }],
  });
  assert.ok(!r.ok);
  if (r.ok) return;
  assert.deepEqual(r.errors.map(formatFieldError), [
    'listeners[1] (other): address: 127.0.0.1:15001 is already used by listener "outbound"',
    'listeners[2] (outbound): name: duplicate listener name (also listeners[0])',
    'clusters[1] (a): name: duplicate cluster name (also clusters[0])',
    'clusters[2] (bad): lbPolicy: must be one of ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM, MAGLEV (got "X")',
  ]);
});

test('buildProxyConfig: EDS assignments that match no EDS cluster, duplicates, missing ones', () => {
  const cla = (name: string) => ({ clusterName: name, endpoints: [] });
  const r = buildProxyConfig({
    version: '1',
    clusters: [staticCluster('s'), { name: 'e', type: 'EDS' }, { name: 'f', type: 'EDS' }],
    endpoints: [cla('e'), cla('s'), cla('nobody')],
  });
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.deepEqual(r.warnings, [
    'endpoints[1] (s): clusterName: cluster "s" is not an EDS cluster; assignment ignored',
    'endpoints[2] (nobody): clusterName: no EDS cluster uses this name; assignment ignored',
    'clusters[2] (f): no ClusterLoadAssignment for EDS cluster "f" yet',
  ]);
  assert.deepEqual(r.config.endpoints.get('e'), []);
  assert.equal(r.config.endpoints.has('f'), false);
  const dup = buildProxyConfig({ version: '1', clusters: [{ name: 'e', type: 'EDS' }], endpoints: [cla('e'), cla('e')] });
  assert.ok(!dup.ok);
  if (dup.ok) return;
  assert.deepEqual(dup.errors.map(formatFieldError), ['endpoints[1] (e): clusterName: duplicate assignment (also endpoints[0])']);
});
