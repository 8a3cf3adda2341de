// Kubernetes objects -> what the control plane's store holds, pure:
//
//   core/v1 Service  -> a Trellis Service resource (/trellis/resources/Service/<ns>/<name>)
//                       + its ClusterIP as the service VIP (/trellis/registry/vips/<ns>/<name>)
//   core/v1 Pod      -> a registered workload (/trellis/registry/workloads/<ns>/<name>)
//   gateway.networking.k8s.io HTTPRoute, GRPCRoute, TCPRoute, Gateway (the upstream CRDs)
//                    -> the same Gateway API resource (/trellis/resources/<Kind>/<ns>/<name>),
//                       validated as `trellis apply` validates it
//   discovery/v1 EndpointSlice of a Service WITHOUT a selector (not managed by
//                       the EndpointSlice controller) -> one registered workload per
//                       address, labelled kubernetes.io/service-name=<service>
//
// Membership is decided as the EndpointSlice controller decides it: a Service
// selects the Pods of its namespace whose labels match its selector, the
// port named by targetPort resolves per Pod, and a Pod counts as a ready
// endpoint when its Ready condition is True and it is not terminating. Not
// ready Pods stay registered (their own sidecar still gets its config) but
// are sent to proxies as UNHEALTHY endpoints. Ports: TCP only (the mesh
// proxies TCP); the protocol comes from appProtocol, else the port name's
// prefix (`http`, `http2`, `grpc`, `tcp`, Istio's convention), else tcp.
// A Service without a selector selects its own EndpointSlices' workloads:
// its selector becomes kubernetes.io/service-name=<name> (the label those
// slices carry) and a named port's targetPort becomes its name, which the
// slice's port of that name resolves, as kube-proxy matches them.
import { isIP } from 'node:net';
import { validateResource } from '../../api/validate.ts';
import { kindDef } from '../../api/kinds.ts';
import { TRELLIS_GROUP, type ServiceSpec } from '../../api/mesh.ts';
import type { Resource } from '../../api/types.ts';
import type { PortProtocol, Workload } from '../registry/workload.ts';
import type { KubeObject } from './client.ts';

/** Marks what the Kubernetes source wrote, so a re-list deletes only its own. */
export const SOURCE_ANNOTATION = 'trellis.dev/source';
export const SOURCE_KUBERNETES = 'kubernetes';

export interface KubeServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
}

export interface KubeService extends KubeObject {
  spec?: { type?: string; selector?: Record<string, string>; ports?: KubeServicePort[]; clusterIP?: string };
}

export interface KubePod extends KubeObject {
  spec?: {
    serviceAccountName?: string;
    containers?: { name: string; ports?: { name?: string; containerPort: number; protocol?: string }[] }[];
  };
  status?: {
    phase?: string;
    podIP?: string;
    startTime?: string;
    conditions?: { type: string; status: string }[];
  };
}

export interface KubeEndpointSlice extends KubeObject {
  addressType?: string;
  endpoints?: { addresses?: string[]; conditions?: { ready?: boolean | null }; zone?: string }[];
  ports?: { name?: string; port?: number; protocol?: string; appProtocol?: string }[];
}

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
const SLICE_CONTROLLER = 'endpointslice-controller.k8s.io';

/** A registered workload that came from a Pod or an EndpointSlice endpoint. */
export interface PodWorkload extends Workload {
  healthy: boolean;
  source: typeof SOURCE_KUBERNETES;
  /** "Pod/<ns>/<name>" or "EndpointSlice/<ns>/<name>": which object wrote it. */
  origin: string;
}

export type Mapped<T> = { ok: true; value: T } | { ok: false; reason: string };

/** TLS the app speaks itself (https, wss) is opaque to the mesh: tcp. */
const PROTOCOL_WORDS: Record<string, PortProtocol> = {
  http: 'http', https: 'tcp', http2: 'http2', h2c: 'http2', 'kubernetes.io/h2c': 'http2', grpc: 'grpc', tcp: 'tcp', 'kubernetes.io/ws': 'http', 'kubernetes.io/wss': 'tcp',
};

/** appProtocol first, then the name's prefix before the first '-', else tcp. */
export function portProtocol(p: { name?: string; appProtocol?: string }): PortProtocol {
  const app = p.appProtocol?.toLowerCase();
  if (app && PROTOCOL_WORDS[app]) return PROTOCOL_WORDS[app];
  const prefix = p.name?.toLowerCase().split('-')[0];
  if (prefix && PROTOCOL_WORDS[prefix]) return PROTOCOL_WORDS[prefix];
  return 'tcp';
}

const isTcp = (protocol: string | undefined): boolean => (protocol ?? 'TCP') === 'TCP';

export function serviceFromKube(svc: KubeService): Mapped<{ resource: Resource<ServiceSpec>; vip?: string }> {
  const m = svc.metadata;
  const spec = svc.spec ?? {};
  if (spec.type === 'ExternalName') return { ok: false, reason: 'type ExternalName is not meshed' };
  const ports = (spec.ports ?? []).filter((p) => isTcp(p.protocol)).map((p) => ({
    ...(p.name ? { name: p.name } : {}),
    port: p.port,
    ...(p.targetPort === undefined || p.targetPort === 0 || p.targetPort === '' ? {} : { targetPort: p.targetPort }),
    protocol: portProtocol(p),
  }));
  if (ports.length === 0) return { ok: false, reason: 'no TCP ports' };
  const selector = spec.selector && Object.keys(spec.selector).length > 0 ? spec.selector : undefined;
  if (!selector) for (const p of ports) if (p.name) p.targetPort = p.name;
  const input = {
    apiVersion: `${TRELLIS_GROUP}/v1alpha1`,
    kind: 'Service',
    metadata: {
      name: m.name,
      namespace: m.namespace ?? 'default',
      ...(m.labels && Object.keys(m.labels).length > 0 ? { labels: m.labels } : {}),
      annotations: { [SOURCE_ANNOTATION]: SOURCE_KUBERNETES },
    },
    spec: { selector: selector ?? { [SERVICE_NAME_LABEL]: m.name }, ports },
  };
  const v = validateResource(input);
  if (!v.ok) return { ok: false, reason: v.errors.map((e) => `${e.path}: ${e.message}`).join('; ') };
  const resource = v.resource as Resource<ServiceSpec>;
  // What the resource service sets on objects it stores, taken from Kubernetes.
  resource.metadata.uid = m.uid ?? '';
  resource.metadata.generation = 1;
  if (m.creationTimestamp) resource.metadata.creationTimestamp = m.creationTimestamp;
  const ip = spec.clusterIP;
  return { ok: true, value: { resource, ...(ip && ip !== 'None' && isIP(ip) !== 0 ? { vip: ip } : {}) } };
}

