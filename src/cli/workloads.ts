// Every workload the mesh knows, for `get workloads` and `describe service`:
// the Workload resources of the store and the workloads registered at run
// time (`trellis run`, sidecars; /api/v1/registry/workloads), the latter
// shown as Workload resources annotated `trellis.dev/registered-at` (never
// with their join token). A registered workload and a resource of the same
// namespace/name: the resource wins (it is what was declared).
import type { Client, RegisteredWorkload } from './client.ts';
import { formatApiError } from './client.ts';
import type { Resource } from '../api/types.ts';
import type { LabelSelector } from '../api/label-selector.ts';

export const REGISTERED_AT = 'trellis.dev/registered-at';

export function registeredWorkloadResource(w: RegisteredWorkload): Resource {
  return {
    apiVersion: 'trellis.dev/v1alpha1',
    kind: 'Workload',
    metadata: { name: w.name, namespace: w.namespace, labels: { ...w.labels }, annotations: { [REGISTERED_AT]: w.registeredAt }, creationTimestamp: w.registeredAt },
    spec: {
      address: w.address,
      serviceAccount: w.serviceAccount,
      ports: w.ports.map((p) => ({ port: p.port, ...(p.name ? { name: p.name } : {}), ...(p.protocol ? { protocol: p.protocol } : {}), ...(p.proxyPort ? { proxyPort: p.proxyPort } : {}) })),
      ...(w.locality && (w.locality.region || w.locality.zone) ? { locality: w.locality } : {}),
    },
  } as Resource;
}

/** Declared and registered workloads in `namespace` (all when undefined)
 * matching `selector`, sorted by namespace and name; or the error line. */
export async function listWorkloads(client: Client, q: { namespace?: string | undefined; selector?: LabelSelector; labelSelector?: string }): Promise<{ ok: true; items: Resource[] } | { ok: false; message: string }> {
  const [declared, registered] = await Promise.all([
    client.list('Workload', { ...(q.namespace ? { namespace: q.namespace } : {}), ...(q.labelSelector ? { labelSelector: q.labelSelector } : {}) }),
    client.registered(),
  ]);
  if (!declared.ok) return { ok: false, message: formatApiError(declared.error, declared.status) };
  const items = [...declared.body.items];
  const seen = new Set(items.map((r) => `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`));
  // An older control plane without the registry list: declared ones only.
  if (registered.ok) {
    for (const w of registered.body.items) {
      if (q.namespace && w.namespace !== q.namespace) continue;
      if (q.selector && !q.selector.matches(w.labels)) continue;
      if (seen.has(`${w.namespace}/${w.name}`)) continue;
      items.push(registeredWorkloadResource(w));
    }
  }
  items.sort((a, b) => (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') || a.metadata.name.localeCompare(b.metadata.name));
  return { ok: true, items };
}
