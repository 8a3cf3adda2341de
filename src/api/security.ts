// Request security kinds (trellis.dev/v1alpha1), Istio's in Trellis form:
//
// AuthorizationPolicy: who may call what on the selected workloads.
//   selector (workload labels; absent: the whole namespace, or the whole mesh
//   in `trellis-system`) or targetRef (a Service: its workloads), action
//   ALLOW (default) | DENY, rules[] of from[].source / to[].operation / when[].
//   DENY policies are evaluated first and win; when any ALLOW policy applies
//   to a workload, a request must match one of its rules; an ALLOW policy
//   without rules is "allow nothing" (default deny). docs/authorization.md.
//
// RequestAuthentication: which JWT issuers a workload accepts. A request
//   with an invalid token is rejected (401); one without a token passes
//   (an AuthorizationPolicy can require `requestPrincipals`).
import { isIP } from 'node:net';
import { Type, type Static } from '@sinclair/typebox';
import { Closed, StringEnum, StringMap, Group, KindName, ObjectName } from './schema-common.ts';

const Strings = (max = 64) => Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { maxItems: max });
const Port = Type.String({ pattern: '^[0-9]{1,5}$', description: 'a port number, as Istio writes it ("8080")' });

export const PolicyTargetRef = Closed({
  group: Type.Optional(Group),
  kind: Type.Optional(KindName),
  name: ObjectName,
});

export const AuthzSource = Closed({
  /** Peer SPIFFE IDs (`spiffe://td/ns/x/sa/y` or Istio's `td/ns/x/sa/y`); `*` globs at the start or end. */
  principals: Type.Optional(Strings()),
  notPrincipals: Type.Optional(Strings()),
  /** `iss/sub` of a verified JWT; `*` = any authenticated request. */
  requestPrincipals: Type.Optional(Strings()),
  notRequestPrincipals: Type.Optional(Strings()),
  namespaces: Type.Optional(Strings()),
  notNamespaces: Type.Optional(Strings()),
  /** `namespace/name`, or `name` in the policy's namespace. */
  serviceAccounts: Type.Optional(Strings()),
  notServiceAccounts: Type.Optional(Strings()),
  /** CIDRs or single addresses of the direct peer. */
  ipBlocks: Type.Optional(Strings()),
  notIpBlocks: Type.Optional(Strings()),
});
export type AuthzSource = Static<typeof AuthzSource>;

export const AuthzOperation = Closed({
  /** Workload (application) ports. */
  ports: Type.Optional(Type.Array(Port, { maxItems: 64 })),
  notPorts: Type.Optional(Type.Array(Port, { maxItems: 64 })),
  /** Exact, `/prefix/*`, `*suffix` or `*`. */
  paths: Type.Optional(Strings()),
  notPaths: Type.Optional(Strings()),
  methods: Type.Optional(Strings()),
  notMethods: Type.Optional(Strings()),
  hosts: Type.Optional(Strings()),
  notHosts: Type.Optional(Strings()),
});
export type AuthzOperation = Static<typeof AuthzOperation>;

export const AuthzCondition = Closed({
  /** request.headers[name], request.auth.claims[claim] (nested: [a][b]), request.auth.principal,
   * request.auth.audiences, request.auth.presenter, source.ip, source.namespace, source.principal. */
  key: Type.String({ minLength: 1, maxLength: 256 }),
  values: Type.Optional(Strings()),
  notValues: Type.Optional(Strings()),
});
export type AuthzCondition = Static<typeof AuthzCondition>;

export const AuthzRule = Closed({
  from: Type.Optional(Type.Array(Closed({ source: AuthzSource }), { maxItems: 32 })),
  to: Type.Optional(Type.Array(Closed({ operation: AuthzOperation }), { maxItems: 32 })),
  when: Type.Optional(Type.Array(AuthzCondition, { maxItems: 32 })),
});
export type AuthzRule = Static<typeof AuthzRule>;

