// What `trellis describe` says about a resource's spec, in its kind's own
// words: a route's parents, hostnames and rules -> backends; a Gateway's
// listeners; an AuthorizationPolicy's target, action and rules (who may do
// what, under which conditions); a MeshTLS's scope and mode with what the mode
// means; a traffic policy's target and settings. Each function returns
// `[label, lines]` sections; describe.ts lays them out. Pure.
import type { Resource } from '../api/types.ts';
import { POLICY_KIND_NAMES } from '../api/policies.ts';
import type { AuthorizationPolicySpec, AuthzRule, RequestAuthenticationSpec } from '../api/security.ts';
import type { MeshTLSSpec } from '../api/mesh-tls.ts';
import type { GatewaySpec } from '../api/gateway-api.ts';
import type { ServiceSpec, WorkloadSpec } from '../api/mesh.ts';
import type { ExternalServiceSpec } from '../api/external-service.ts';
import type { TelemetrySpec } from '../api/telemetry.ts';
import { DEFAULT_PATH_NORMALIZATION_SPEC, type PathNormalizationSpec } from '../api/path-normalization.ts';
import type { PluginSpec } from '../api/plugin.ts';
import type { SidecarSpec } from '../api/sidecar.ts';

export type Section = readonly [label: string, lines: string[]];

const MESH_ROOT_NAMESPACE = 'trellis-system';

interface RuleLike {
  matches?: { path?: { type?: string; value?: string }; method?: string | { service?: string; method?: string }; headers?: { name: string; value: string }[] }[];
  backendRefs?: { name: string; namespace?: string; port?: number; weight?: number }[];
  filters?: { type: string }[];
  timeouts?: { request?: string; backendRequest?: string };
}

/** One line per route rule: `[0] PathPrefix / -> reviews-v1:9080 90%, reviews-v2:9080 10%`. */
export function summarizeRules(res: Resource): string[] {
  const rules = (res.spec as { rules?: RuleLike[] }).rules;
  if (!Array.isArray(rules)) return [];
  return rules.map((rule, i) => {
    const matches = (rule.matches ?? []).map((m) => {
      const parts: string[] = [];
      if (m.path) parts.push(`${m.path.type ?? 'PathPrefix'} ${m.path.value ?? '/'}`);
      if (typeof m.method === 'string') parts.push(m.method);
      else if (m.method) parts.push(`${m.method.service ?? '*'}/${m.method.method ?? '*'}`);
      for (const h of m.headers ?? []) parts.push(`${h.name}=${h.value}`);
      return parts.join(' ') || '*';
    });
    const total = (rule.backendRefs ?? []).reduce((s, b) => s + (b.weight ?? 1), 0);
    const backends = (rule.backendRefs ?? []).map((b) => {
      const share = total > 0 ? ` ${Math.round(((b.weight ?? 1) / total) * 100)}%` : '';
      return `${b.namespace ? `${b.namespace}/` : ''}${b.name}${b.port ? `:${b.port}` : ''}${share}`;
    });
    const extras = [
      ...(rule.filters ?? []).map((f) => f.type),
      ...(rule.timeouts?.request ? [`timeout ${rule.timeouts.request}`] : []),
      ...(rule.timeouts?.backendRequest ? [`backend timeout ${rule.timeouts.backendRequest}`] : []),
    ];
    return `[${i}] ${matches.length > 0 ? matches.join(' | ') : '*'} -> ${backends.length > 0 ? backends.join(', ') : '<no backends>'}${extras.length > 0 ? ` (${extras.join(', ')})` : ''}`;
  });
}

const labels = (m: Record<string, string> | undefined): string => Object.entries(m ?? {}).map(([k, v]) => `${k}=${v}`).join(',');

/** Who a selector-or-targetRef policy applies to, in words (docs/authorization.md "Which policies apply"). */
export function appliesTo(res: Resource, spec: { selector?: Record<string, string>; targetRef?: { kind?: string; name: string; sectionName?: string; port?: number } }): string {
  const ns = res.metadata.namespace ?? 'default';
  if (spec.targetRef) {
    const t = spec.targetRef;
    const port = t.sectionName ? ` (port ${t.sectionName})` : t.port ? ` (port ${t.port})` : '';
    return `${t.kind ?? 'Service'} ${ns}/${t.name}${port}`;
  }
  if (spec.selector && Object.keys(spec.selector).length > 0) return `workloads labelled ${labels(spec.selector)} in namespace ${ns}`;
  return ns === MESH_ROOT_NAMESPACE ? 'every workload in the mesh (no selector, mesh root namespace)' : `every workload in namespace ${ns} (no selector)`;
}

