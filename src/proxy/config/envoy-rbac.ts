// envoy.extensions.filters.http.rbac.v3.RBAC (an HCM HTTP filter) -> RbacSpec,
// read strictly: every field is understood, declared ignored, or an error.
//
// Supported: `rules` (action ALLOW | DENY, policies with permissions and
// principals). Permissions: any, andRules, orRules, notRule, header (also
// `:method`, `:authority`, `:path`), urlPath, destinationPort,
// destinationPortRange. Principals: any, andIds, orIds, notId,
// authenticated (the mTLS peer's SPIFFE ID), directRemoteIp / remoteIp /
// sourceIp (CIDR), header, urlPath, metadata (claims the jwt_authn filter
// verified). Policy names written `ns[<namespace>]-policy[<name>]-rule[<i>]`
// (Istio's convention, used by the Trellis control plane) label the denial
// metric with the policy and its namespace.
import { isIP } from 'node:net';
import type { HeaderMatchSpec, StringMatch } from './types.ts';
import { FieldReader } from './field-reader.ts';
import { parseHeaderMatcher, parseStringMatcher } from './envoy-route.ts';

export const RBAC_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBAC';
export const RBAC_FILTER_NAME = 'envoy.filters.http.rbac';
/** The network filter (before tcp_proxy): decided once per connection,
 * after TLS termination, on who connects and to which port. */
export const NETWORK_RBAC_TYPE = 'envoy.extensions.filters.network.rbac.v3.RBAC';
export const NETWORK_RBAC_FILTER_NAME = 'envoy.filters.network.rbac';
/** Matchers that need an HTTP request: refused in the network filter. */
const HTTP_ONLY = new Set(['header', 'urlPath', 'metadata']);

export interface CidrSpec {
  readonly address: string;
  readonly prefixLen: number;
}

export type RbacPermission =
  | { readonly kind: 'any' }
  | { readonly kind: 'and' | 'or'; readonly rules: readonly RbacPermission[] }
  | { readonly kind: 'not'; readonly rule: RbacPermission }
  | { readonly kind: 'header'; readonly header: HeaderMatchSpec }
  | { readonly kind: 'path'; readonly match: StringMatch }
  | { readonly kind: 'port'; readonly start: number; readonly end: number };

/** Envoy's ValueMatcher subset: string, present, bool, list (one of). */
export type ValueMatch =
  | { readonly kind: 'string'; readonly match: StringMatch }
  | { readonly kind: 'present'; readonly present: boolean }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'list'; readonly oneOf: ValueMatch };

export type RbacPrincipal =
  | { readonly kind: 'any' }
  | { readonly kind: 'and' | 'or'; readonly ids: readonly RbacPrincipal[] }
  | { readonly kind: 'not'; readonly id: RbacPrincipal }
  /** The verified peer identity; no match = any authenticated peer. */
  | { readonly kind: 'authenticated'; readonly match?: StringMatch }
  | { readonly kind: 'ip'; readonly cidr: CidrSpec }
  | { readonly kind: 'header'; readonly header: HeaderMatchSpec }
  | { readonly kind: 'path'; readonly match: StringMatch }
  | { readonly kind: 'metadata'; readonly filter: string; readonly path: readonly string[]; readonly value: ValueMatch; readonly invert: boolean };

export interface RbacPolicySpec {
  readonly name: string;
  readonly permissions: readonly RbacPermission[];
  readonly principals: readonly RbacPrincipal[];
}

export interface RbacSpec {
  /** Absent `rules`: the filter allows everything (Envoy). */
  readonly action: 'ALLOW' | 'DENY' | 'LOG' | 'NONE';
  readonly policies: readonly RbacPolicySpec[];
}

const ACTIONS: Record<string, RbacSpec['action']> = { ALLOW: 'ALLOW', DENY: 'DENY', LOG: 'LOG' };
const ACTION_NUMBERS = ['ALLOW', 'DENY', 'LOG'];
const MAX_DEPTH = 16;

