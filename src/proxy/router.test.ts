import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRouteConfiguration, formatErrors } from './config/envoy.ts';
import type { RouteActionSpec, RouteSpec } from './config/types.ts';
import type { ProxyRequest, RequestContext, RequestHead, ResponseHandler, ResponseHead, Dispatch } from './http/exchange.ts';
import { ProxyError } from './errors.ts';
import { compileRouteTable, type RouteTable } from './route-match.ts';
import { applyHeaderMutation } from './header-mutation.ts';
import {
  ATTR_HASH_KEY,
  ATTR_ROUTE_SPEC,
  computeHashKey,
  cookieValue,
  createRouter,
  pickWeightedCluster,
  redirectResponse,
  rewritePath,
  type ClusterLookup,
} from './router.ts';

function head(path = '/', extra: Partial<RequestHead> = {}): RequestHead {
  return { method: 'GET', scheme: 'http', authority: 'svc.local:8080', path, headers: [], httpVersion: '1.1', ...extra };
}

function ctx(extra: Partial<RequestContext> = {}): RequestContext {
  return {
    listener: 'outbound',
    direction: 'outbound',
    downstream: { remoteAddress: '10.0.0.9', remotePort: 5555, localAddress: '127.0.0.1', localPort: 15001 },
    startTime: 1000,
    deadline: null,
    responseFlags: [],
    grpc: false,
    attempts: 0,
    attrs: new Map(),
    ...extra,
  };
}

function table(virtualHosts: unknown[], extra: Record<string, unknown> = {}): RouteTable {
  const r = parseRouteConfiguration({ name: 'rc', virtualHosts, ...extra });
  if (!r.ok) assert.fail(formatErrors(r.errors));
  return compileRouteTable(r.value);
}