type Source = NonNullable<NonNullable<AuthzRule['from']>[number]['source']>;
type Operation = NonNullable<NonNullable<AuthzRule['to']>[number]['operation']>;

function fields(o: Record<string, unknown>): string {
  return Object.entries(o)
    .filter(([, v]) => Array.isArray(v) && v.length > 0)
    .map(([k, v]) => `${k}=${(v as string[]).join('|')}`)
    .join(' ');
}

/** `[0] from principals=... ; to methods=GET paths=/api/* ; when request.auth.claims[iss] in [..]`. */
function authzRule(rule: AuthzRule, i: number): string {
  const parts: string[] = [];
  const from = (rule.from ?? []).map((f) => fields(f.source as Source as Record<string, unknown>) || 'anyone');
  const to = (rule.to ?? []).map((t) => fields(t.operation as Operation as Record<string, unknown>) || 'anything');
  if (from.length > 0) parts.push(`from ${from.join(' or ')}`);
  if (to.length > 0) parts.push(`to ${to.join(' or ')}`);
  for (const w of rule.when ?? []) {
    parts.push(`when ${w.key}${w.values ? ` in [${w.values.join(', ')}]` : ''}${w.notValues ? ` not in [${w.notValues.join(', ')}]` : ''}`);
  }
  return `[${i}] ${parts.length > 0 ? parts.join('; ') : 'every request'}`;
}

function authorizationPolicy(res: Resource): Section[] {
  const s = res.spec as AuthorizationPolicySpec;
  const action = s.action ?? 'ALLOW';
  const rules = s.rules ?? [];
  const meaning = action === 'DENY'
    ? rules.length === 0 ? 'no rules: denies nothing' : 'a request matching any rule is denied (DENY policies are checked first)'
    : rules.length === 0 ? 'no rules: allows nothing, so only what other ALLOW policies open gets through (default deny)'
      : 'a request must match a rule of an ALLOW policy here, or it is denied';
  return [
    ['Applies to', [appliesTo(res, s)]],
    ['Action', [`${action}: ${meaning}`]],
    ['Rules', rules.length === 0 ? ['<none>'] : rules.map(authzRule)],
  ];
}

function requestAuthentication(res: Resource): Section[] {
  const s = res.spec as RequestAuthenticationSpec;
  return [
    ['Applies to', [appliesTo(res, s)]],
    ['Issuers', s.jwtRules.map((j) => {
      const keys = j.jwksUri ? `keys from ${j.jwksUri}` : j.jwksFile ? `keys from file ${j.jwksFile}` : j.jwks ? 'inline keys' : 'no keys';
      const aud = j.audiences && j.audiences.length > 0 ? `, audiences ${j.audiences.join(', ')}` : '';
      const from = j.fromHeaders?.map((h) => `header ${h.name}`).concat((j.fromParams ?? []).map((p) => `param ${p}`)) ?? (j.fromParams ?? []).map((p) => `param ${p}`);
      return `${j.issuer}: ${keys}${aud}${from.length > 0 ? `, token from ${from.join(', ')}` : ''}`;
    })],
    ['Effect', ['a request carrying an invalid token is rejected (401); one without a token passes unauthenticated (require one with an AuthorizationPolicy on requestPrincipals)']],
  ];
}

const MODE_MEANING: Record<string, string> = {
  STRICT: 'inbound accepts mutual TLS only; plaintext connections are closed (open ones too)',
  PERMISSIVE: 'inbound accepts mutual TLS and plaintext',
  DISABLE: 'inbound accepts plaintext only; callers do not originate mutual TLS',
};

function meshTls(res: Resource): Section[] {
  const s = res.spec as MeshTLSSpec;
  const ports = s.portLevel ?? [];
  return [
    ['Applies to', [appliesTo(res, s)]],
    ['Mode', [s.mode ? `${s.mode}: ${MODE_MEANING[s.mode]}` : '<inherited from the enclosing scope>']],
    ['Port modes', ports.length === 0 ? ['<none>'] : ports.map((p) => `port ${p.port}: ${p.mode}: ${MODE_MEANING[p.mode]}`)],
  ];
}

