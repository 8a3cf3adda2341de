// Which workloads back which service, exactly as Kubernetes decides it for
// Services and their EndpointSlices: a Service selects the workloads of its
// own namespace whose labels contain every selector label (equality only);
// a Service without a selector (absent or empty) selects nothing. Each
// service port maps to the workload port named by `targetPort` (a number,
// used as is; or a name, resolved per workload: a workload without that
// named port is left out of that port's endpoints), defaulting to `port`.
// Pure: the xDS translation calls it on every registry/config snapshot.
import type { ServiceSpec } from '../../api/mesh.ts';
import type { Locality, PortProtocol, Workload } from './workload.ts';

export interface ServiceInput {
  metadata: { name: string; namespace?: string };
  spec: ServiceSpec;
}

export interface Endpoint {
  workload: string;
  namespace: string;
  address: string;
  port: number;
  serviceAccount: string;
  locality: Locality;
  labels: Record<string, string>;
}

export interface ServicePortEndpoints {
  name?: string;
  /** The service's port (what clients address). */
  port: number;
  protocol: PortProtocol;
  endpoints: Endpoint[];
}

export interface ServiceEndpoints {
  namespace: string;
  name: string;
  ports: ServicePortEndpoints[];
}

export function selectorMatches(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector) return false;
  const entries = Object.entries(selector);
  if (entries.length === 0) return false;
  return entries.every(([k, v]) => Object.hasOwn(labels, k) && labels[k] === v);
}

function resolveTargetPort(target: number | string, w: Workload): number | null {
  if (typeof target === 'number') return target;
  if (/^\d+$/.test(target)) return Number(target);
  return w.ports.find((p) => p.name === target)?.port ?? null;
}

const byName = (a: { namespace: string; name: string }, b: { namespace: string; name: string }) =>
  a.namespace === b.namespace ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.namespace < b.namespace ? -1 : 1;

/** Endpoints of every service, sorted by namespace/name; endpoints sorted by workload name. */
export function selectEndpoints(services: readonly ServiceInput[], workloads: readonly Workload[]): ServiceEndpoints[] {
  const sortedWorkloads = [...workloads].sort(byName);
  const out: ServiceEndpoints[] = [];
  for (const svc of services) {
    const namespace = svc.metadata.namespace ?? 'default';
    const members = sortedWorkloads.filter((w) => w.namespace === namespace && selectorMatches(svc.spec.selector, w.labels));
    const ports: ServicePortEndpoints[] = svc.spec.ports.map((sp) => {
      const endpoints: Endpoint[] = [];
      for (const w of members) {
        const port = resolveTargetPort(sp.targetPort ?? sp.port, w);
        if (port === null) continue;
        endpoints.push({ workload: w.name, namespace: w.namespace, address: w.address, port, serviceAccount: w.serviceAccount, locality: w.locality, labels: w.labels });
      }
      const entry: ServicePortEndpoints = { port: sp.port, protocol: sp.protocol ?? 'http', endpoints };
      if (sp.name !== undefined) entry.name = sp.name;
      return entry;
    });
    out.push({ namespace, name: svc.metadata.name, ports });
  }
  return out.sort(byName);
}
