// The kind registry: everything the control plane, CLI and dashboard know
// about a kind is one entry here (schema, cross-field checks, references for
// status, table columns). Adding a kind is adding an entry.
import type { TSchema } from '@sinclair/typebox';
import type { Resource } from './types.ts';
import type { PathSegment } from './schema-check.ts';
import {
  GATEWAY_GROUP, HTTPRouteSpec, GRPCRouteSpec, TCPRouteSpec, GatewaySpec,
  type HTTPRouteSpec as HTTPRouteSpecT, type GRPCRouteSpec as GRPCRouteSpecT, type TCPRouteSpec as TCPRouteSpecT,
  type GatewaySpec as GatewaySpecT, type ParentReference,
} from './gateway-api.ts';
import { checkHTTPRoute, checkGRPCRoute, checkTCPRoute, checkGateway } from './gateway-api-checks.ts';
import { TRELLIS_GROUP, ServiceSpec, WorkloadSpec, type ServiceSpec as ServiceSpecT, type WorkloadSpec as WorkloadSpecT } from './mesh.ts';
import { isIP } from 'node:net';
import { MeshTLSSpec, type MeshTLSSpec as MeshTLSSpecT } from './mesh-tls.ts';
import {
  AuthorizationPolicySpec, RequestAuthenticationSpec, checkAuthorizationPolicy, checkRequestAuthentication,
  type AuthorizationPolicySpec as AuthorizationPolicySpecT, type RequestAuthenticationSpec as RequestAuthenticationSpecT,
} from './security.ts';
import { ExternalServiceSpec, type ExternalServiceSpec as ExternalServiceSpecT } from './external-service.ts';
import { POLICY_KINDS } from './policies.ts';
import { PathNormalizationSpec, DEFAULT_PATH_NORMALIZATION_SPEC, type PathNormalizationSpec as PathNormalizationSpecT } from './path-normalization.ts';
import { SidecarSpec, checkSidecar, type SidecarSpec as SidecarSpecT } from './sidecar.ts';
import { TelemetrySpec, checkTelemetry, DEFAULT_SAMPLING_PERCENTAGE, type TelemetrySpec as TelemetrySpecT } from './telemetry.ts';
import { PluginSpec, checkPlugin, type PluginSpec as PluginSpecT } from './plugin.ts';

export type Report = (segments: PathSegment[], message: string) => void;

/** A reference from one resource to another that status checks for existence. */
export interface ObjectRef {
  /** parentRef/backendRef (routes), targetRef (policies attached to a Service or route). */
  role: 'parentRef' | 'backendRef' | 'targetRef';
  /** A kind in this registry; it must be listed in the referencing kind's `refersTo`. */
  kind: string;
  namespace: string;
  name: string;
  /** Where the reference sits, e.g. `spec.rules[0].backendRefs[1]`. */
  path: string;
}

export interface Column {
  header: string;
  /** Shown only with `-o wide`. */
  wide?: boolean;
  value(res: Resource): string;
}

export interface KindDef {
  kind: string;
  group: string;
  version: string;
  apiVersion: string;
  /** Lowercase plural, as in `httproutes.gateway.networking.k8s.io`. */
  plural: string;
  shortNames: readonly string[];
  /** Older apiVersions accepted on input (same schema) and rewritten to `apiVersion`. */
  alsoServed?: readonly string[];
  specSchema: TSchema;
  /** Metadata name rule: most kinds take a DNS-1123 subdomain; Service a DNS-1035 label (as Kubernetes). */
  nameRule: 'dns1123-subdomain' | 'dns1035-label';
  /** Cross-field rules the schema cannot state. `spec` has passed the schema and has defaults. */
  check?(spec: never, report: Report): void;
  references?(res: Resource): ObjectRef[];
  /** How status speaks of it: a route (Accepted by its parents, ResolvedRefs
   * for its backends) or a policy (Accepted, or TargetNotFound). */
  role?: 'route' | 'policy';
  /** The kinds `references` may name (status looks these up, and watches re-send dependents when they come and go). */
  refersTo?: readonly string[];
  columns: Column[];
}