export const AuthorizationPolicySpec = Closed({
  selector: Type.Optional(StringMap()),
  targetRef: Type.Optional(PolicyTargetRef),
  action: Type.Optional(StringEnum(['ALLOW', 'DENY'] as const, { default: 'ALLOW' })),
  rules: Type.Optional(Type.Array(AuthzRule, { maxItems: 128 })),
});
export type AuthorizationPolicySpec = Static<typeof AuthorizationPolicySpec>;

export const JwtRule = Closed({
  issuer: Type.String({ minLength: 1, maxLength: 512 }),
  /** Accepted `aud` values; empty: any. */
  audiences: Type.Optional(Strings()),
  /** Exactly one of jwksUri (http/https), jwks (inline JSON), jwksFile (a path on the proxy's host). */
  jwksUri: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
  jwks: Type.Optional(Type.String({ minLength: 1, maxLength: 65536 })),
  jwksFile: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
  fromHeaders: Type.Optional(Type.Array(Closed({ name: Type.String({ minLength: 1, maxLength: 256 }), prefix: Type.Optional(Type.String({ maxLength: 64 })) }), { maxItems: 8 })),
  fromParams: Type.Optional(Strings(8)),
  /** Keep the token header when forwarding to the app (default false: removed). */
  forwardOriginalToken: Type.Optional(Type.Boolean()),
});
export type JwtRule = Static<typeof JwtRule>;

export const RequestAuthenticationSpec = Closed({
  selector: Type.Optional(StringMap()),
  targetRef: Type.Optional(PolicyTargetRef),
  jwtRules: Type.Array(JwtRule, { minItems: 1, maxItems: 16 }),
});
export type RequestAuthenticationSpec = Static<typeof RequestAuthenticationSpec>;

export const SUPPORTED_WHEN_KEYS = /^(request\.headers\[[^\]]+\]|request\.auth\.claims(\[[^\]]+\])+|request\.auth\.principal|request\.auth\.audiences|request\.auth\.presenter|source\.ip|source\.namespace|source\.principal)$/;

// ---- cross-field checks (kinds.ts) ----

type Report = (segments: (string | number)[], message: string) => void;

function checkCidr(v: string): boolean {
  const [a, len, ...rest] = v.split('/');
  if (rest.length > 0 || a === undefined) return false;
  const fam = isIP(a);
  if (fam === 0) return false;
  if (len === undefined) return true;
  if (!/^[0-9]{1,3}$/.test(len)) return false;
  return Number(len) <= (fam === 4 ? 32 : 128);
}

function checkGlob(v: string): boolean {
  const stars = v.split('*').length - 1;
  return stars === 0 || v === '*' || (stars === 1 && (v.startsWith('*') || v.endsWith('*')));
}

function checkTargetRef(spec: { selector?: Record<string, string>; targetRef?: { group?: string; kind?: string } }, report: Report): void {
  if (spec.selector && spec.targetRef) report(['spec', 'targetRef'], 'cannot be combined with selector');
  const t = spec.targetRef;
  if (!t) return;
  const service = (t.kind ?? 'Service') === 'Service' && (t.group === undefined || t.group === '' || t.group === 'trellis.dev');
  const gateway = t.kind === 'Gateway' && t.group === 'gateway.networking.k8s.io';
  if (!service && !gateway) report(['spec', 'targetRef', 'kind'], 'must name a Service, or a Gateway (group gateway.networking.k8s.io)');
}

