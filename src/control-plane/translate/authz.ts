// AuthorizationPolicy and RequestAuthentication -> Envoy HTTP filters on the
// inbound listeners of the workloads they select, and network RBAC filters
// on their inbound TCP listeners (below: only identity, IP and port rules
// apply there), pure like the rest of translate/. For each inbound HTTP
// listener (port P of workload W):
//
//   jwt_authn  (RequestAuthentication)  a provider per jwtRule; every path
//              requires any provider OR allowMissing (Istio: a missing token
//              passes, an invalid one is 401)
//   RBAC DENY  (AuthorizationPolicy action DENY)   one policy per rule
//   RBAC ALLOW (AuthorizationPolicy action ALLOW)  one policy per rule; a
//              policy with no rules is a never-matching policy (allow
//              nothing = default deny); present only when some ALLOW
//              policy applies
//   router
//
// Applicability: a policy in W's namespace whose selector matches W's labels
// (no selector: every workload of the namespace), or whose targetRef Service
// selects W; policies in the root namespace `trellis-system` without a
// selector apply mesh-wide. At a gateway node, the policies whose targetRef
// names its Gateway (group gateway.networking.k8s.io) apply to every HTTP
// listener, with `to.ports` matched at run time. `to.ports` name workload ports and are decided
// here per listener (a `to` entry for another port is dropped; a rule left
// with no `to` entry never matches). RBAC policy names are
// `ns[<ns>]-policy[<name>]-rule[<i>]`: the proxy labels denials with them.
import type { AuthorizationPolicySpec, AuthzOperation, AuthzRule, AuthzSource, RequestAuthenticationSpec } from '../../api/security.ts';
import type { MeshState, Meta, ProxyNode, ServiceResource, WorkloadInstance } from './model.ts';
import { nsOf } from './model.ts';
import type { TranslationParts } from './translate.ts';
import { nodeWorkload, selects } from './services.ts';
import { HCM_NAME, withHcmConfig } from './filters.ts';
import type { RouteWarning } from './http-routes.ts';

export const MESH_ROOT_NAMESPACE = 'trellis-system';
const RBAC_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
const NETWORK_RBAC_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC';
const JWT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';
const JWT_FILTER = 'envoy.filters.http.jwt_authn';
/** Where the jwt_authn filter puts verified claims (payloadInMetadata). */
export const JWT_PAYLOAD_KEY = 'payload';

export interface AuthorizationPolicyResource {
  metadata: Meta;
  spec: AuthorizationPolicySpec;
}

export interface RequestAuthenticationResource {
  metadata: Meta;
  spec: RequestAuthenticationSpec;
}

export interface SecurityPolicies {
  readonly authorizationPolicies: readonly AuthorizationPolicyResource[];
  readonly requestAuthentications: readonly RequestAuthenticationResource[];
}

type Json = Record<string, unknown>;

// ---- which policies apply ----

/** What policies are evaluated for: a workload, or a Gateway served by a gateway node. */
export type PolicySubject = WorkloadInstance | { gateway: string; namespace: string };

function applies(p: { metadata: Meta; spec: { selector?: Record<string, string>; targetRef?: { kind?: string; name: string } } }, w: PolicySubject, services: readonly ServiceResource[]): boolean {
  const ns = nsOf(p.metadata);
  const t = p.spec.targetRef;
  if ('gateway' in w) return t !== undefined && t.kind === 'Gateway' && t.name === w.gateway && ns === w.namespace;
  if (t) {
    if ((t.kind ?? 'Service') !== 'Service') return false;
    const svc = services.find((s) => s.metadata.name === t.name && nsOf(s.metadata) === ns);
    return svc !== undefined && ns === w.namespace && selects(svc, w);
  }
  const sel = Object.entries(p.spec.selector ?? {});
  if (ns === MESH_ROOT_NAMESPACE && sel.length === 0) return true;
  if (ns !== w.namespace) return false;
  return sel.every(([k, v]) => w.labels?.[k] === v);
}

const byName = (a: { metadata: Meta }, b: { metadata: Meta }) => `${nsOf(a.metadata)}/${a.metadata.name}`.localeCompare(`${nsOf(b.metadata)}/${b.metadata.name}`);

