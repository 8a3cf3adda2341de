// `trellis describe` speaks each kind's own words: every kind shipped in
// examples/ is described with its own sections, and a policy never reads as a
// route ("Route is accepted", "<no backends>"). Status is what the API
// computes (resources/status.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseYamlDocuments } from '../api/yaml-documents.ts';
import { KINDS } from '../api/kinds.ts';
import type { Resource } from '../api/types.ts';
import { computeStatus, refId } from '../control-plane/resources/status.ts';
import { describeResource } from './commands/describe.ts';
import { describeSpec } from './describe-kinds.ts';

const EXAMPLES = path.resolve(import.meta.dirname, '..', '..', 'examples');

function examples(): Resource[] {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d)) {
      const p = path.join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith('.yaml') && f !== 'proxy-bootstrap.yaml') files.push(p);
    }
  };
  walk(EXAMPLES);
  const out: Resource[] = [];
  for (const f of files) {
    const parsed = parseYamlDocuments(readFileSync(f, 'utf8'), f);
    assert.ok(parsed.ok);
    for (const d of parsed.documents) {
      const r = d.value as Resource;
      if (r && typeof r === 'object' && typeof r.kind === 'string') out.push({ ...r, metadata: { namespace: 'default', ...r.metadata } });
    }
  }
  return out;
}

/** describe as the CLI prints it, with the status the API would compute (every example applied). */
function described(res: Resource, all: Resource[]): string {
  const index = new Set(all.map((r) => refId(r.kind, r.metadata.namespace ?? 'default', r.metadata.name)));
  const status = computeStatus(res, index);
  return describeResource(status ? { ...res, status } : res);
}

const ROUTES = new Set(['HTTPRoute', 'GRPCRoute', 'TCPRoute']);

test('every kind in examples/ is described in its own words; only routes speak of routes and backends', () => {
  const all = examples();
  const seen = new Set<string>();
  for (const res of all) {
    seen.add(res.kind);
    const text = described(res, all);
    assert.ok(describeSpec(res).length > 0, `${res.kind} ${res.metadata.name}: no summary`);
    if (!ROUTES.has(res.kind)) {
      assert.doesNotMatch(text, /Route is accepted|<no backends>|^Rules:\n {2}\[\d+\] .* -> /m, `${res.kind} ${res.metadata.name} reads as a route:\n${text}`);
    }
  }
  // Every kind but Workload (registered, not applied) has an example.
  const missing = KINDS.map((k) => k.kind).filter((k) => !seen.has(k) && k !== 'Workload');
  assert.deepEqual(missing, []);
});

test('AuthorizationPolicy: target, action with its meaning, each rule as who may do what; accepted as a policy', () => {
  const all = examples();
  const byName = (n: string) => all.find((r) => r.kind === 'AuthorizationPolicy' && r.metadata.name === n)!;
  const allow = described(byName('reviews-callers'), all);
  assert.match(allow, /^Applies to:\n {2}Service default\/reviews$/m);
  assert.match(allow, /^Action:\n {2}ALLOW: a request must match a rule of an ALLOW policy here, or it is denied$/m);
  assert.match(allow, /^Rules:\n {2}\[0\] from serviceAccounts=productpage; to methods=GET paths=\/reviews\/\*$/m);
  assert.match(allow, /^ {2}Accepted\s+True\s+Accepted\s+Policy is accepted$/m);
  const deny = described(byName('ratings-no-admin'), all);
  assert.match(deny, /^Applies to:\n {2}workloads labelled app=ratings in namespace default$/m);
  assert.match(deny, /^Action:\n {2}DENY: a request matching any rule is denied/m);
  // Scoped by selector: still a policy, not a route.
  assert.match(deny, /^ {2}Accepted\s+True\s+Accepted\s+Policy is accepted \(scoped by selector or namespace, no targetRef\)$/m);
  assert.doesNotMatch(deny, /ResolvedRefs/);
  const nothing = described({ apiVersion: 'trellis.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-all', namespace: 'shop' }, spec: {} }, all);
  assert.match(nothing, /^Applies to:\n {2}every workload in namespace shop \(no selector\)$/m);
  assert.match(nothing, /^Action:\n {2}ALLOW: no rules: allows nothing/m);
  assert.match(nothing, /^Rules:\n {2}<none>$/m);
});

test('MeshTLS, Gateway, a traffic policy, RequestAuthentication: their own sections', () => {
  const all = examples();
  const first = (kind: string) => all.find((r) => r.kind === kind)!;
  const mtls = described({ apiVersion: 'trellis.dev/v1alpha1', kind: 'MeshTLS', metadata: { name: 'mesh', namespace: 'trellis-system' }, spec: { mode: 'STRICT', portLevel: [{ port: 9090, mode: 'PERMISSIVE' }] } }, all);
  assert.match(mtls, /^Applies to:\n {2}every workload in the mesh/m);
  assert.match(mtls, /^Mode:\n {2}STRICT: inbound accepts mutual TLS only; plaintext connections are closed/m);
  assert.match(mtls, /^Port modes:\n {2}port 9090: PERMISSIVE: inbound accepts mutual TLS and plaintext$/m);
  const gw = described(all.find((r) => r.kind === 'Gateway' && r.metadata.name === 'public')!, all);
  assert.match(gw, /^Listeners:\n {2}http: HTTP port 80, host \* \(any\)\n {2}www: HTTPS port 443, host www\.example\.com, TLS Terminate with www-example-com$/m);
  const tp = described(first('TimeoutPolicy'), all);
  assert.match(tp, /^Applies to:\n {2}(Service|HTTPRoute) default\/\S+/m);
  assert.match(tp, /^Settings:\n( {2}\w+: \S+\n)+/m);
  const ra = described(first('RequestAuthentication'), all);
  assert.match(ra, /^Issuers:\n {2}\S+: (keys from|inline keys)/m);
});