function def<S>(d: Omit<KindDef, 'apiVersion' | 'check' | 'references'> & { check?(spec: S, report: Report): void; references?(res: Resource<S>): ObjectRef[] }): KindDef {
  return { ...d, apiVersion: `${d.group}/${d.version}` } as KindDef;
}

/** Does a (group, kind) reference name a mesh Service? Core "" (GAMMA, Kubernetes) and trellis.dev both do. */
export function isServiceRef(group: string | undefined, kind: string | undefined): boolean {
  return (kind ?? 'Service') === 'Service' && (group === undefined || group === '' || group === TRELLIS_GROUP);
}

function parentRefs(res: Resource<{ parentRefs?: ParentReference[] }>): ObjectRef[] {
  const out: ObjectRef[] = [];
  const ns = res.metadata.namespace ?? 'default';
  (res.spec.parentRefs ?? []).forEach((p, i) => {
    const path = `spec.parentRefs[${i}]`;
    const group = p.group ?? GATEWAY_GROUP;
    const kind = p.kind ?? 'Gateway';
    if (kind === 'Gateway' && group === GATEWAY_GROUP) out.push({ role: 'parentRef', kind: 'Gateway', namespace: p.namespace ?? ns, name: p.name, path });
    else if (isServiceRef(group, kind)) out.push({ role: 'parentRef', kind: 'Service', namespace: p.namespace ?? ns, name: p.name, path });
  });
  return out;
}

type RuleWithBackends = { backendRefs?: { group?: string; kind?: string; name: string; namespace?: string }[] };

function backendRefs(res: Resource<{ rules?: RuleWithBackends[] }>): ObjectRef[] {
  const out: ObjectRef[] = [];
  const ns = res.metadata.namespace ?? 'default';
  (res.spec.rules ?? []).forEach((rule, r) => {
    (rule.backendRefs ?? []).forEach((b, i) => {
      if (isServiceRef(b.group, b.kind)) {
        out.push({ role: 'backendRef', kind: 'Service', namespace: b.namespace ?? ns, name: b.name, path: `spec.rules[${r}].backendRefs[${i}]` });
      }
    });
  });
  return out;
}

const routeRefs = (res: Resource) => [...parentRefs(res as Resource<{ parentRefs?: ParentReference[] }>), ...backendRefs(res as Resource<{ rules?: RuleWithBackends[] }>)];
const list = (xs: readonly string[] | undefined, empty = '<none>') => (xs && xs.length > 0 ? xs.join(',') : empty);
const parentsColumn: Column = {
  header: 'PARENTS',
  value: (r) => list(((r.spec as { parentRefs?: ParentReference[] }).parentRefs ?? []).map((p) => `${p.kind ?? 'Gateway'}/${p.name}`)),
};
const backendsColumn: Column = {
  header: 'BACKENDS',
  wide: true,
  value: (r) => list(((r.spec as { rules?: RuleWithBackends[] }).rules ?? []).flatMap((rule) => (rule.backendRefs ?? []).map((b) => b.name))),
};

/** A security policy's targetRef (a Service in the policy's namespace). */
function policyTargetRef(res: Resource<{ targetRef?: { kind?: string; name: string } }>): ObjectRef[] {
  const t = res.spec.targetRef;
  const kind = t?.kind === 'Gateway' ? 'Gateway' : 'Service';
  return t ? [{ role: 'targetRef', kind, namespace: res.metadata.namespace ?? 'default', name: t.name, path: 'spec.targetRef' }] : [];
}

function targetColumn(spec: { selector?: Record<string, string>; targetRef?: { kind?: string; name: string } }): string {
  if (spec.targetRef) return `${spec.targetRef.kind ?? 'Service'}/${spec.targetRef.name}`;
  const sel = Object.entries(spec.selector ?? {});
  return sel.length > 0 ? sel.map(([k, v]) => `${k}=${v}`).join(',') : '<namespace>';
}

