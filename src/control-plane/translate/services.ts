// Services, their ports and the workloads behind them: cluster names, the
// DNS-like host names a service answers to, and ClusterLoadAssignments.
import { tlsModeFor } from './mtls.ts';
import type { MeshState, PortProtocol, ProxyNode, ServicePort, ServiceResource, WorkloadInstance } from './model.ts';
import { keyOf, nsOf } from './model.ts';

/** Cluster (and EDS) name of a service port: `reviews.default.svc:9080`. */
export function serviceClusterName(namespace: string, name: string, port: number): string {
  return `${name}.${namespace}.svc:${port}`;
}

/** On a workload: a sidecar captures all its traffic (transparent mode,
 * where peers dial the app port itself). On an endpoint: a sidecar fronts it
 * (the cue for mutual TLS). */
export const MESHED_LABEL = 'trellis.dev/meshed';

/** A sidecar fronts this workload: it registered a proxy port (explicit
 * mode) or carries the meshed label (transparent capture). */
export function isMeshed(w: Pick<WorkloadInstance, 'labels' | 'ports'>, port?: { proxyPort?: number }): boolean {
  if (w.labels?.[MESHED_LABEL] === 'true') return true;
  return port ? port.proxyPort !== undefined : w.ports.some((p) => p.proxyPort !== undefined);
}

/** On a workload: whether its sidecar holds a mesh identity, `mtls` or
 * `none` (set by `trellis run` from its join token; absent: a meshed
 * workload is assumed to, as before). Callers originate mTLS only to
 * sidecars that can answer it (Istio's `security.istio.io/tlsMode`). */
export const TLS_MODE_LABEL = 'trellis.dev/tls-mode';
/** On an endpoint: dial it with mutual TLS (translate/mtls.ts matches it). */
export const MTLS_LABEL = 'trellis.dev/mtls';

/** A sidecar fronts this workload and can answer mutual TLS. */
export function speaksMeshTls(w: Pick<WorkloadInstance, 'labels' | 'ports'>, port?: { proxyPort?: number }): boolean {
  return isMeshed(w, port) && w.labels?.[TLS_MODE_LABEL] !== 'none';
}

export function inboundClusterName(port: number): string {
  return `inbound|${port}`;
}

/** Upstream HTTP/2 for a cluster (gRPC, h2c backends). */
export function http2ProtocolOptions(): object {
  return {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      explicitHttpConfig: { http2ProtocolOptions: {} },
    },
  };
}

/** The cluster a sidecar's inbound side forwards to: the app on 127.0.0.1:`port`. */
export function inboundAppCluster(port: number, protocol: PortProtocol): object {
  const name = inboundClusterName(port);
  return {
    name,
    type: 'STATIC',
    connectTimeout: '1s',
    lbPolicy: 'ROUND_ROBIN',
    loadAssignment: { clusterName: name, endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '127.0.0.1', portValue: port } } } }] }] },
    ...(protocol === 'grpc' || protocol === 'http2' ? { typedExtensionProtocolOptions: http2ProtocolOptions() } : {}),
  };
}

export function portProtocol(p: ServicePort): PortProtocol {
  return p.protocol ?? 'http';
}

export function isHttpLike(p: PortProtocol): boolean {
  return p !== 'tcp';
}

/** Names a caller may use for a service port, as `host[:port]` domains for
 * virtual host matching, as Kubernetes spells them:
 * `<name>.<ns>.svc.<clusterDomain>`, `<name>.<ns>.svc`, `<name>.<ns>`, and
 * `<name>` only within the caller's namespace; then the VIP. */
export function serviceDomains(svc: ServiceResource, port: number, callerNamespace: string, vip: string | undefined, clusterDomain: string): string[] {
  const ns = nsOf(svc.metadata);
  const n = svc.metadata.name;
  const hosts = [`${n}.${ns}.svc.${clusterDomain}`, `${n}.${ns}.svc`, `${n}.${ns}`];
  if (ns === callerNamespace) hosts.push(n);
  if (vip) hosts.push(vip);
  const out: string[] = [];
  for (const h of hosts) {
    out.push(`${h}:${port}`);
    if (port === 80) out.push(h);
  }
  return out;
}

/** Kubernetes Service selection: every selector label present with an equal
 * value (extra workload labels do not matter); an absent or empty selector
 * selects nothing. */
export function selectorMatches(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector) return false;
  const entries = Object.entries(selector);
  if (entries.length === 0) return false;
  return entries.every(([k, v]) => Object.hasOwn(labels, k) && labels[k] === v);
}

/** A Service selects workloads of its own namespace only. */
export function selects(svc: ServiceResource, w: WorkloadInstance): boolean {
  return nsOf(svc.metadata) === w.namespace && selectorMatches(svc.spec.selector, w.labels ?? {});
}

/** The workload port a service port targets: a number (or digits) as is,
 * defaulting to the service port; a name per workload (a workload without
 * that port name is left out of the port's endpoints). */