export function policiesFor(sec: SecurityPolicies, state: MeshState, w: PolicySubject): { deny: AuthorizationPolicyResource[]; allow: AuthorizationPolicyResource[]; authn: RequestAuthenticationResource[] } {
  const ap = sec.authorizationPolicies.filter((p) => applies(p, w, state.services)).sort(byName);
  return {
    deny: ap.filter((p) => p.spec.action === 'DENY'),
    allow: ap.filter((p) => (p.spec.action ?? 'ALLOW') === 'ALLOW'),
    authn: sec.requestAuthentications.filter((p) => applies(p, w, state.services)).sort(byName),
  };
}

// ---- matchers ----

const reEscape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const regex = (r: string) => ({ safeRegex: { regex: r } });

/** Istio-style glob ("*", "x*", "*x", exact) -> StringMatcher. */
function glob(v: string, o: { ignoreCase?: boolean } = {}): Json {
  const ic = o.ignoreCase ? { ignoreCase: true } : {};
  if (v === '*') return regex('.+');
  if (v.startsWith('*')) return { suffix: v.slice(1), ...ic };
  if (v.endsWith('*')) return { prefix: v.slice(0, -1), ...ic };
  return { exact: v, ...ic };
}

const spiffe = (v: string) => (v.startsWith('spiffe://') ? v : `spiffe://${v}`);

function principalName(v: string): Json {
  if (v === '*') return { authenticated: { principalName: regex('.+') } };
  if (v.startsWith('*')) return { authenticated: { principalName: { suffix: v.slice(1) } } };
  if (v.endsWith('*')) return { authenticated: { principalName: { prefix: spiffe(v.slice(0, -1)) } } };
  return { authenticated: { principalName: { exact: spiffe(v) } } };
}

function globRegex(v: string): string {
  if (v === '*') return '[^/]+';
  if (v.startsWith('*')) return `[^/]*${reEscape(v.slice(1))}`;
  if (v.endsWith('*')) return `${reEscape(v.slice(0, -1))}[^/]*`;
  return reEscape(v);
}

function namespacePrincipal(td: string | undefined, ns: string): Json {
  return { authenticated: { principalName: regex(`spiffe://${td ? reEscape(td) : '[^/]+'}/ns/${globRegex(ns)}/sa/[^/]+`) } };
}

function serviceAccountPrincipal(td: string | undefined, policyNs: string, v: string): Json {
  const [ns, sa] = v.includes('/') ? (v.split('/') as [string, string]) : [policyNs, v];
  return { authenticated: { principalName: td ? { exact: `spiffe://${td}/ns/${ns}/sa/${sa}` } : regex(`spiffe://[^/]+/ns/${reEscape(ns)}/sa/${reEscape(sa)}`) } };
}

function cidr(v: string): Json {
  const [address, len] = v.split('/') as [string, string | undefined];
  return { directRemoteIp: { addressPrefix: address, prefixLen: len !== undefined ? Number(len) : address.includes(':') ? 128 : 32 } };
}

function metadata(path: readonly string[], value: Json): Json {
  return { metadata: { filter: JWT_FILTER, path: path.map((key) => ({ key })), value } };
}

/** A claim equal to v, whether the claim is a string or a list of strings. */
function claimIs(path: readonly string[], v: string): Json {
  return { orIds: { ids: [metadata(path, { stringMatch: glob(v) }), metadata(path, { listMatch: { oneOf: { stringMatch: glob(v) } } })] } };
}

const orP = (xs: Json[]): Json => (xs.length === 1 ? xs[0]! : { orRules: { rules: xs } });
const andP = (xs: Json[]): Json => (xs.length === 0 ? { any: true } : xs.length === 1 ? xs[0]! : { andRules: { rules: xs } });
const orI = (xs: Json[]): Json => (xs.length === 1 ? xs[0]! : { orIds: { ids: xs } });
const andI = (xs: Json[]): Json => (xs.length === 0 ? { any: true } : xs.length === 1 ? xs[0]! : { andIds: { ids: xs } });

function pathMatcher(v: string): Json {
  if (v === '*') return { urlPath: { path: { prefix: '/' } } };
  if (v.endsWith('/*')) return { urlPath: { path: { prefix: v.slice(0, -1) } } };
  return { urlPath: { path: glob(v) } };
}