function ready(pod: KubePod): boolean {
  if (pod.metadata.deletionTimestamp) return false;
  return (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** The workload a Pod stands for; not ok for Pods that are not (or no longer) running somewhere with an IP. */
export function workloadFromPod(pod: KubePod): Mapped<PodWorkload> {
  const m = pod.metadata;
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return { ok: false, reason: `phase ${phase}` };
  const address = pod.status?.podIP;
  if (!address || isIP(address) === 0) return { ok: false, reason: 'no pod IP yet' };
  const ports: PodWorkload['ports'] = [];
  const seen = new Set<number>();
  const names = new Set<string>();
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c.ports ?? []) {
      if (!isTcp(p.protocol) || seen.has(p.containerPort)) continue;
      seen.add(p.containerPort);
      const name = p.name && !names.has(p.name) ? p.name : undefined;
      if (name) names.add(name);
      ports.push({ port: p.containerPort, protocol: portProtocol(p), ...(name ? { name } : {}) });
    }
  }
  return {
    ok: true,
    value: {
      name: m.name,
      namespace: m.namespace ?? 'default',
      serviceAccount: pod.spec?.serviceAccountName || 'default',
      address,
      ports,
      labels: { ...(m.labels ?? {}) },
      locality: { region: '', zone: '' },
      registeredAt: pod.status?.startTime ?? m.creationTimestamp ?? new Date(0).toISOString(),
      healthy: ready(pod),
      source: SOURCE_KUBERNETES,
      origin: `Pod/${m.namespace ?? 'default'}/${m.name}`,
    },
  };
}

/** The workloads of a slice that no controller derives from Pods (a Service
 * without a selector): [] for the EndpointSlice controller's own slices,
 * whose Pods are the workloads already. */
export function workloadsFromEndpointSlice(slice: KubeEndpointSlice): Mapped<PodWorkload[]> {
  const m = slice.metadata;
  const labels = m.labels ?? {};
  if (labels[MANAGED_BY_LABEL] === SLICE_CONTROLLER) return { ok: true, value: [] };
  const service = labels[SERVICE_NAME_LABEL];
  if (!service) return { ok: false, reason: `no ${SERVICE_NAME_LABEL} label` };
  const namespace = m.namespace ?? 'default';
  const ports: PodWorkload['ports'] = [];
  for (const p of slice.ports ?? []) {
    if (!isTcp(p.protocol) || typeof p.port !== 'number' || ports.some((q) => q.port === p.port)) continue;
    ports.push({ port: p.port, protocol: portProtocol(p), ...(p.name ? { name: p.name } : {}) });
  }
  const out: PodWorkload[] = [];
  for (const e of slice.endpoints ?? []) {
    for (const address of e.addresses ?? []) {
      out.push({
        name: `${m.name}-${address.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`.slice(0, 253).replace(/-+$/, ''),
        namespace,
        serviceAccount: 'default',
        address,
        ports,
        labels: { [SERVICE_NAME_LABEL]: service },
        locality: { region: '', zone: e.zone ?? '' },
        registeredAt: m.creationTimestamp ?? new Date(0).toISOString(),
        // Unset means ready (the EndpointSlice API's own rule).
        healthy: e.conditions?.ready !== false,
        source: SOURCE_KUBERNETES,
        origin: `EndpointSlice/${namespace}/${m.name}`,
      });
    }
  }
  return { ok: true, value: out };
}

/** A Gateway API object (its CRD served by the API server) as the resource
 * `trellis apply` would store, at the version Trellis's kind is declared at
 * (TCPRoute: Kubernetes serves v1, Trellis reads v1alpha2; same fields). */
export function gatewayResourceFromKube(obj: KubeObject & { spec?: unknown }, kind: string): Mapped<Resource> {
  const m = obj.metadata;
  const def = kindDef(kind);
  if (!def) return { ok: false, reason: `kind ${kind} is not known to Trellis` };
  const input = {
    apiVersion: `${def.group}/${def.version}`,
    kind,
    metadata: {
      name: m.name,
      namespace: m.namespace ?? 'default',
      ...(m.labels && Object.keys(m.labels).length > 0 ? { labels: m.labels } : {}),
      annotations: { [SOURCE_ANNOTATION]: SOURCE_KUBERNETES },
    },
    spec: obj.spec ?? {},
  };
  const v = validateResource(input);
  if (!v.ok) return { ok: false, reason: v.errors.map((e) => `${e.path}: ${e.message}`).join('; ') };
  const resource = v.resource;
  resource.metadata.uid = m.uid ?? '';
  resource.metadata.generation = m.generation ?? 1;
  if (m.creationTimestamp) resource.metadata.creationTimestamp = m.creationTimestamp;
  return { ok: true, value: resource };
}