function gateway(res: Resource): Section[] {
  const s = res.spec as GatewaySpec;
  return [
    ['Class', [s.gatewayClassName]],
    ['Listeners', s.listeners.map((l) => {
      const tls = l.tls ? `, TLS ${l.tls.mode ?? 'Terminate'}${l.tls.certificateRefs ? ` with ${l.tls.certificateRefs.map((c) => `${c.namespace ? `${c.namespace}/` : ''}${c.name}`).join(', ')}` : ''}` : '';
      return `${l.name}: ${l.protocol} port ${l.port}, host ${l.hostname ?? '* (any)'}${tls}`;
    })],
  ];
}

function service(res: Resource): Section[] {
  const s = res.spec as ServiceSpec;
  return [
    ['Selects', [s.selector && Object.keys(s.selector).length > 0 ? `workloads labelled ${labels(s.selector)}` : '<no selector: no workloads>']],
    ['Ports', s.ports.map((p) => `${p.name ? `${p.name} ` : ''}${p.port}/${p.protocol ?? 'http'} -> workload port ${p.targetPort ?? p.port}`)],
  ];
}

function workload(res: Resource): Section[] {
  const s = res.spec as WorkloadSpec;
  const loc = s.locality ? [s.locality.region, s.locality.zone].filter(Boolean).join('/') : '';
  return [
    ['Address', [s.address]],
    ['Identity', [`service account ${s.serviceAccount ?? 'default'}`]],
    ['Ports', (s.ports ?? []).length === 0 ? ['<none>'] : (s.ports ?? []).map((p) => `${p.name ? `${p.name} ` : ''}${p.port}${'protocol' in p && p.protocol ? `/${String(p.protocol)}` : ''}`)],
    ['Locality', [loc || '<none>']],
  ];
}

function externalService(res: Resource): Section[] {
  const s = res.spec as ExternalServiceSpec;
  return [
    ['Hosts', s.hosts],
    ['Ports', s.ports.map((p) => `${p.port}${p.targetPort ? ` -> ${p.targetPort}` : ''}/${p.protocol ?? 'http'}`)],
    ['Endpoints', s.endpoints ? s.endpoints.map((e) => `${e.address}${'port' in e && e.port ? `:${String(e.port)}` : ''}`) : ['the hosts, resolved by DNS']],
    ['TLS', [s.tls ? `originated by the sidecar${s.tls.sni ? `, SNI ${s.tls.sni}` : ''}${s.tls.caFile ? `, CA ${s.tls.caFile}` : ', system roots'}` : 'none (the app speaks to it as it is)']],
    ...(s.egressGateway ? [['Egress gateway', [`${s.egressGateway.namespace ?? res.metadata.namespace ?? 'default'}/${s.egressGateway.name}`]] as Section] : []),
  ];
}

function telemetry(res: Resource): Section[] {
  const s = res.spec as TelemetrySpec;
  const t = s.tracing;
  const a = s.accessLogging;
  return [
    ['Applies to', [appliesTo(res, s)]],
    ['Tracing', [!t ? '<inherited>' : t.disabled ? 'disabled' : `${t.samplingPercentage ?? 'default'}% sampled${t.collector ? ` to ${t.collector}` : ''}`]],
    ['Access logging', [!a ? '<inherited>' : a.disabled ? 'disabled' : 'on']],
  ];
}

const ESCAPED_SLASHES_MEANING: Record<string, string> = {
  Reject: '%2F or %5C in a path is answered 400',
  Keep: '%2F and %5C are forwarded as they are (routes and policies see them encoded)',
  UnescapeAndForward: '%2F and %5C are decoded to / and \\ before routing',
  UnescapeAndRedirect: 'a path with %2F or %5C is redirected (307) to its decoded form',
};