function hostMatcher(v: string): Json {
  const m = glob(v, { ignoreCase: true });
  if ('exact' in m) return orP([{ header: { name: ':authority', stringMatch: m } }, { header: { name: ':authority', stringMatch: { prefix: `${v}:`, ignoreCase: true } } }]);
  return { header: { name: ':authority', stringMatch: m } };
}

function operationPermissions(o: AuthzOperation): Json[] {
  const out: Json[] = [];
  const field = (vals: string[] | undefined, f: (v: string) => Json, not = false) => {
    if (!vals || vals.length === 0) return;
    const m = orP(vals.map(f));
    out.push(not ? { notRule: m } : m);
  };
  field(o.methods, (v) => ({ header: { name: ':method', stringMatch: { exact: v } } }));
  field(o.notMethods, (v) => ({ header: { name: ':method', stringMatch: { exact: v } } }), true);
  field(o.paths, pathMatcher);
  field(o.notPaths, pathMatcher, true);
  field(o.hosts, hostMatcher);
  field(o.notHosts, hostMatcher, true);
  return out;
}

function sourcePrincipals(s: AuthzSource, td: string | undefined, policyNs: string): Json[] {
  const out: Json[] = [];
  const field = (vals: string[] | undefined, f: (v: string) => Json, not = false) => {
    if (!vals || vals.length === 0) return;
    const m = orI(vals.map(f));
    out.push(not ? { notId: m } : m);
  };
  field(s.principals, principalName);
  field(s.notPrincipals, principalName, true);
  field(s.namespaces, (v) => namespacePrincipal(td, v));
  field(s.notNamespaces, (v) => namespacePrincipal(td, v), true);
  field(s.serviceAccounts, (v) => serviceAccountPrincipal(td, policyNs, v));
  field(s.notServiceAccounts, (v) => serviceAccountPrincipal(td, policyNs, v), true);
  field(s.ipBlocks, cidr);
  field(s.notIpBlocks, cidr, true);
  const rp = (v: string) => metadata(['principal'], { stringMatch: glob(v) });
  field(s.requestPrincipals, rp);
  field(s.notRequestPrincipals, rp, true);
  return out;
}

/** `when` conditions: request-side ones become permissions, caller-side ones principals. */
function conditions(rule: AuthzRule, td: string | undefined): { perms: Json[]; ids: Json[] } {
  const perms: Json[] = [];
  const ids: Json[] = [];
  for (const w of rule.when ?? []) {
    const header = /^request\.headers\[([^\]]+)\]$/.exec(w.key);
    const claims = /^request\.auth\.claims((\[[^\]]+\])+)$/.exec(w.key);
    const values = w.values ?? [];
    const notValues = w.notValues ?? [];
    if (header) {
      const name = header[1]!.toLowerCase();
      const m = (v: string) => ({ header: { name, stringMatch: glob(v) } });
      if (values.length > 0) perms.push(orP(values.map(m)));
      if (notValues.length > 0) perms.push({ notRule: orP(notValues.map(m)) });
      continue;
    }
    let f: ((v: string) => Json) | undefined;
    if (claims) {
      const path = [JWT_PAYLOAD_KEY, ...[...claims[1]!.matchAll(/\[([^\]]+)\]/g)].map((x) => x[1]!)];
      f = (v) => claimIs(path, v);
    } else if (w.key === 'request.auth.principal') f = (v) => metadata(['principal'], { stringMatch: glob(v) });
    else if (w.key === 'request.auth.audiences') f = (v) => claimIs([JWT_PAYLOAD_KEY, 'aud'], v);
    else if (w.key === 'request.auth.presenter') f = (v) => claimIs([JWT_PAYLOAD_KEY, 'azp'], v);
    else if (w.key === 'source.ip') f = cidr;
    else if (w.key === 'source.namespace') f = (v) => namespacePrincipal(td, v);
    else if (w.key === 'source.principal') f = principalName;
    if (!f) continue; // rejected by the kind's check
    if (values.length > 0) ids.push(orI(values.map(f)));
    if (notValues.length > 0) ids.push({ notId: orI(notValues.map(f)) });
  }
  return { perms, ids };
}

