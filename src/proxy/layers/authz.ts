// Authorization (Envoy's RBAC filter): one layer per RBAC config, in the
// order of the HCM's HTTP filters (the control plane puts DENY before ALLOW).
//
//   action DENY   a request matching any policy is denied
//   action ALLOW  a request matching no policy is denied (an ALLOW config
//                 whose policies can never match is "deny all")
//   LOG / no rules  nothing is denied
//
// A policy matches when one of its permissions (what is asked: method, path,
// host, port, headers) and one of its principals (who asks: the mTLS peer's
// SPIFFE ID, source IP, verified JWT claims from layers/jwt.ts) match.
// Denials are FORBIDDEN (403, gRPC PERMISSION_DENIED) and are counted in
// trellis_authz_denied_total{policy,namespace}: the matching DENY policy, or
// for ALLOW the policies of the config (policy names written
// `ns[<ns>]-policy[<name>]-rule[<i>]` give the labels).
import { BlockList, isIPv4 } from 'node:net';
import type { RbacPermission, RbacPrincipal, RbacSpec, ValueMatch } from '../config/envoy-rbac.ts';
import type { HeaderMatchSpec } from '../config/types.ts';
import type { DownstreamInfo, Dispatch, Layer, ProxyRequest, RequestHead } from '../http/exchange.ts';
import { compileStringMatch, headerValue } from '../route-match.ts';
import { ProxyError } from '../errors.ts';
import type { Counter, CounterChild } from '../stats.ts';

export interface AuthzLayerDeps {
  /** trellis_authz_denied_total{policy,namespace} */
  readonly denied: Counter;
}

/** What a decision reads: a request (HTTP filter), or only the connection
 * (network filter, where the reader refuses HTTP-only matchers). A
 * ProxyRequest is one. */
export interface AuthzSubject {
  readonly head?: RequestHead;
  readonly ctx: { readonly downstream: DownstreamInfo; readonly attrs?: ReadonlyMap<string, unknown> };
}

type Pred = (req: AuthzSubject) => boolean;

export interface PolicyLabels {
  readonly policy: string;
  readonly namespace: string;
}

const ISTIO_NAME = /^ns\[([^\]]*)\]-policy\[([^\]]*)\]-rule\[\d+\]$/;

/** Metric labels for an RBAC policy name. */
export function policyLabels(name: string): PolicyLabels {
  const m = ISTIO_NAME.exec(name);
  return m ? { namespace: m[1]!, policy: m[2]! } : { namespace: '', policy: name };
}

/** One RBAC config compiled: `denied(subject)` is null when allowed, else
 * the labels the denial is counted under (and counts it). */
export function compileRbac(spec: RbacSpec, deps: AuthzLayerDeps): { denied(s: AuthzSubject): PolicyLabels | null } {
  const policies = spec.policies.map((p) => {
    const perms = p.permissions.map(permission);
    const princ = p.principals.map(principal);
    return { labels: policyLabels(p.name), matches: (req: AuthzSubject) => perms.some((f) => f(req)) && princ.some((f) => f(req)) };
  });
  const children = new Map<string, CounterChild>();
  const count = (l: PolicyLabels): void => {
    const key = `${l.namespace}\u0000${l.policy}`;
    let c = children.get(key);
    if (!c) children.set(key, (c = deps.denied.labels(l.policy, l.namespace)));
    c.inc();
  };
  // ALLOW denials name every policy of the config (usually one or two).
  const uniq = (xs: string[]) => [...new Set(xs)].sort().join(',');
  const allowLabels: PolicyLabels = { policy: uniq(policies.map((p) => p.labels.policy)) || '(none)', namespace: uniq(policies.map((p) => p.labels.namespace)) };

  const denyWith = (l: PolicyLabels): PolicyLabels => {
    count(l);
    return l;
  };
  switch (spec.action) {
    case 'DENY':
      return {
        denied(s) {
          for (const p of policies) if (p.matches(s)) return denyWith(p.labels);
          return null;
        },
      };
    case 'ALLOW':
      return {
        denied(s) {
          for (const p of policies) if (p.matches(s)) return null;
          return denyWith(allowLabels);
        },
      };
    default:
      return { denied: () => null };
  }
}

/** The policies a denial names, as `namespace/name` (the response says which). */
function display(l: PolicyLabels): string {
  return l.namespace ? `${l.namespace}/${l.policy}` : l.policy;
}