/** `network`: the network filter's config, where HTTP-only matchers are errors. */
export function readRbac(r: FieldReader, opts: { network?: boolean } = {}): RbacSpec | undefined {
  const net = opts.network === true;
  const before = r.issues.errors.length;
  let spec: RbacSpec = { action: 'NONE', policies: [] };
  const rules = r.obj('rules');
  if (rules) {
    const action = rules.enumOf('action', ACTIONS, ACTION_NUMBERS) ?? 'ALLOW';
    const policies: RbacPolicySpec[] = [];
    const raw = rules.struct('policies') ?? {};
    for (const name of Object.keys(raw).sort()) {
      const p = readPolicy(raw[name], `${rules.at('policies')}.${name}`, name, r, net);
      if (p) policies.push(p);
    }
    rules.ignore('auditLoggingOptions');
    rules.done();
    spec = { action, policies };
  }
  if (r.has('matcher')) r.error('matcher', 'the unified matcher form is not supported; use rules');
  if (r.has('shadowRules')) r.warn('shadowRules', 'shadow rules are not evaluated');
  r.ignore('shadowRules', 'statPrefix', 'rulesStatPrefix', 'shadowRulesStatPrefix', 'trackPerRuleStats', 'shadowMatcher');
  if (net) {
    const e = r.enumOf('enforcementType', { ONE_TIME_ON_FIRST_BYTE: 'once', CONTINUOUS: 'continuous' }, ['ONE_TIME_ON_FIRST_BYTE', 'CONTINUOUS']);
    if (e === 'continuous') r.error('enforcementType', 'only ONE_TIME_ON_FIRST_BYTE is supported (decided once per connection)');
    r.ignore('delayDenyMs');
  }
  r.done();
  return r.issues.errors.length > before ? undefined : spec;
}

function readPolicy(value: unknown, path: string, name: string, parent: FieldReader, net: boolean): RbacPolicySpec | undefined {
  const r = FieldReader.of(value, path, parent.issues);
  if (!r) return undefined;
  const permissions = r.objList('permissions', { required: true, nonEmpty: true }).map((p) => readPermission(p, 0, net));
  const principals = r.objList('principals', { required: true, nonEmpty: true }).map((p) => readPrincipal(p, 0, net));
  if (r.has('condition') || r.has('checkedCondition')) r.error('condition', 'CEL conditions are not supported');
  r.ignore('condition', 'checkedCondition');
  r.done();
  if (permissions.some((p) => !p) || principals.some((p) => !p)) return undefined;
  return { name, permissions: permissions as RbacPermission[], principals: principals as RbacPrincipal[] };
}

const PERMISSION_KINDS = ['any', 'andRules', 'orRules', 'notRule', 'header', 'urlPath', 'destinationPort', 'destinationPortRange', 'destinationIp', 'requestedServerName', 'metadata', 'matcher', 'uriTemplate', 'sourcedMetadata'];