/** One RBAC policy for one rule on one port, or undefined when the rule cannot match there. */
export function rulePolicy(rule: AuthzRule, port: number | undefined, td: string | undefined, policyNs: string): Json | undefined {
  const when = conditions(rule, td);
  let permissions: Json[];
  if (rule.to && rule.to.length > 0) {
    permissions = [];
    for (const t of rule.to) {
      const o = t.operation;
      const extra: Json[] = [];
      if (port !== undefined) {
        if (o.ports && o.ports.length > 0 && !o.ports.map(Number).includes(port)) continue;
        if (o.notPorts && o.notPorts.map(Number).includes(port)) continue;
      } else {
        if (o.ports && o.ports.length > 0) extra.push(orP(o.ports.map((p) => ({ destinationPort: Number(p) }))));
        if (o.notPorts && o.notPorts.length > 0) extra.push({ notRule: orP(o.notPorts.map((p) => ({ destinationPort: Number(p) }))) });
      }
      permissions.push(andP([...operationPermissions(o), ...extra, ...when.perms]));
    }
    if (permissions.length === 0) return undefined;
  } else permissions = [andP(when.perms)];
  const principals = rule.from && rule.from.length > 0
    ? rule.from.map((f) => andI([...sourcePrincipals(f.source, td, policyNs), ...when.ids]))
    : [andI(when.ids)];
  return { permissions, principals };
}

const NEVER = { permissions: [{ notRule: { any: true } }], principals: [{ notId: { any: true } }] };

function rbacFilter(action: 'ALLOW' | 'DENY', policies: readonly AuthorizationPolicyResource[], port: number | undefined, td: string | undefined): object | undefined {
  const out: Record<string, Json> = {};
  for (const p of policies) {
    const ns = nsOf(p.metadata);
    const key = (i: number) => `ns[${ns}]-policy[${p.metadata.name}]-rule[${i}]`;
    let any = false;
    (p.spec.rules ?? []).forEach((rule, i) => {
      const pol = rulePolicy(rule, port, td, ns);
      if (pol) {
        out[key(i)] = pol;
        any = true;
      }
    });
    // ALLOW with nothing that can match here: keep the name, match nothing.
    if (!any && action === 'ALLOW') out[key(0)] = NEVER;
  }
  if (Object.keys(out).length === 0) return undefined;
  return { name: `envoy.filters.http.rbac.${action.toLowerCase()}`, typedConfig: { '@type': RBAC_TYPE, rules: { action, policies: out } } };
}

function jwtFilter(policies: readonly RequestAuthenticationResource[]): object | undefined {
  const providers: Record<string, Json> = {};
  for (const p of policies) {
    p.spec.jwtRules.forEach((j, i) => {
      const jwks = j.jwksUri !== undefined
        ? { remoteJwks: { httpUri: { uri: j.jwksUri, cluster: 'trellis-jwks', timeout: '5s' }, cacheDuration: '300s' } }
        : j.jwks !== undefined ? { localJwks: { inlineString: j.jwks } } : { localJwks: { filename: j.jwksFile } };
      providers[`${nsOf(p.metadata)}.${p.metadata.name}.${i}`] = {
        issuer: j.issuer,
        ...(j.audiences && j.audiences.length > 0 ? { audiences: j.audiences } : {}),
        ...jwks,
        forward: j.forwardOriginalToken ?? false,
        ...(j.fromHeaders && j.fromHeaders.length > 0 ? { fromHeaders: j.fromHeaders.map((h) => ({ name: h.name, ...(h.prefix !== undefined ? { valuePrefix: h.prefix } : {}) })) } : {}),
        ...(j.fromParams && j.fromParams.length > 0 ? { fromParams: j.fromParams } : {}),
        payloadInMetadata: JWT_PAYLOAD_KEY,
      };
    });
  }
  const names = Object.keys(providers);
  if (names.length === 0) return undefined;
  return {
    name: JWT_FILTER,
    typedConfig: {
      '@type': JWT_TYPE,
      providers,
      rules: [{ match: { prefix: '/' }, requires: { requiresAny: { requirements: [...names.map((providerName) => ({ providerName })), { allowMissing: {} }] } } }],
    },
  };
}