function pathNormalization(res: Resource): Section[] {
  const s = res.spec as PathNormalizationSpec;
  const d = DEFAULT_PATH_NORMALIZATION_SPEC;
  const normalize = s.normalize ?? d.normalize;
  const merge = s.mergeSlashes ?? d.mergeSlashes;
  const escaped = s.escapedSlashes ?? d.escapedSlashes;
  const dflt = (v: unknown): string => (v === undefined ? ' (default)' : '');
  return [
    ['Applies to', [appliesTo(res, s)]],
    ['Rules', [
      `normalize: ${normalize ? 'dot segments removed, unreserved escapes decoded, \\ as /, ; parameters dropped' : 'off: paths are routed and authorized as sent'}${dflt(s.normalize)}`,
      `merge slashes: ${merge ? 'on (//a///b is /a/b)' : 'off'}${dflt(s.mergeSlashes)}`,
      `escaped slashes: ${escaped}: ${ESCAPED_SLASHES_MEANING[escaped]}${dflt(s.escapedSlashes)}`,
    ]],
  ];
}

function plugin(res: Resource): Section[] {
  const s = res.spec as PluginSpec;
  const src = s.source;
  const source = src.inline !== undefined ? `inline (${src.inline.length} characters)` : src.file !== undefined ? `file ${src.file} on the proxy's host` : `${src.url ?? '<none>'} (sha256 ${src.sha256 ?? '<missing>'})`;
  const failure = (s.failurePolicy ?? 'closed') === 'closed' ? 'closed: a failing plugin fails the request' : 'open: a failing plugin is skipped';
  return [
    ['Applies to', [appliesTo(res, s)]],
    ['Plugin', [
      `${s.type === 'wasm' ? 'proxy-wasm module' : 'TypeScript plugin'}, phase ${s.phase ?? 'before-router'}${s.order !== undefined ? `, order ${s.order}` : ''}, ${s.traffic ?? 'inbound'} traffic`,
      `source: ${source}`,
      `failure: ${failure}; each hook within ${s.hookTimeout ?? '500ms'}`,
      ...(s.config !== undefined ? [`config: ${s.config.length > 80 ? `${s.config.slice(0, 77)}...` : s.config}`] : []),
    ]],
  ];
}

function sidecar(res: Resource): Section[] {
  const s = res.spec as SidecarSpec;
  return [
    ['Applies to', [appliesTo(res, s)]],
    ['Calls (egress hosts)', s.egress.flatMap((e) => e.hosts)],
  ];
}

/** A traffic policy (TimeoutPolicy, RetryPolicy, ...): its target, then each setting. */
function trafficPolicy(res: Resource): Section[] {
  const { targetRef, ...settings } = res.spec as { targetRef: { kind: string; name: string; sectionName?: string; port?: number } } & Record<string, unknown>;
  const flat: string[] = [];
  const walk = (prefix: string, v: unknown): void => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}.${k}` : k, x);
    else flat.push(`${prefix}: ${Array.isArray(v) ? v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ') : String(v)}`);
  };
  walk('', settings);
  return [
    ['Applies to', [appliesTo(res, { targetRef })]],
    ['Settings', flat.length > 0 ? flat : ['<none>']],
  ];
}

function route(res: Resource): Section[] {
  const s = res.spec as { parentRefs?: { kind?: string; name: string; sectionName?: string }[]; hostnames?: string[] };
  const rules = summarizeRules(res);
  return [
    ['Parents', (s.parentRefs ?? []).length === 0 ? ['<none>'] : s.parentRefs!.map((p) => `${p.kind ?? 'Gateway'} ${p.name}${p.sectionName ? ` (listener ${p.sectionName})` : ''}`)],
    ['Hostnames', s.hostnames && s.hostnames.length > 0 ? s.hostnames : ['<any>']],
    ['Rules', rules.length > 0 ? rules : ['<none>']],
  ];
}

const BY_KIND: Record<string, (res: Resource) => Section[]> = {
  HTTPRoute: route,
  GRPCRoute: route,
  TCPRoute: route,
  Gateway: gateway,
  Service: service,
  Workload: workload,
  MeshTLS: meshTls,
  AuthorizationPolicy: authorizationPolicy,
  RequestAuthentication: requestAuthentication,
  Telemetry: telemetry,
  PathNormalization: pathNormalization,
  Plugin: plugin,
  Sidecar: sidecar,
  ExternalService: externalService,
  ...Object.fromEntries(POLICY_KIND_NAMES.map((k) => [k, trafficPolicy])),
};

/** The kind's own summary of `res` (none for an unknown kind: describe shows the spec only). */
export function describeSpec(res: Resource): Section[] {
  return BY_KIND[res.kind]?.(res) ?? [];
}