function readPermission(r: FieldReader, depth: number, net: boolean): RbacPermission | undefined {
  if (depth > MAX_DEPTH) {
    r.issues.error(r.path, `nested deeper than ${MAX_DEPTH} levels`);
    return undefined;
  }
  const which = r.oneOf(PERMISSION_KINDS, { required: true });
  if (net && which !== undefined && HTTP_ONLY.has(which)) {
    r.error(which, 'needs an HTTP request: not available in the network RBAC filter (supported there: any, andRules, orRules, notRule, destinationPort, destinationPortRange)');
    r.ignore(...PERMISSION_KINDS);
    r.done();
    return undefined;
  }
  let out: RbacPermission | undefined;
  switch (which) {
    case 'any':
      if (r.bool('any') !== true) r.error('any', 'must be true');
      else out = { kind: 'any' };
      break;
    case 'andRules':
    case 'orRules': {
      const set = r.obj(which);
      if (!set) break;
      const rules = set.objList('rules', { required: true, nonEmpty: true }).map((x) => readPermission(x, depth + 1, net));
      set.done();
      if (rules.length > 0 && rules.every((x) => x)) out = { kind: which === 'andRules' ? 'and' : 'or', rules: rules as RbacPermission[] };
      break;
    }
    case 'notRule': {
      const n = r.obj('notRule');
      const rule = n ? readPermission(n, depth + 1, net) : undefined;
      if (rule) out = { kind: 'not', rule };
      break;
    }
    case 'header': {
      const h = r.obj('header');
      const header = h ? parseHeaderMatcher(h) : undefined;
      if (header) out = { kind: 'header', header };
      break;
    }
    case 'urlPath': {
      const match = readPathMatcher(r.obj('urlPath'));
      if (match) out = { kind: 'path', match };
      break;
    }
    case 'destinationPort': {
      const p = r.uint('destinationPort', { min: 1, max: 65535 });
      if (p !== undefined) out = { kind: 'port', start: p, end: p };
      break;
    }
    case 'destinationPortRange': {
      const pr = r.obj('destinationPortRange');
      if (!pr) break;
      const start = pr.uint('start', { required: true, max: 65536 });
      const end = pr.uint('end', { required: true, max: 65536 });
      pr.done();
      // Int32Range: [start, end).
      if (start !== undefined && end !== undefined) {
        if (end <= start) pr.error('end', 'must be greater than start');
        else out = { kind: 'port', start, end: end - 1 };
      }
      break;
    }
    case undefined:
      break;
    default:
      r.error(which, 'not supported by the Trellis proxy (supported: any, andRules, orRules, notRule, header, urlPath, destinationPort, destinationPortRange)');
      r.ignore(which);
  }
  if (which === undefined) r.ignore(...PERMISSION_KINDS);
  r.done();
  return out;
}

const PRINCIPAL_KINDS = ['any', 'andIds', 'orIds', 'notId', 'authenticated', 'directRemoteIp', 'remoteIp', 'sourceIp', 'header', 'urlPath', 'metadata', 'filterState', 'sourcedMetadata', 'customPrincipal'];

function readPrincipal(r: FieldReader, depth: number, net: boolean): RbacPrincipal | undefined {
  if (depth > MAX_DEPTH) {
    r.issues.error(r.path, `nested deeper than ${MAX_DEPTH} levels`);
    return undefined;
  }
  const which = r.oneOf(PRINCIPAL_KINDS, { required: true });
  if (net && which !== undefined && HTTP_ONLY.has(which)) {
    r.error(which, 'needs an HTTP request: not available in the network RBAC filter (supported there: any, andIds, orIds, notId, authenticated, directRemoteIp, remoteIp, sourceIp)');
    r.ignore(...PRINCIPAL_KINDS);
    r.done();
    return undefined;
  }
  let out: RbacPrincipal | undefined;
  switch (which) {
    case 'any':
      if (r.bool('any') !== true) r.error('any', 'must be true');
      else out = { kind: 'any' };
      break;
    case 'andIds':
    case 'orIds': {
      const set = r.obj(which);
      if (!set) break;
      const ids = set.objList('ids', { required: true, nonEmpty: true }).map((x) => readPrincipal(x, depth + 1, net));
      set.done();
      if (ids.length > 0 && ids.every((x) => x)) out = { kind: which === 'andIds' ? 'and' : 'or', ids: ids as RbacPrincipal[] };
      break;
    }
    case 'notId': {
      const n = r.obj('notId');
      const id = n ? readPrincipal(n, depth + 1, net) : undefined;
      if (id) out = { kind: 'not', id };
      break;
    }
    case 'authenticated': {
      const a = r.obj('authenticated');
      if (!a) break;
      const pn = a.obj('principalName');
      const match = pn ? parseStringMatcher(pn) : undefined;
      a.done();
      if (!pn) out = { kind: 'authenticated' };
      else if (match) out = { kind: 'authenticated', match };
      break;
    }
    case 'directRemoteIp':
    case 'remoteIp':
    case 'sourceIp': {
      const cidr = readCidr(r.obj(which));
      if (cidr) out = { kind: 'ip', cidr };
      break;
    }
    case 'header': {
      const h = r.obj('header');
      const header = h ? parseHeaderMatcher(h) : undefined;
      if (header) out = { kind: 'header', header };
      break;
    }
    case 'urlPath': {
      const match = readPathMatcher(r.obj('urlPath'));
      if (match) out = { kind: 'path', match };
      break;
    }
    case 'metadata': {
      const m = r.obj('metadata');
      if (m) out = readMetadataMatcher(m);
      break;
    }
    case undefined:
      break;
    default:
      r.error(which, 'not supported by the Trellis proxy (supported: any, andIds, orIds, notId, authenticated, directRemoteIp, remoteIp, sourceIp, header, urlPath, metadata)');
      r.ignore(which);
  }
  if (which === undefined) r.ignore(...PRINCIPAL_KINDS);
  r.done();
  return out;
}