export function rbacLayer(spec: RbacSpec, deps: AuthzLayerDeps): Layer {
  if (spec.action !== 'ALLOW' && spec.action !== 'DENY') return (next) => next;
  const compiled = compileRbac(spec, deps);
  const allowNames = [...new Set(spec.policies.map((p) => display(policyLabels(p.name))))].sort().join(', ') || '(none)';
  return (next: Dispatch): Dispatch =>
    function rbac(req: ProxyRequest, handler) {
      const l = compiled.denied(req);
      if (l === null) return next(req, handler);
      req.ctx.attrs.set('authz.deniedBy', l);
      // Which policy and who asked, in the reason header and the body.
      const why = spec.action === 'DENY' ? `denied by AuthorizationPolicy ${display(l)} (a DENY rule matched)` : `no ALLOW rule of AuthorizationPolicy ${allowNames} matched`;
      const who = req.ctx.downstream.peerIdentity ?? 'a caller without a mesh identity (plaintext)';
      handler.onError(new ProxyError('FORBIDDEN', `${why}; caller: ${who}`));
    };
}

function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

function header(h: HeaderMatchSpec): Pred {
  const m = compileStringMatch(h.match);
  const v = (req: AuthzSubject) => (req.head ? headerValue(req.head, h.name) : undefined);
  return h.invert ? (req) => !m(v(req)) : (req) => m(v(req));
}

function permission(p: RbacPermission): Pred {
  switch (p.kind) {
    case 'any':
      return () => true;
    case 'and': {
      const fs = p.rules.map(permission);
      return (req) => fs.every((f) => f(req));
    }
    case 'or': {
      const fs = p.rules.map(permission);
      return (req) => fs.some((f) => f(req));
    }
    case 'not': {
      const f = permission(p.rule);
      return (req) => !f(req);
    }
    case 'header':
      return header(p.header);
    case 'path': {
      const m = compileStringMatch(p.match);
      return (req) => req.head !== undefined && m(pathOnly(req.head.path));
    }
    case 'port':
      return (req) => {
        const d = req.ctx.downstream;
        const port = d.originalDst?.port ?? d.localPort;
        return port >= p.start && port <= p.end;
      };
  }
}

function principal(p: RbacPrincipal): Pred {
  switch (p.kind) {
    case 'any':
      return () => true;
    case 'and': {
      const fs = p.ids.map(principal);
      return (req) => fs.every((f) => f(req));
    }
    case 'or': {
      const fs = p.ids.map(principal);
      return (req) => fs.some((f) => f(req));
    }
    case 'not': {
      const f = principal(p.id);
      return (req) => !f(req);
    }
    case 'authenticated': {
      if (!p.match) return (req) => req.ctx.downstream.peerIdentity !== undefined;
      const m = compileStringMatch(p.match);
      return (req) => {
        const id = req.ctx.downstream.peerIdentity;
        return id !== undefined && m(id);
      };
    }
    case 'ip': {
      const list = new BlockList();
      list.addSubnet(p.cidr.address, p.cidr.prefixLen, isIPv4(p.cidr.address) ? 'ipv4' : 'ipv6');
      return (req) => {
        const a = normalizeIp(req.ctx.downstream.remoteAddress);
        return a !== undefined && list.check(a, isIPv4(a) ? 'ipv4' : 'ipv6');
      };
    }
    case 'header':
      return header(p.header);
    case 'path': {
      const m = compileStringMatch(p.match);
      return (req) => req.head !== undefined && m(pathOnly(req.head.path));
    }
    case 'metadata': {
      const attr = `metadata:${p.filter}`;
      const vm = valueMatch(p.value);
      return (req) => vm(walk(req.ctx.attrs?.get(attr), p.path)) !== p.invert;
    }
  }
}

function normalizeIp(a: string): string | undefined {
  if (!a) return undefined;
  return a.startsWith('::ffff:') && isIPv4(a.slice(7)) ? a.slice(7) : a;
}

function walk(v: unknown, path: readonly string[]): unknown {
  let cur = v;
  for (const k of path) {
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

function valueMatch(m: ValueMatch): (v: unknown) => boolean {
  switch (m.kind) {
    case 'string': {
      const f = compileStringMatch(m.match);
      return (v) => typeof v === 'string' && f(v);
    }
    case 'present':
      return (v) => (v !== undefined && v !== null) === m.present;
    case 'bool':
      return (v) => v === m.value;
    case 'list': {
      const f = valueMatch(m.oneOf);
      return (v) => Array.isArray(v) && v.some(f);
    }
  }
}