export const KINDS: readonly KindDef[] = [
  def<HTTPRouteSpecT>({
    kind: 'HTTPRoute', group: GATEWAY_GROUP, version: 'v1', plural: 'httproutes', shortNames: ['hr', 'httproute'],
    alsoServed: [`${GATEWAY_GROUP}/v1beta1`],
    specSchema: HTTPRouteSpec, nameRule: 'dns1123-subdomain', check: checkHTTPRoute, references: routeRefs, refersTo: ['Service', 'Gateway'], role: 'route',
    columns: [{ header: 'HOSTNAMES', value: (r) => list((r.spec as HTTPRouteSpecT).hostnames, '') }, parentsColumn, backendsColumn],
  }),
  def<GRPCRouteSpecT>({
    kind: 'GRPCRoute', group: GATEWAY_GROUP, version: 'v1', plural: 'grpcroutes', shortNames: ['gr', 'grpcroute'],
    specSchema: GRPCRouteSpec, nameRule: 'dns1123-subdomain', check: checkGRPCRoute, references: routeRefs, refersTo: ['Service', 'Gateway'], role: 'route',
    columns: [{ header: 'HOSTNAMES', value: (r) => list((r.spec as GRPCRouteSpecT).hostnames, '') }, parentsColumn, backendsColumn],
  }),
  def<TCPRouteSpecT>({
    kind: 'TCPRoute', group: GATEWAY_GROUP, version: 'v1alpha2', plural: 'tcproutes', shortNames: ['tr', 'tcproute'],
    specSchema: TCPRouteSpec, nameRule: 'dns1123-subdomain', check: checkTCPRoute, references: routeRefs, refersTo: ['Service', 'Gateway'], role: 'route',
    columns: [parentsColumn, backendsColumn],
  }),
  def<GatewaySpecT>({
    kind: 'Gateway', group: GATEWAY_GROUP, version: 'v1', plural: 'gateways', shortNames: ['gtw', 'gw', 'gateway'],
    alsoServed: [`${GATEWAY_GROUP}/v1beta1`],
    specSchema: GatewaySpec, nameRule: 'dns1123-subdomain', check: checkGateway,
    columns: [
      { header: 'CLASS', value: (r) => (r.spec as GatewaySpecT).gatewayClassName },
      { header: 'LISTENERS', value: (r) => (r.spec as GatewaySpecT).listeners.map((l) => `${l.name}:${l.protocol}/${l.port}`).join(',') },
    ],
  }),
  def<ServiceSpecT>({
    kind: 'Service', group: TRELLIS_GROUP, version: 'v1alpha1', plural: 'services', shortNames: ['svc', 'service'],
    specSchema: ServiceSpec, nameRule: 'dns1035-label',
    check(spec, report) {
      const names = new Set<string>();
      const ports = new Set<number>();
      spec.ports.forEach((p, i) => {
        if (p.name !== undefined) {
          if (names.has(p.name)) report(['spec', 'ports', i, 'name'], `duplicate port name "${p.name}"`);
          names.add(p.name);
        } else if (spec.ports.length > 1) report(['spec', 'ports', i, 'name'], 'is required when the service has more than one port');
        if (ports.has(p.port)) report(['spec', 'ports', i, 'port'], `duplicate port ${p.port}`);
        ports.add(p.port);
        if (typeof p.targetPort === 'number' && (p.targetPort < 1 || p.targetPort > 65535)) report(['spec', 'ports', i, 'targetPort'], 'must be between 1 and 65535');
        if (typeof p.targetPort === 'string' && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(p.targetPort)) report(['spec', 'ports', i, 'targetPort'], 'must be a port number or a port name');
      });
    },
    columns: [
      { header: 'PORTS', value: (r) => (r.spec as ServiceSpecT).ports.map((p) => `${p.port}/${p.protocol ?? 'http'}`).join(',') },
      { header: 'SELECTOR', value: (r) => list(Object.entries((r.spec as ServiceSpecT).selector ?? {}).map(([k, v]) => `${k}=${v}`)) },
    ],
  }),
  def<WorkloadSpecT>({
    kind: 'Workload', group: TRELLIS_GROUP, version: 'v1alpha1', plural: 'workloads', shortNames: ['wl', 'workload'],
    specSchema: WorkloadSpec, nameRule: 'dns1123-subdomain',
    check(spec, report) {
      if (isIP(spec.address) === 0 && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(spec.address)) {
        report(['spec', 'address'], 'must be an IP address or a DNS name');
      }
      const names = new Set<string>();
      (spec.ports ?? []).forEach((p, i) => {
        if (p.name === undefined) return;
        if (names.has(p.name)) report(['spec', 'ports', i, 'name'], `duplicate port name "${p.name}"`);
        names.add(p.name);
      });
    },
    columns: [
      { header: 'ADDRESS', value: (r) => (r.spec as WorkloadSpecT).address },
      { header: 'SERVICE-ACCOUNT', value: (r) => (r.spec as WorkloadSpecT).serviceAccount ?? 'default' },
      { header: 'LOCALITY', wide: true, value: (r) => { const l = (r.spec as WorkloadSpecT).locality; return l ? [l.region, l.zone].filter(Boolean).join('/') || '<none>' : '<none>'; } },
      { header: 'LABELS', wide: true, value: (r) => list(Object.entries(r.metadata.labels ?? {}).map(([k, v]) => `${k}=${v}`)) },
    ],
  }),
  def<MeshTLSSpecT>({
    kind: 'MeshTLS', group: TRELLIS_GROUP, version: 'v1alpha1', plural: 'meshtlses', shortNames: ['mtls', 'meshtls', 'peerauthentication'],
    specSchema: MeshTLSSpec, nameRule: 'dns1123-subdomain',
    check(spec, report) {
      const ports = new Set<number>();
      (spec.portLevel ?? []).forEach((p, i) => {
        if (ports.has(p.port)) report(['spec', 'portLevel', i, 'port'], `duplicate port ${p.port}`);
        ports.add(p.port);
      });
      if (spec.mode === undefined && (spec.portLevel ?? []).length === 0) report(['spec', 'mode'], 'is required when portLevel is empty');
    },
    columns: [
      { header: 'MODE', value: (r) => (r.spec as MeshTLSSpecT).mode ?? '<inherit>' },
      { header: 'SELECTOR', value: (r) => list(Object.entries((r.spec as MeshTLSSpecT).selector ?? {}).map(([k, v]) => `${k}=${v}`), '<namespace>') },
      { header: 'PORTS', wide: true, value: (r) => list(((r.spec as MeshTLSSpecT).portLevel ?? []).map((p) => `${p.port}:${p.mode}`)) },
    ],
  }),
  def<AuthorizationPolicySpecT>({
    kind: 'AuthorizationPolicy', group: TRELLIS_GROUP, version: 'v1alpha1', plural: 'authorizationpolicies', shortNames: ['ap', 'authz', 'authorizationpolicy'],
    specSchema: AuthorizationPolicySpec, nameRule: 'dns1123-subdomain', check: checkAuthorizationPolicy,
    references: (r) => policyTargetRef(r as Resource<{ targetRef?: { kind?: string; name: string } }>), refersTo: ['Service', 'Gateway'], role: 'policy',
    columns: [
      { header: 'ACTION', value: (r) => (r.spec as AuthorizationPolicySpecT).action ?? 'ALLOW' },
      { header: 'TARGET', value: (r) => targetColumn(r.spec as AuthorizationPolicySpecT) },
      { header: 'RULES', value: (r) => String(((r.spec as AuthorizationPolicySpecT).rules ?? []).length) },
    ],
  }),
  def<RequestAuthenticationSpecT>({
    kind: 'RequestAuthentication', group: TRELLIS_GROUP, version: 'v1alpha1', plural: 'requestauthentications', shortNames: ['ra', 'requestauthentication'],
    specSchema: RequestAuthenticationSpec, nameRule: 'dns1123-subdomain', check: checkRequestAuthentication,
    references: (r) => policyTargetRef(r as Resource<{ targetRef?: { kind?: string; name: string } }>), refersTo: ['Service', 'Gateway'], role: 'policy',
    columns: [
      { header: 'TARGET', value: (r) => targetColumn(r.spec as RequestAuthenticationSpecT) },
      { header: 'ISSUERS', value: (r) => list((r.spec as RequestAuthenticationSpecT).jwtRules.map((j) => j.issuer)) },
    ],
  }),
  def<TelemetrySpecT>({
    kind: 'Telemetry', group: TRELLIS_GROUP, version: 'v1alpha1', plural: 'telemetries', shortNames: ['telemetry', 'tel'],
    specSchema: TelemetrySpec, nameRule: 'dns1123-subdomain', check: checkTelemetry,
    columns: [
      { header: 'TRACING', value: (r) => { const t = (r.spec as TelemetrySpecT).tracing; return !t ? '<none>' : t.disabled ? 'disabled' : `${t.samplingPercentage ?? DEFAULT_SAMPLING_PERCENTAGE}%`; } },
      { header: 'ACCESS-LOG', value: (r) => { const a = (r.spec as TelemetrySpecT).accessLogging; return !a ? '<none>' : a.disabled ? 'disabled' : 'on'; } },
      { header: 'SELECTOR', value: (r) => list(Object.entries((r.spec as TelemetrySpecT).selector ?? {}).map(([k, v]) => `${k}=${v}`), '<namespace>') },
      { header: 'COLLECTOR', wide: true, value: (r) => (r.spec as TelemetrySpecT).tracing?.collector ?? '-' },
    ],
  }),
  def<PathNormalizationSpecT>({
    kind: 'PathNormalization', group: TRELLIS_GROUP, version: 'v1alpha1', plural: 'pathnormalizations', shortNames: ['pathnormalization', 'pn'],
    specSchema: PathNormalizationSpec, nameRule: 'dns1123-subdomain',
    columns: [
      { header: 'NORMALIZE', value: (r) => String((r.spec as PathNormalizationSpecT).normalize ?? DEFAULT_PATH_NORMALIZATION_SPEC.normalize) },
      { header: 'MERGE-SLASHES', value: (r) => String((r.spec as PathNormalizationSpecT).mergeSlashes ?? DEFAULT_PATH_NORMALIZATION_SPEC.mergeSlashes) },
      { header: 'ESCAPED-SLASHES', value: (r) => (r.spec as PathNormalizationSpecT).escapedSlashes ?? DEFAULT_PATH_NORMALIZATION_SPEC.escapedSlashes },
      { header: 'SELECTOR', value: (r) => list(Object.entries((r.spec as PathNormalizationSpecT).selector ?? {}).map(([k, v]) => `${k}=${v}`), '<namespace>') },
    ],
  }),
  def<PluginSpecT>({
    kind: 'Plugin', group: TRELLIS_GROUP, version: 'v1alpha1', plural: 'plugins', shortNames: ['plugin', 'wasmplugin'],
    specSchema: PluginSpec, nameRule: 'dns1123-subdomain', check: checkPlugin,
    columns: [
      { header: 'TYPE', value: (r) => (r.spec as PluginSpecT).type },
      { header: 'PHASE', value: (r) => `${(r.spec as PluginSpecT).phase ?? 'before-router'}/${(r.spec as PluginSpecT).order ?? 0}` },
      { header: 'SOURCE', value: (r) => { const s = (r.spec as PluginSpecT).source; return s.url ?? s.file ?? 'inline'; } },
      { header: 'SELECTOR', value: (r) => list(Object.entries((r.spec as PluginSpecT).selector ?? {}).map(([k, v]) => `${k}=${v}`), '<namespace>') },
      { header: 'FAILURE', wide: true, value: (r) => (r.spec as PluginSpecT).failurePolicy ?? 'closed' },
    ],
  }),
  def<SidecarSpecT>({
    kind: 'Sidecar', group: TRELLIS_GROUP, version: 'v1alpha1', plural: 'sidecars', shortNames: ['sidecar', 'sc'],
    specSchema: SidecarSpec, nameRule: 'dns1123-subdomain', check: checkSidecar,
    columns: [
      { header: 'SELECTOR', value: (r) => list(Object.entries((r.spec as SidecarSpecT).selector ?? {}).map(([k, v]) => `${k}=${v}`), '<namespace>') },
      { header: 'EGRESS', value: (r) => list((r.spec as SidecarSpecT).egress.flatMap((e) => e.hosts)) },
    ],
  }),
  // ---------------------------------------------------------------------------
  // Policy kinds go here (trellis.dev/v1alpha1): TimeoutPolicy, RetryPolicy,
  // CircuitBreakerPolicy, RateLimitPolicy, FaultPolicy, MeshTLS /
  // PeerAuthentication, AuthorizationPolicy. Each is one `def({...})` entry:
  // a spec schema (with a `targetRefs` to a Service or route), optional
  // `check`, `references` + `refersTo` (a dangling targetRef shows in status
  // as Accepted=False/TargetNotFound) and columns.
  // ---------------------------------------------------------------------------
  ...POLICY_KINDS,
  def<ExternalServiceSpecT>({
    kind: 'ExternalService', group: TRELLIS_GROUP, version: 'v1alpha1', plural: 'externalservices', shortNames: ['es', 'externalservice', 'serviceentry'],
    specSchema: ExternalServiceSpec, nameRule: 'dns1123-subdomain',
    check(spec, report) {
      const ports = new Set<number>();
      spec.ports.forEach((p, i) => {
        if (ports.has(p.port)) report(['spec', 'ports', i, 'port'], `duplicate port ${p.port}`);
        ports.add(p.port);
      });
      spec.hosts.forEach((h, i) => {
        if (h.startsWith('*')) report(['spec', 'hosts', i], 'wildcard hosts are not supported (the sidecar needs a host to dial)');
      });
      if (spec.tls && spec.ports.some((p) => (p.protocol ?? 'http') !== 'http')) report(['spec', 'tls'], 'TLS origination applies to http ports only');
    },
    columns: [
      { header: 'HOSTS', value: (r) => list((r.spec as ExternalServiceSpecT).hosts) },
      { header: 'PORTS', value: (r) => list((r.spec as ExternalServiceSpecT).ports.map((p) => `${p.port}${p.targetPort ? `->${p.targetPort}` : ''}/${p.protocol ?? 'http'}`)) },
      { header: 'TLS', value: (r) => ((r.spec as ExternalServiceSpecT).tls ? 'originate' : '-') },
    ],
  }),
];

const byKind = new Map(KINDS.map((k) => [k.kind, k]));

/** Every kind some other kind refers to (what status resolution must look up). */
export function referencedKinds(): string[] {
  return [...new Set(KINDS.flatMap((k) => k.refersTo ?? []))];
}

export function kindDef(kind: string): KindDef | undefined {
  return byKind.get(kind);
}

/**
 * Resolve what a user typed (`httproute`, `httproutes`, `hr`, `HTTPRoute`,
 * `httproutes.gateway.networking.k8s.io`, `svc`) to a kind.
 */
export function resolveKind(name: string): KindDef | undefined {
  const lower = name.toLowerCase();
  for (const k of KINDS) {
    if (
      k.kind.toLowerCase() === lower || k.plural === lower || k.shortNames.includes(lower) ||
      `${k.plural}.${k.group}` === lower || `${k.kind.toLowerCase()}.${k.group}` === lower
    ) return k;
  }
  return undefined;
}