export function targetPortOf(sp: ServicePort, w: WorkloadInstance): WorkloadInstance['ports'][number] | undefined {
  const raw = sp.targetPort ?? sp.port;
  const t = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw;
  if (typeof t === 'number') return w.ports.find((p) => p.port === t) ?? { port: t };
  return w.ports.find((p) => p.name === t);
}

/** Workloads by "namespace/name" (the first of a name wins), once per state. */
const workloadIndex = new WeakMap<MeshState, Map<string, WorkloadInstance>>();

/** The registered workload a proxy node stands for, if any: looked up for
 * every proxy on every change, so indexed rather than searched. */
export function nodeWorkload(state: MeshState, node: ProxyNode): WorkloadInstance | undefined {
  if (node.workload === undefined) return undefined;
  let index = workloadIndex.get(state);
  if (index === undefined) {
    index = new Map();
    for (const w of state.workloads) {
      const key = `${w.namespace}/${w.name}`;
      if (!index.has(key)) index.set(key, w);
    }
    workloadIndex.set(state, index);
  }
  return index.get(`${node.namespace}/${node.workload}`);
}

export function findService(state: MeshState, namespace: string, name: string): ServiceResource | undefined {
  return state.services.find((s) => s.metadata.name === name && nsOf(s.metadata) === namespace);
}

/** EDS for every service port: workloads selected by labels, grouped by
 * locality; sidecar-fronted workloads are dialled on their proxy port. */
export function buildLoadAssignments(state: MeshState): Map<string, object> {
  const out = new Map<string, object>();
  const services = [...state.services].sort((a, b) => keyOf(a.metadata).localeCompare(keyOf(b.metadata)));
  // Index workloads by "namespace/label=value" so selection is not services × workloads.
  const byLabel = new Map<string, WorkloadInstance[]>();
  for (const w of state.workloads) {
    for (const [k, v] of Object.entries(w.labels ?? {})) {
      const ik = `${w.namespace}/${k}=${v}`;
      const list = byLabel.get(ik);
      if (list) list.push(w);
      else byLabel.set(ik, [w]);
    }
  }
  for (const svc of services) {
    const ns = nsOf(svc.metadata);
    const first = Object.entries(svc.spec.selector ?? {})[0];
    const candidates = first ? (byLabel.get(`${ns}/${first[0]}=${first[1]}`) ?? []) : [];
    const members = candidates.filter((w) => selects(svc, w)).sort((a, b) => `${a.address}/${a.name}`.localeCompare(`${b.address}/${b.name}`));
    for (const sp of svc.spec.ports) {
      const clusterName = serviceClusterName(ns, svc.metadata.name, sp.port);
      const byLocality = new Map<string, { locality: { region: string; zone: string; subZone: string }; lbEndpoints: object[] }>();
      // STRICT never sends plaintext to an endpoint without a proven identity
      // (docs/security-model.md): under STRICT, such an endpoint of a service
      // whose other members speak mTLS (someone joining it by its labels), or
      // one fronted by a sidecar that has no certificate, gets no traffic at
      // all rather than a downgrade. A service with no identities anywhere
      // (no sidecars at all) keeps plaintext.
      const anyMtls = members.some((m) => {
        const p = targetPortOf(sp, m);
        return p !== undefined && speaksMeshTls(m, p);
      });
      for (const w of members) {
        const tp = targetPortOf(sp, w);
        if (!tp) continue;
        if (state.meshTls && !speaksMeshTls(w, tp) && (anyMtls || isMeshed(w, tp)) && tlsModeFor(state.meshTls, w, tp.port) === 'STRICT') continue;
        const loc = { region: w.locality?.region ?? '', zone: w.locality?.zone ?? '', subZone: w.locality?.subZone ?? '' };
        const lk = `${loc.region}/${loc.zone}/${loc.subZone}`;
        let group = byLocality.get(lk);
        if (!group) {
          group = { locality: loc, lbEndpoints: [] };
          byLocality.set(lk, group);
        }
        const labels: Record<string, string> = { ...(w.labels ?? {}), 'trellis.dev/workload': w.name };
        if (w.serviceAccount) labels['trellis.dev/service-account'] = w.serviceAccount;
        if (isMeshed(w, tp)) labels[MESHED_LABEL] = 'true';
        if (speaksMeshTls(w, tp)) labels[MTLS_LABEL] = 'true';
        else delete labels[MTLS_LABEL]; // only the translator says so
        group.lbEndpoints.push({
          endpoint: { address: { socketAddress: { address: w.address, portValue: tp.proxyPort ?? tp.port } } },
          healthStatus: w.healthy === false ? 'UNHEALTHY' : 'HEALTHY',
          loadBalancingWeight: 1,
          metadata: { filterMetadata: { trellis: labels } },
        });
      }
      const endpoints = [...byLocality.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([, g]) => ({
          locality: g.locality,
          // grpc-js-xds ignores localities without a weight.
          loadBalancingWeight: Math.max(1, g.lbEndpoints.length),
          lbEndpoints: g.lbEndpoints,
        }));
      out.set(clusterName, { clusterName, endpoints });
    }
  }
  return out;
}