/** Deterministic uniform source: a small LCG. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test('pickWeightedCluster: boundaries and a distribution that follows the weights', () => {
  const cs = [
    { name: 'a', weight: 80 },
    { name: 'zero', weight: 0 },
    { name: 'b', weight: 20 },
  ];
  assert.equal(pickWeightedCluster(cs, 0), 'a');
  assert.equal(pickWeightedCluster(cs, 0.7999), 'a');
  assert.equal(pickWeightedCluster(cs, 0.8), 'b');
  assert.equal(pickWeightedCluster(cs, 0.99999999), 'b');
  assert.equal(pickWeightedCluster(cs, 1), 'b', 'out-of-range input is clamped');
  assert.equal(pickWeightedCluster([{ name: 'only', weight: 0 }], 0.5), 'only');
  const rnd = lcg(42);
  const counts: Record<string, number> = { a: 0, b: 0, zero: 0 };
  const n = 20_000;
  for (let i = 0; i < n; i++) counts[pickWeightedCluster(cs, rnd())]!++;
  assert.equal(counts.zero, 0);
  assert.ok(Math.abs(counts.a! / n - 0.8) < 0.02, `a got ${counts.a}`);
  assert.ok(Math.abs(counts.b! / n - 0.2) < 0.02, `b got ${counts.b}`);
});

test('computeHashKey: header, cookie, source IP, query parameter, terminal', () => {
  const h = head('/p?user=u1&x=2', { headers: ['x-user', 'alice', 'cookie', 'a=1; sid="s-9"; b=2'] });
  const c = ctx();
  assert.equal(computeHashKey([], h, c), undefined);
  assert.equal(computeHashKey([{ kind: 'header', name: 'x-user' }], h, c), 'alice');
  assert.equal(computeHashKey([{ kind: 'header', name: ':authority' }], h, c), 'svc.local:8080');
  assert.equal(computeHashKey([{ kind: 'cookie', name: 'sid' }], h, c), 's-9');
  assert.equal(computeHashKey([{ kind: 'source_ip' }], h, c), '10.0.0.9');
  assert.equal(computeHashKey([{ kind: 'query_parameter', name: 'user' }], h, c), 'u1');
  assert.equal(computeHashKey([{ kind: 'header', name: 'x-missing' }], h, c), undefined);
  assert.equal(computeHashKey([{ kind: 'header', name: 'x-missing' }, { kind: 'source_ip' }], h, c), '10.0.0.9', 'policies without a value are skipped');
  assert.equal(computeHashKey([{ kind: 'header', name: 'x-user' }, { kind: 'source_ip' }], h, c), 'alice\n10.0.0.9');
  assert.equal(computeHashKey([{ kind: 'header', name: 'x-user', terminal: true }, { kind: 'source_ip' }], h, c), 'alice');
  assert.equal(cookieValue(['cookie', 'a=1', 'cookie', 'b=2'], 'b'), '2');
});

type Route = Extract<RouteActionSpec, { kind: 'route' }>;
const routeAction = (extra: Partial<Route>): Route => ({ kind: 'route', clusters: [{ name: 'c', weight: 1 }], hashPolicy: [], ...extra });
const prefixMatch = (value: string): RouteSpec['match'] => ({ path: { kind: 'prefix', value }, headers: [], queryParams: [] });

test('rewritePath: prefix rewrite keeps the rest and the query; regex rewrite with groups; host rewrite', () => {
  const h1 = head('/api/users?id=1');
  rewritePath(h1, routeAction({ prefixRewrite: '/v2' }), prefixMatch('/api'));
  assert.equal(h1.path, '/v2/users?id=1');
  const h2 = head('/api/users');
  rewritePath(h2, routeAction({ prefixRewrite: '/' }), prefixMatch('/api/'));
  assert.equal(h2.path, '/users');
  const h3 = head('/api');
  rewritePath(h3, routeAction({ prefixRewrite: '' }), prefixMatch('/api'));
  assert.equal(h3.path, '/', 'an empty result becomes "/"');
  const h4 = head('/exact?q');
  rewritePath(h4, routeAction({ prefixRewrite: '/other' }), { path: { kind: 'exact', value: '/exact' }, headers: [], queryParams: [] });
  assert.equal(h4.path, '/other?q');
  const h5 = head('/service/foo/v1/api?x=1');
  rewritePath(h5, routeAction({ regexRewrite: { regex: /^\/service\/([^/]+)(\/.*)$/g, substitution: '\\2/instance/\\1' } }), prefixMatch('/'));
  assert.equal(h5.path, '/v1/api/instance/foo?x=1');
  const h6 = head('/aaa/b');
  rewritePath(h6, routeAction({ regexRewrite: { regex: /a/g, substitution: 'x' } }), prefixMatch('/'));
  assert.equal(h6.path, '/xxx/b', 'every match is replaced');
  const h7 = head('/');
  rewritePath(h7, routeAction({ hostRewrite: 'backend.internal' }), prefixMatch('/'));
  assert.equal(h7.authority, 'backend.internal');
  assert.equal(h7.path, '/');
});

type Redirect = Extract<RouteActionSpec, { kind: 'redirect' }>;
const loc = (r: ResponseHead) => r.headers[r.headers.indexOf('location') + 1];

test('redirectResponse: Location built per Envoy', () => {
  const h = head('/old/page?x=1', { authority: 'example.com' });
  const r = (a: Partial<Redirect>, hh = h, m?: RouteSpec['match']) => redirectResponse(hh, { kind: 'redirect', status: 301, ...a }, m);
  assert.deepEqual(r({ scheme: 'https' }), { status: 301, headers: ['location', 'https://example.com/old/page?x=1', 'content-length', '0'] });
  assert.equal(loc(r({ scheme: 'https' }, head('/', { authority: 'example.com:80' }))), 'https://example.com/', 'the default port is dropped when the scheme changes');
  assert.equal(loc(r({ scheme: 'https' }, head('/', { authority: 'example.com:8080' }))), 'https://example.com:8080/');
  assert.equal(loc(r({ host: 'new.example.com' })), 'http://new.example.com/old/page?x=1');
  assert.equal(loc(r({ port: 8443 })), 'http://example.com:8443/old/page?x=1');
  assert.equal(loc(r({ scheme: 'https', port: 443 }, head('/', { authority: 'example.com:8080' }))), 'https://example.com/');
  assert.equal(loc(r({ path: '/new' })), 'http://example.com/new?x=1', 'the query is kept');
  assert.equal(loc(r({ path: '/new?y=2' })), 'http://example.com/new?y=2', 'a query in pathRedirect replaces it');
  assert.equal(loc(r({ path: '/new', stripQuery: true })), 'http://example.com/new');
  assert.equal(loc(r({ prefixRewrite: '/fresh' }, h, prefixMatch('/old'))), 'http://example.com/fresh/page?x=1');
  assert.equal(r({ status: 308 }).status, 308);
});

test('applyHeaderMutation: remove, append, overwrite, add-if-absent, overwrite-if-exists', () => {
  const hs = ['x-a', '1', 'x-b', '2', 'x-c', '3', 'x-c', '4'];
  applyHeaderMutation(hs, {
    remove: ['x-b'],
    add: [
      { name: 'x-a', value: 'appended', append: true },
      { name: 'x-c', value: 'only', append: false },
      { name: 'x-a', value: 'ignored', append: false, action: 'add_if_absent' },
      { name: 'x-d', value: 'new', append: false, action: 'add_if_absent' },
      { name: 'x-e', value: 'ignored', append: false, action: 'overwrite_if_exists' },
      { name: 'x-d', value: 'replaced', append: false, action: 'overwrite_if_exists' },
    ],
  });
  assert.deepEqual(hs, ['x-a', '1', 'x-a', 'appended', 'x-c', 'only', 'x-d', 'replaced']);
});

// ---- the router layer ----

interface Recorded {
  starts: number;
  heads: ResponseHead[];
  body: string;
  ended: boolean;
  errors: ProxyError[];
}

function recorder(): { handler: ResponseHandler; rec: Recorded } {
  const rec: Recorded = { starts: 0, heads: [], body: '', ended: false, errors: [] };
  const handler: ResponseHandler = {
    onStart: () => void rec.starts++,
    onHeaders: (h) => (rec.heads.push(h), true),
    onData: (c) => ((rec.body += c.toString()), true),
    onEnd: () => void (rec.ended = true),
    onError: (e) => void rec.errors.push(e),
  };
  return { handler, rec };
}

function fakeClusters(names: string[]): { lookup: ClusterLookup; calls: { cluster: string; req: ProxyRequest }[] } {
  const calls: { cluster: string; req: ProxyRequest }[] = [];
  const lookup: ClusterLookup = {
    get(name) {
      if (!names.includes(name)) return undefined;
      const dispatch: Dispatch = (req, handler) => {
        calls.push({ cluster: name, req });
        handler.onStart({ resume() {}, abort() {} });
        handler.onHeaders({ status: 200, headers: ['server', 'app', 'content-length', '2'] });
        handler.onData(Buffer.from('hi'));
        handler.onEnd(null);
      };
      return { dispatch };
    },
  };
  return { lookup, calls };
}

const ROUTES = [
  {
    name: 'api',
    domains: ['api.local'],
    requestHeadersToAdd: [{ header: { key: 'x-vh', value: 'api' } }],
    routes: [
      { name: 'health', match: { path: '/health' }, directResponse: { status: 200, body: { inlineString: 'ok' } }, responseHeadersToAdd: [{ header: { key: 'x-local', value: '1' } }] },
      { name: 'moved', match: { prefix: '/old' }, redirect: { prefixRewrite: '/new', responseCode: 'FOUND' } },
      { name: 'ghost', match: { prefix: '/ghost' }, route: { cluster: 'missing' } },
      {
        name: 'main',
        match: { prefix: '/api/' },
        route: {
          weightedClusters: { clusters: [{ name: 'v1', weight: 1 }, { name: 'v2', weight: 1 }] },
          prefixRewrite: '/',
          hostRewriteLiteral: 'backend',
          timeout: '2s',
          hashPolicy: [{ header: { headerName: 'x-user' } }],
          retryPolicy: { retryOn: '5xx', numRetries: 2 },
        },
        requestHeadersToAdd: [{ header: { key: 'x-route', value: 'main' }, append: false }],
        requestHeadersToRemove: ['x-secret'],
        responseHeadersToAdd: [{ header: { key: 'x-served-by', value: 'trellis' } }],
        responseHeadersToRemove: ['server'],
      },
    ],
  },
];

function setup(random = () => 0.1) {
  const t = table(ROUTES, { responseHeadersToAdd: [{ header: { key: 'x-rc', value: 'rc' } }] });
  const { lookup, calls } = fakeClusters(['v1', 'v2']);
  const tables = new Map([['rc', t]]);
  const router = createRouter({ routeConfig: (n) => tables.get(n), clusters: lookup, random });
  return { dispatch: router('rc'), calls, router };
}

function request(h: RequestHead, c = ctx()): ProxyRequest {
  return { head: h, body: null, ctx: c };
}

test('router: no virtual host or no route -> NO_ROUTE; unknown route configuration -> NO_ROUTE', () => {
  const { dispatch, router, calls } = setup();
  for (const h of [head('/', { authority: 'other.local' }), head('/nothing', { authority: 'api.local' })]) {
    const { handler, rec } = recorder();
    dispatch(request(h), handler);
    assert.equal(rec.errors.length, 1);
    assert.equal(rec.errors[0]!.code, 'NO_ROUTE');
    assert.equal(rec.starts, 0);
  }
  const { handler, rec } = recorder();
  router('nope')(request(head()), handler);
  assert.equal(rec.errors[0]!.code, 'NO_ROUTE');
  assert.match(rec.errors[0]!.message, /route configuration "nope" is not loaded/);
  assert.equal(calls.length, 0);
});

test('router: a route naming an unknown cluster -> NO_CLUSTER', () => {
  const { dispatch, calls } = setup();
  const { handler, rec } = recorder();
  const c = ctx();
  dispatch(request(head('/ghost', { authority: 'api.local' }), c), handler);
  assert.equal(rec.errors.length, 1);
  assert.equal(rec.errors[0]!.code, 'NO_CLUSTER');
  assert.equal(c.cluster, 'missing');
  assert.equal(calls.length, 0);
});

test('router: direct responses and redirects are answered by the router, with response mutations', () => {
  const { dispatch, calls } = setup();
  const a = recorder();
  const c = ctx();
  dispatch(request(head('/health', { authority: 'api.local' }), c), a.handler);
  assert.equal(a.rec.starts, 1);
  assert.equal(a.rec.heads[0]!.status, 200);
  assert.deepEqual(a.rec.heads[0]!.headers, ['content-type', 'text/plain', 'content-length', '2', 'x-local', '1', 'x-rc', 'rc']);
  assert.equal(a.rec.body, 'ok');
  assert.equal(a.rec.ended, true);
  assert.equal(c.route, 'health');
  const b = recorder();
  dispatch(request(head('/old/x?q=1', { authority: 'api.local' })), b.handler);
  assert.equal(b.rec.heads[0]!.status, 302);
  assert.equal(loc(b.rec.heads[0]!), 'http://api.local/new/x?q=1');
  assert.equal(b.rec.ended, true);
  assert.equal(calls.length, 0);
});

test('router: dispatches to the picked cluster with the mutated head and annotated context', () => {
  const { dispatch, calls } = setup(() => 0.9);
  const { handler, rec } = recorder();
  const c = ctx({ deadline: 10_000 });
  const h = head('/api/items?page=2', { authority: 'api.local', headers: ['x-user', 'bob', 'x-secret', 's', 'x-route', 'old'] });
  dispatch(request(h, c), handler);
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.cluster, 'v2');
  const sent = calls[0]!.req.head;
  assert.equal(sent.path, '/items?page=2');
  assert.equal(sent.authority, 'backend');
  assert.deepEqual(sent.headers, ['x-user', 'bob', 'x-route', 'main', 'x-vh', 'api']);
  assert.equal(c.route, 'main');
  assert.equal(c.cluster, 'v2');
  assert.equal(c.attrs.get(ATTR_HASH_KEY), 'bob');
  const spec = c.attrs.get(ATTR_ROUTE_SPEC) as RouteSpec;
  assert.equal(spec.name, 'main');
  assert.deepEqual(spec.action.kind === 'route' && spec.action.extensions, { retryPolicy: { retryOn: '5xx', numRetries: 2 } });
  assert.equal(c.deadline, 3000, 'the route timeout tightens the deadline (startTime + 2s)');
  assert.equal(rec.heads[0]!.status, 200);
  assert.deepEqual(rec.heads[0]!.headers, ['content-length', '2', 'x-served-by', 'trellis', 'x-rc', 'rc']);
  assert.equal(rec.body, 'hi');
  assert.equal(rec.ended, true);
  assert.deepEqual(rec.errors, []);

  const first = setup(() => 0.1);
  const r2 = recorder();
  first.dispatch(request(head('/api/', { authority: 'api.local' })), r2.handler);
  assert.equal(first.calls[0]!.cluster, 'v1');
  assert.equal(first.calls[0]!.req.head.path, '/');
});

test('router: a config swap takes effect on the next request', () => {
  let current = table([{ name: 'a', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'v1' } }] }]);
  const { lookup, calls } = fakeClusters(['v1', 'v2']);
  const dispatch = createRouter({ routeConfig: () => current, clusters: lookup })('rc');
  dispatch(request(head()), recorder().handler);
  current = table([{ name: 'a', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'v2' } }] }]);
  dispatch(request(head()), recorder().handler);
  assert.deepEqual(calls.map((c) => c.cluster), ['v1', 'v2']);
});
