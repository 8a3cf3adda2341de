// Automatic mutual TLS in the translated resources (pure, like the rest of
// translate/). When the mesh state carries `meshTls`:
//
//  - Service clusters get `transportSocketMatches`: endpoints
//    labelled `trellis.dev/mtls: "true"` (a sidecar with an identity fronts
//    them: a proxy port or a transparent pod's meshed label, and no
//    `trellis.dev/tls-mode: none`; services.ts) are dialled
//    with an UpstreamTlsContext whose `matchTypedSubjectAltNames` lists the
//    SPIFFE IDs of the service's workloads; other endpoints stay plaintext
//    (the cluster has no default transportSocket). No TLS when every meshed
//    workload behind the port is in DISABLE mode.
//  - A sidecar's inbound listeners (HTTP and TCP; under transparent capture
//    each per-port chain of the `inbound` listener) get filter chains per
//    MeshTLS mode: STRICT one `transportProtocol: tls` chain with a
//    DownstreamTlsContext (plaintext HTTP gets a chain that answers 403
//    MTLS_REQUIRED with the reason; plaintext TCP finds no chain, closed),
//    PERMISSIVE that chain plus a `raw_buffer` one, DISABLE the plaintext
//    chain alone (HTTP: `raw_buffer`; TCP: unmatched, so server-first
//    protocols are not delayed by detection).
//  - `meshTlsSecrets()` is the `trellis-trust-bundle` Secret (validation
//    context with the trust bundle inline) to put in every snapshot.
//
// The TLS contexts name no certificate or CA: the Trellis proxy fills them
// with its workload identity and trust bundle (docs/identity-and-mtls.md).
// Proxyless gRPC clients stay plaintext for now.
import type { MeshState, Meta, ProxyNode, ServiceResource, WorkloadInstance } from './model.ts';
import { nsOf } from './model.ts';
import type { TranslationParts } from './translate.ts';
import { isHttpLike, nodeWorkload, MESHED_LABEL, MTLS_LABEL, portProtocol, selects, serviceClusterName, speaksMeshTls, targetPortOf } from './services.ts';
import { HCM_NAME, ROUTER_TYPE, withHcmConfig } from './filters.ts';

export type TlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

export const DEFAULT_TLS_MODE: TlsMode = 'PERMISSIVE';
export const MESH_ROOT_NAMESPACE = 'trellis-system';
export const TRUST_BUNDLE_SECRET = 'trellis-trust-bundle';
export { MESHED_LABEL, MTLS_LABEL };
const TLS_TYPE_PREFIX = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.';

export interface MeshTLSPolicy {
  metadata: Meta;
  spec: { selector?: Record<string, string>; mode?: TlsMode; portLevel?: { port: number; mode: TlsMode }[] };
}

export interface MeshTlsInput {
  readonly trustDomain: string;
  /** PEM roots for the `trellis-trust-bundle` Secret. */
  readonly trustBundlePem?: string;
  readonly policies: readonly MeshTLSPolicy[];
  /** Mode where no policy says otherwise. Default PERMISSIVE. */
  readonly defaultMode?: TlsMode;
}

export function spiffeIdOf(trustDomain: string, w: Pick<WorkloadInstance, 'namespace' | 'serviceAccount'>): string {
  return `spiffe://${trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount ?? 'default'}`;
}

function matchesSelector(sel: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  return Object.entries(sel ?? {}).every(([k, v]) => labels?.[k] === v);
}

/** Workload-scoped resources (MeshTLS, Telemetry) that apply to a workload
 * in `namespace` with `labels`, most specific tier first: its namespace's
 * with a matching selector, its namespace's without one, the mesh root's
 * without one; by name within a tier. */
export function scopeTiers<T extends { metadata: Meta; spec: { selector?: Record<string, string> } }>(items: readonly T[], namespace: string, labels: Record<string, string> | undefined): T[][] {
  const hasSelector = (t: T): boolean => Object.keys(t.spec.selector ?? {}).length > 0;
  const byName = (a: T, b: T): number => a.metadata.name.localeCompare(b.metadata.name);
  const inNs = items.filter((t) => nsOf(t.metadata) === namespace).sort(byName);
  return [
    inNs.filter((t) => hasSelector(t) && matchesSelector(t.spec.selector, labels)),
    inNs.filter((t) => !hasSelector(t)),
    items.filter((t) => nsOf(t.metadata) === MESH_ROOT_NAMESPACE && !hasSelector(t)).sort(byName),
  ];
}