// ---- TCP: the network RBAC filter ----
//
// On a TCP port only who connects (principals, namespaces, service accounts,
// IP blocks) and the port can be decided. A rule with HTTP-only fields
// (methods, paths, hosts, requestPrincipals, request.* conditions) is treated
// as Istio does: ignored in an ALLOW policy (it cannot match), and in a DENY
// policy applied without those fields (it denies more, failing closed). Each
// such rule is reported as a translation warning (trellis proxy-status).

/** The HTTP-only fields a rule uses, as paths inside the rule. */
export function httpOnlyFields(rule: AuthzRule): string[] {
  const out: string[] = [];
  (rule.to ?? []).forEach((t, i) => {
    for (const f of ['methods', 'notMethods', 'paths', 'notPaths', 'hosts', 'notHosts'] as const) if (t.operation[f]?.length) out.push(`to[${i}].operation.${f}`);
  });
  (rule.from ?? []).forEach((f, i) => {
    for (const k of ['requestPrincipals', 'notRequestPrincipals'] as const) if (f.source[k]?.length) out.push(`from[${i}].source.${k}`);
  });
  (rule.when ?? []).forEach((w, i) => {
    if (w.key.startsWith('request.')) out.push(`when[${i}] ${w.key}`);
  });
  return out;
}

/** The rule without its HTTP-only fields (for DENY on TCP). */
function withoutHttpOnly(rule: AuthzRule): AuthzRule {
  return {
    ...(rule.from ? { from: rule.from.map((f) => ({ source: { ...f.source, requestPrincipals: undefined, notRequestPrincipals: undefined } })) } : {}),
    ...(rule.to ? { to: rule.to.map((t) => ({ operation: { ...t.operation, methods: undefined, notMethods: undefined, paths: undefined, notPaths: undefined, hosts: undefined, notHosts: undefined } })) } : {}),
    ...(rule.when ? { when: rule.when.filter((w) => !w.key.startsWith('request.')) } : {}),
  } as AuthzRule;
}

function networkRbacFilter(action: 'ALLOW' | 'DENY', policies: readonly AuthorizationPolicyResource[], port: number, td: string | undefined, warn: (w: RouteWarning) => void): object | undefined {
  const out: Record<string, Json> = {};
  for (const p of policies) {
    const ns = nsOf(p.metadata);
    const key = (i: number) => `ns[${ns}]-policy[${p.metadata.name}]-rule[${i}]`;
    let any = false;
    (p.spec.rules ?? []).forEach((rule, i) => {
      const http = httpOnlyFields(rule);
      if (http.length > 0) {
        warn({
          route: `AuthorizationPolicy ${ns}/${p.metadata.name}`,
          message: `rules[${i}]: ${http.join(', ')} cannot apply to TCP port ${port}: ${action === 'ALLOW' ? 'the rule is ignored there (it allows nothing)' : 'the rule is applied there without them (it denies more)'}`,
        });
        if (action === 'ALLOW') return;
      }
      const pol = rulePolicy(http.length > 0 ? withoutHttpOnly(rule) : rule, port, td, ns);
      if (pol) {
        out[key(i)] = pol;
        any = true;
      }
    });
    if (!any && action === 'ALLOW') out[key(0)] = NEVER;
  }
  if (Object.keys(out).length === 0) return undefined;
  return { name: `envoy.filters.network.rbac.${action.toLowerCase()}`, typedConfig: { '@type': NETWORK_RBAC_TYPE, statPrefix: `tcp_rbac_${action.toLowerCase()}.`, rules: { action, policies: out } } };
}

/** The network filters (before tcp_proxy) for workload `w`'s TCP listener on `port`. */
export function networkSecurityFilters(sec: SecurityPolicies, state: MeshState, w: PolicySubject, port: number, warn: (w: RouteWarning) => void): object[] {
  const { deny, allow } = policiesFor(sec, state, w);
  const td = state.meshTls?.trustDomain;
  const out: object[] = [];
  const d = deny.length > 0 ? networkRbacFilter('DENY', deny, port, td, warn) : undefined;
  if (d) out.push(d);
  const a = allow.length > 0 ? networkRbacFilter('ALLOW', allow, port, td, warn) : undefined;
  if (a) out.push(a);
  return out;
}