export function checkAuthorizationPolicy(spec: AuthorizationPolicySpec, report: Report): void {
  checkTargetRef(spec, report);
  (spec.rules ?? []).forEach((rule, r) => {
    (rule.from ?? []).forEach((f, i) => {
      const at = (field: string, j: number) => ['spec', 'rules', r, 'from', i, 'source', field, j];
      const s = f.source;
      if (Object.keys(s).length === 0) report(['spec', 'rules', r, 'from', i, 'source'], 'must set at least one field');
      for (const field of ['principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces'] as const) {
        (s[field] ?? []).forEach((v, j) => {
          if (!checkGlob(v)) report(at(field, j), 'a "*" may only stand alone, or at the start or the end');
        });
      }
      for (const field of ['ipBlocks', 'notIpBlocks'] as const) {
        (s[field] ?? []).forEach((v, j) => {
          if (!checkCidr(v)) report(at(field, j), `must be an IP address or CIDR (got ${JSON.stringify(v)})`);
        });
      }
      for (const field of ['serviceAccounts', 'notServiceAccounts'] as const) {
        (s[field] ?? []).forEach((v, j) => {
          if (!/^([a-z0-9]([-a-z0-9]*[a-z0-9])?\/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(v)) report(at(field, j), 'must be "namespace/name" or "name"');
        });
      }
    });
    (rule.to ?? []).forEach((t, i) => {
      const o = t.operation;
      if (Object.keys(o).length === 0) report(['spec', 'rules', r, 'to', i, 'operation'], 'must set at least one field');
      for (const field of ['ports', 'notPorts'] as const) {
        (o[field] ?? []).forEach((v, j) => {
          const n = Number(v);
          if (n < 1 || n > 65535) report(['spec', 'rules', r, 'to', i, 'operation', field, j], 'must be between 1 and 65535');
        });
      }
      for (const field of ['paths', 'notPaths', 'hosts', 'notHosts'] as const) {
        (o[field] ?? []).forEach((v, j) => {
          if (!checkGlob(v)) report(['spec', 'rules', r, 'to', i, 'operation', field, j], 'a "*" may only stand alone, or at the start or the end');
        });
      }
    });
    (rule.when ?? []).forEach((w, i) => {
      if (!SUPPORTED_WHEN_KEYS.test(w.key)) report(['spec', 'rules', r, 'when', i, 'key'], `unsupported key ${JSON.stringify(w.key)} (supported: request.headers[<name>], request.auth.claims[<claim>], request.auth.principal, request.auth.audiences, request.auth.presenter, source.ip, source.namespace, source.principal)`);
      if ((w.values ?? []).length === 0 && (w.notValues ?? []).length === 0) report(['spec', 'rules', r, 'when', i], 'needs values or notValues');
      if (w.key === 'source.ip') [...(w.values ?? []), ...(w.notValues ?? [])].forEach((v) => {
        if (!checkCidr(v)) report(['spec', 'rules', r, 'when', i, 'values'], `must be IP addresses or CIDRs (got ${JSON.stringify(v)})`);
      });
    });
  });
}

export function checkRequestAuthentication(spec: RequestAuthenticationSpec, report: Report): void {
  checkTargetRef(spec, report);
  const issuers = new Set<string>();
  spec.jwtRules.forEach((j, i) => {
    const at = (f: string) => ['spec', 'jwtRules', i, f];
    if (issuers.has(j.issuer)) report(at('issuer'), `duplicate issuer ${JSON.stringify(j.issuer)}`);
    issuers.add(j.issuer);
    const set = [j.jwksUri, j.jwks, j.jwksFile].filter((x) => x !== undefined).length;
    if (set !== 1) report(['spec', 'jwtRules', i], 'exactly one of jwksUri, jwks, jwksFile is required');
    if (j.jwksUri !== undefined && !/^https?:\/\/[^/]+/.test(j.jwksUri)) report(at('jwksUri'), 'must be an http:// or https:// URL');
    if (j.jwks !== undefined) {
      try {
        const doc = JSON.parse(j.jwks) as { keys?: unknown };
        if (!Array.isArray(doc.keys)) report(at('jwks'), 'must be a JWKS document with a "keys" list');
      } catch {
        report(at('jwks'), 'must be JSON (a JWKS document)');
      }
    }
  });
}