/** The mode of `port` on workload `w`: the most specific policy that says
 * something (selector > namespace > mesh root), port level first. */
export function tlsModeFor(input: MeshTlsInput, w: WorkloadInstance, port: number): TlsMode {
  return tlsModeSource(input, w, port).mode;
}

/** tlsModeFor with the policy that decided it (none: the default mode). */
export function tlsModeSource(input: MeshTlsInput, w: WorkloadInstance, port: number): { mode: TlsMode; policy?: MeshTLSPolicy } {
  const tiers = scopeTiers(input.policies, w.namespace, w.labels);
  for (const tier of tiers) {
    for (const p of tier) {
      const pl = p.spec.portLevel?.find((x) => x.port === port);
      if (pl) return { mode: pl.mode, policy: p };
      if (p.spec.mode) return { mode: p.spec.mode, policy: p };
    }
  }
  return { mode: input.defaultMode ?? DEFAULT_TLS_MODE };
}

export function upstreamTlsSocket(sans: readonly string[], alpn: readonly string[]): object {
  return {
    name: 'envoy.transport_sockets.tls',
    typedConfig: {
      '@type': `${TLS_TYPE_PREFIX}UpstreamTlsContext`,
      commonTlsContext: {
        alpnProtocols: [...alpn],
        tlsParams: { tlsMinimumProtocolVersion: 'TLSv1_3' },
        validationContext: { matchTypedSubjectAltNames: sans.map((exact) => ({ sanType: 'URI', matcher: { exact } })) },
      },
    },
  };
}

export function downstreamTlsSocket(): object {
  return {
    name: 'envoy.transport_sockets.tls',
    typedConfig: {
      '@type': `${TLS_TYPE_PREFIX}DownstreamTlsContext`,
      requireClientCertificate: true,
      commonTlsContext: { alpnProtocols: ['h2', 'http/1.1'], tlsParams: { tlsMinimumProtocolVersion: 'TLSv1_3' } },
    },
  };
}

/** The trust bundle as an xDS Secret, for every snapshot (empty without a bundle). */
export function meshTlsSecrets(state: MeshState): object[] {
  const pem = state.meshTls?.trustBundlePem;
  return pem ? [{ name: TRUST_BUNDLE_SECRET, validationContext: { trustedCa: { inlineString: pem } } }] : [];
}

/** Per service cluster: the SANs and whether TLS applies. */
function clusterTls(state: MeshState, input: MeshTlsInput): Map<string, object> {
  const out = new Map<string, object>();
  for (const svc of state.services as ServiceResource[]) {
    const ns = nsOf(svc.metadata);
    const members = state.workloads.filter((w) => selects(svc, w));
    for (const sp of svc.spec.ports) {
      const proto = portProtocol(sp);
      const sans = new Set<string>();
      let tls = false;
      for (const w of members) {
        const tp = targetPortOf(sp, w);
        if (!tp || !speaksMeshTls(w, tp)) continue; // no sidecar in front, or one without an identity
        sans.add(spiffeIdOf(input.trustDomain, w));
        if (tlsModeFor(input, w, tp.port) !== 'DISABLE') tls = true;
      }
      if (!tls) continue;
      const alpn = !isHttpLike(proto) ? [] : proto === 'grpc' || proto === 'http2' ? ['h2'] : ['http/1.1'];
      out.set(serviceClusterName(ns, svc.metadata.name, sp.port), {
        transportSocketMatches: [{ name: 'trellis-mtls', match: { [MTLS_LABEL]: 'true' }, transportSocket: upstreamTlsSocket([...sans].sort(), alpn) }],
      });
    }
  }
  return out;
}

const sharedClusters = new WeakMap<object[], object[]>();
const sharedParts = new WeakMap<TranslationParts['shared'], TranslationParts['shared']>();

function withClusterTls(clusters: object[], state: MeshState, input: MeshTlsInput): object[] {
  let hit = sharedClusters.get(clusters);
  if (!hit) {
    const extra = clusterTls(state, input);
    hit = clusters.map((c) => {
      const add = extra.get((c as { name: string }).name);
      return add ? { ...c, ...add } : c;
    });
    sharedClusters.set(clusters, hit);
  }
  return hit;
}

interface ListenerShape {
  name: string;
  trafficDirection?: string;
  filterChains: { name: string; filterChainMatch?: object; filters: { name: string }[] }[];
}

type Chain = ListenerShape['filterChains'][number];

