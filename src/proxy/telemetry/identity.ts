// Who is on either end of a request, as metric label values: the proxy's own
// workload (from its node metadata), the peer's (endpoint metadata from EDS,
// the mTLS peer identity, or the `x-trellis-peer` header the calling proxy
// adds), and the destination service (from the cluster name or the authority).
// Every value here is bounded by the mesh config, except what the authority
// parser accepts; the series cache caps that (telemetry-stats.ts).
import type { NodeInfo } from '../config/types.ts';

export const UNKNOWN = 'unknown';

/** Request header the outbound proxy adds so the inbound proxy can label the
 * source workload: `<namespace>/<workload>`. Removed by the inbound proxy. */
export const PEER_HEADER = 'x-trellis-peer';

export interface WorkloadIdentity {
  readonly workload: string;
  readonly namespace: string;
  /** The proxy's own service host (`<name>.<ns>.svc.cluster.local`), when
   * its node says which service it serves (selfIdentity only). */
  readonly service?: string;
}

/** The proxy's own identity: node metadata `trellis.workload` and
 * `trellis.namespace` (what `trellis bootstrap proxy` writes), else the node
 * cluster and "default". The service it serves (the inbound
 * destination_service): `trellis.service`, else, for a sidecar, the node
 * cluster when it is not just the workload name (`trellis run` sets the node
 * cluster to the service). */
export function selfIdentity(node: Pick<NodeInfo, 'cluster' | 'metadata'>): WorkloadIdentity {
  const t = node.metadata['trellis'];
  const m = t !== null && typeof t === 'object' ? (t as Record<string, unknown>) : {};
  const workload = typeof m['workload'] === 'string' && m['workload'] !== '' ? m['workload'] : node.cluster || UNKNOWN;
  const namespace = typeof m['namespace'] === 'string' && m['namespace'] !== '' ? m['namespace'] : 'default';
  let service: string | undefined;
  if (typeof m['service'] === 'string' && NAME_RE.test(m['service'])) service = m['service'];
  else if (m['kind'] === 'sidecar' && typeof m['workload'] === 'string' && node.cluster !== m['workload'] && NAME_RE.test(node.cluster)) service = node.cluster;
  return service === undefined ? { workload, namespace } : { workload, namespace, service: serviceHost(service, namespace) };
}

/** The admin address a proxy advertises in its node metadata
 * (`trellis.admin: "host:port"`), for the control plane's scraper. */
export function adminAddressOf(node: Pick<NodeInfo, 'metadata'>): string | undefined {
  const t = node.metadata['trellis'];
  if (t === null || typeof t !== 'object') return undefined;
  const a = (t as Record<string, unknown>)['admin'];
  return typeof a === 'string' && /^[^\s/]+:\d{1,5}$/.test(a) ? a : undefined;
}

/** The address of the proxy's mTLS metrics listener (`trellis.metrics:
 * "host:port"`, proxy/metrics-listener.ts): where a control plane on another
 * host scrapes it. */
export function metricsAddressOf(node: Pick<NodeInfo, 'metadata'>): string | undefined {
  const t = node.metadata['trellis'];
  if (t === null || typeof t !== 'object') return undefined;
  const a = (t as Record<string, unknown>)['metrics'];
  return typeof a === 'string' && /^[^\s/]+:\d{1,5}$/.test(a) ? a : undefined;
}

/** The bearer token of the proxy's admin listener (`trellis.adminToken` in
 * its node metadata, at least 16 characters): what the control plane sends
 * to use the proxy's `/tap` and to change its state (proxy/admin.ts). */
export function adminTokenOf(node: Pick<NodeInfo, 'metadata'>): string | undefined {
  const t = node.metadata['trellis'];
  if (t === null || typeof t !== 'object') return undefined;
  const a = (t as Record<string, unknown>)['adminToken'];
  return typeof a === 'string' && a.length >= 16 && a.length <= 256 && /^[\x21-\x7e]+$/.test(a) ? a : undefined;
}

/** A node with `trellis.adminToken` set: its own if valid, else `fallback`. */
export function withAdminToken<N extends Pick<NodeInfo, 'metadata'>>(node: N, fallback: string): N {
  if (adminTokenOf(node) !== undefined) return node;
  const t = node.metadata['trellis'];
  const trellis = t !== null && typeof t === 'object' && !Array.isArray(t) ? (t as Record<string, unknown>) : {};
  return { ...node, metadata: { ...node.metadata, trellis: { ...trellis, adminToken: fallback } } };
}

/** `spiffe://<td>/ns/<ns>/sa/<sa>` -> namespace and service account. */
export function parseSpiffe(id: string): { namespace: string; serviceAccount: string } | undefined {
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id);
  return m ? { namespace: m[1]!, serviceAccount: m[2]! } : undefined;
}

const NAME = '[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?';
const NAME_RE = new RegExp(`^${NAME}$`);
const CLUSTER_RE = new RegExp(`^(${NAME})\\.(${NAME})\\.svc:\\d+$`);
const HOST_RE = new RegExp(`^(${NAME})(?:\\.(${NAME}))?(?:\\.svc(?:\\.cluster\\.local)?)?$`);

/** Istio-style service host: `<name>.<namespace>.svc.cluster.local`. */
export function serviceHost(name: string, namespace: string): string {
  return `${name}.${namespace}.svc.cluster.local`;
}

/** Cluster `reviews.default.svc:9080` -> service host and namespace. */
export function serviceFromCluster(cluster: string): { service: string; namespace: string } | undefined {
  const m = CLUSTER_RE.exec(cluster);
  if (!m) return undefined;
  return { service: serviceHost(m[1]!, m[3]!), namespace: m[3]! };
}

/** Authority `reviews`, `reviews.ns`, `reviews.ns.svc[.cluster.local]` with an
 * optional port -> service host; short names resolve in `namespace`. IP
 * addresses and other names give undefined. */
export function serviceFromAuthority(authority: string, namespace: string): string | undefined {
  let host = authority;
  const colon = host.lastIndexOf(':');
  if (colon > 0 && !host.endsWith(']')) host = host.slice(0, colon);
  host = host.toLowerCase();
  if (host.length > 253 || host === 'localhost') return undefined;
  const m = HOST_RE.exec(host);
  if (!m) return undefined;
  if (m[3] === undefined && /^\d+$/.test(m[1]!)) return undefined;
  return serviceHost(m[1]!, m[3] ?? namespace);
}

/** Parse the `x-trellis-peer` value. */
export function parsePeerHeader(v: string | undefined): WorkloadIdentity | undefined {
  if (!v) return undefined;
  const slash = v.indexOf('/');
  if (slash <= 0 || slash === v.length - 1 || v.length > 200) return undefined;
  const namespace = v.slice(0, slash);
  const workload = v.slice(slash + 1);
  if (!/^[-a-z0-9.]+$/i.test(namespace) || !/^[-a-z0-9._]+$/i.test(workload)) return undefined;
  return { namespace, workload };
}