/** The HTTP filters (before the router) for workload `w`'s listener on `port`
 * (undefined: ports are matched at run time, as at gateways). */
export function securityFilters(sec: SecurityPolicies, state: MeshState, w: PolicySubject, port: number | undefined): object[] {
  const { deny, allow, authn } = policiesFor(sec, state, w);
  const td = state.meshTls?.trustDomain;
  const out: object[] = [];
  const j = jwtFilter(authn);
  if (j) out.push(j);
  const d = deny.length > 0 ? rbacFilter('DENY', deny, port, td) : undefined;
  if (d) out.push(d);
  const a = allow.length > 0 ? rbacFilter('ALLOW', allow, port, td) : undefined;
  if (a) out.push(a);
  return out;
}

interface ChainShape {
  name: string;
  filterChainMatch?: { destinationPort?: number };
  filters: { name: string; typedConfig?: { httpFilters?: object[] } }[];
}

function withFilters(chain: ChainShape, filters: object[]): ChainShape {
  if (filters.length === 0) return chain;
  return withHcmConfig(chain, (tc) => ({ ...tc, httpFilters: [...filters, ...((tc.httpFilters as object[] | undefined) ?? [])] }));
}

const isTcpChain = (c: ChainShape): boolean => c.filters.length > 0 && c.filters[0]!.name !== HCM_NAME && (c.filters[c.filters.length - 1]!.typedConfig as { '@type'?: string } | undefined)?.['@type'] === 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

const PORT_NAME = /^inbound\|(\d+)/;

/** translateParts() output with the security filters on this proxy's
 * inbound listeners (gateways: every HTTP listener); unchanged when no
 * policy applies. */
export function applySecurity(parts: TranslationParts, state: MeshState, node: ProxyNode, sec: SecurityPolicies | undefined): TranslationParts {
  if (!sec || (sec.authorizationPolicies.length === 0 && sec.requestAuthentications.length === 0) || node.kind === 'proxyless') return parts;
  const gateway = node.kind === 'gateway';
  const me: PolicySubject | undefined = gateway
    ? (node.gateway !== undefined ? { gateway: node.gateway, namespace: node.namespace } : undefined)
    : nodeWorkload(state, node);
  if (!me) return parts;
  const cache = new Map<number | undefined, object[]>();
  const filtersFor = (port: number | undefined) => {
    let f = cache.get(port);
    if (!f) cache.set(port, (f = securityFilters(sec, state, me, port)));
    return f;
  };
  let changed = false;
  const warnings: RouteWarning[] = [];
  const listeners = (parts.own.listeners as { name: string; trafficDirection?: string; filterChains?: ChainShape[] }[]).map((l) => {
    if (!l.filterChains || (!gateway && l.trafficDirection !== 'INBOUND')) return l;
    const chains = l.filterChains.map((c) => {
      const m = PORT_NAME.exec(c.name) ?? PORT_NAME.exec(l.name);
      const port = gateway ? undefined : m ? Number(m[1]) : c.filterChainMatch?.destinationPort;
      if (!gateway && port === undefined) return c;
      if (isTcpChain(c)) {
        // Gateways' TCP listeners are not covered (policies there name a Gateway and match ports at run time).
        if (gateway || port === undefined) return c;
        const nf = networkSecurityFilters(sec, state, me, port, (w) => warnings.push(w));
        if (nf.length === 0) return c;
        changed = true;
        return { ...c, filters: [...nf, ...c.filters] };
      }
      const next = withFilters(c, filtersFor(port));
      if (next !== c) changed = true;
      return next;
    });
    return { ...l, filterChains: chains };
  });
  if (!changed) return parts;
  const seen = new Set(parts.warnings.map((w) => `${w.route}\u0000${w.message}`));
  const fresh = warnings.filter((w) => !seen.has(`${w.route}\u0000${w.message}`) && seen.add(`${w.route}\u0000${w.message}`));
  return { ...parts, own: { ...parts.own, listeners }, warnings: [...parts.warnings, ...fresh] };
}