function readPathMatcher(r: FieldReader | undefined): StringMatch | undefined {
  if (!r) return undefined;
  const p = r.obj('path', { required: true });
  const m = p ? parseStringMatcher(p) : undefined;
  r.done();
  return m;
}

function readCidr(r: FieldReader | undefined): CidrSpec | undefined {
  if (!r) return undefined;
  const address = r.str('addressPrefix', { required: true });
  const family = address === undefined ? 0 : isIP(address);
  if (address !== undefined && family === 0) r.error('addressPrefix', `must be an IPv4 or IPv6 address (got ${JSON.stringify(address)})`);
  const prefixLen = r.uint('prefixLen', { max: family === 6 ? 128 : 32 }) ?? 0;
  r.done();
  return address !== undefined && family !== 0 ? { address, prefixLen } : undefined;
}

function readMetadataMatcher(r: FieldReader): RbacPrincipal | undefined {
  const filter = r.str('filter', { required: true });
  const path: string[] = [];
  for (const seg of r.objList('path', { required: true, nonEmpty: true })) {
    const k = seg.str('key', { required: true });
    seg.done();
    if (k !== undefined) path.push(k);
  }
  const v = r.obj('value', { required: true });
  const value = v ? readValueMatcher(v, 0) : undefined;
  const invert = r.bool('invert') ?? false;
  r.done();
  if (filter === undefined || !value || path.length === 0) return undefined;
  return { kind: 'metadata', filter, path, value, invert };
}

function readValueMatcher(r: FieldReader, depth: number): ValueMatch | undefined {
  const which = r.oneOf(['stringMatch', 'presentMatch', 'boolMatch', 'listMatch', 'nullMatch', 'doubleMatch', 'orMatch'], { required: true });
  let out: ValueMatch | undefined;
  if (which === 'stringMatch') {
    const s = r.obj('stringMatch');
    const match = s ? parseStringMatcher(s) : undefined;
    if (match) out = { kind: 'string', match };
  } else if (which === 'presentMatch') {
    const p = r.bool('presentMatch');
    if (p !== undefined) out = { kind: 'present', present: p };
  } else if (which === 'boolMatch') {
    const b = r.bool('boolMatch');
    if (b !== undefined) out = { kind: 'bool', value: b };
  } else if (which === 'listMatch') {
    const l = r.obj('listMatch');
    if (l && depth < MAX_DEPTH) {
      const o = l.obj('oneOf', { required: true });
      const oneOf = o ? readValueMatcher(o, depth + 1) : undefined;
      l.done();
      if (oneOf) out = { kind: 'list', oneOf };
    }
  } else if (which !== undefined) {
    r.error(which, 'not supported (supported: stringMatch, presentMatch, boolMatch, listMatch)');
    r.ignore(which);
  }
  r.done();
  return out;
}