/** One inbound chain as the mode wants it: STRICT a TLS chain, PERMISSIVE a
 * TLS and a plaintext one, DISABLE plaintext (TCP: the chain untouched, so
 * server-first protocols are not delayed). Its destination match is kept. */
function chainsForMode(chain: Chain, mode: TlsMode, where: string): Chain[] {
  const filter = chain.filters[0]?.name;
  if (filter !== HCM_NAME && filter !== 'envoy.filters.network.tcp_proxy') return [chain];
  if (filter === 'envoy.filters.network.tcp_proxy' && mode === 'DISABLE') return [chain];
  const match = chain.filterChainMatch ?? {};
  const tls = { ...chain, name: `${chain.name}-mtls`, filterChainMatch: { ...match, transportProtocol: 'tls' }, transportSocket: downstreamTlsSocket() };
  const plain = { ...chain, name: `${chain.name}-plaintext`, filterChainMatch: { ...match, transportProtocol: 'raw_buffer' } };
  if (mode === 'STRICT') return filter === HCM_NAME ? [tls, mtlsRequired(plain, where)] : [tls];
  return mode === 'PERMISSIVE' ? [tls, plain] : [plain];
}

export const MTLS_REQUIRED = 'MTLS_REQUIRED';

/** STRICT, HTTP: a plaintext request is answered, not reset, with 403, the
 * code in x-trellis-proxy-error and the reason in the body and
 * x-trellis-proxy-error-reason, so a caller without an identity learns
 * why (no application filter runs, nothing reaches the app). */
function mtlsRequired(plain: Chain, where: string): Chain {
  const reason = `${where} accepts only mutual TLS (MeshTLS mode STRICT) and this request came in plaintext: the caller's sidecar has no mesh identity; start it with a join token (TRELLIS_JOIN_TOKEN, docs/identity-and-mtls.md) or make this port PERMISSIVE`;
  const name = plain.name.replace(/-plaintext$/, '-mtls-required');
  return withHcmConfig({ ...plain, name }, (config) => {
    const { rds: _rds, routeConfig: _rc, ...rest } = config;
    return {
      ...rest,
      routeConfig: {
        name,
        virtualHosts: [{
          name: 'mtls-required',
          domains: ['*'],
          routes: [{
            name: 'mtls-required',
            match: { prefix: '/' },
            directResponse: { status: 403, body: { inlineString: `mutual TLS required: ${reason}\n` } },
            responseHeadersToAdd: [
              { header: { key: 'x-trellis-proxy-error', value: MTLS_REQUIRED }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
              { header: { key: 'x-trellis-proxy-error-reason', value: reason }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
            ],
          }],
        }],
      },
      httpFilters: [{ name: 'envoy.filters.http.router', typedConfig: { '@type': ROUTER_TYPE } }],
    };
  });
}

const INBOUND_PORT = /^inbound\|(\d+)$/;

/** translateParts() output with mTLS applied (unchanged without `state.meshTls`). */
export function applyMeshTls(parts: TranslationParts, state: MeshState, node: ProxyNode): TranslationParts {
  const input = state.meshTls;
  if (!input || node.kind === 'proxyless') return parts;
  const me = nodeWorkload(state, node);
  const listeners = (parts.own.listeners as ListenerShape[]).map((l) => {
    if (!me || l.trafficDirection !== 'INBOUND') return l;
    // Explicit mode: a listener per app port (its one chain); transparent
    // capture: one listener with a chain per app port (translate/transparent.ts).
    const m = INBOUND_PORT.exec(l.name);
    if (m) {
      const [chain] = l.filterChains;
      return chain ? { ...l, filterChains: chainsForMode(chain, tlsModeFor(input, me, Number(m[1])), `port ${m[1]} of ${me.namespace}/${me.name}`) } : l;
    }
    return {
      ...l,
      filterChains: l.filterChains.flatMap((c) => {
        const cm = INBOUND_PORT.exec(c.name);
        return cm ? chainsForMode(c, tlsModeFor(input, me, Number(cm[1])), `port ${cm[1]} of ${me.namespace}/${me.name}`) : [c];
      }),
    };
  });
  let shared = sharedParts.get(parts.shared);
  if (!shared) {
    const secrets = meshTlsSecrets(state);
    shared = { ...parts.shared, clusters: withClusterTls(parts.shared.clusters, state, input), ...(secrets.length > 0 ? { secrets } : {}) };
    sharedParts.set(parts.shared, shared);
  }
  return { ...parts, shared, own: { ...parts.own, listeners } };
}
