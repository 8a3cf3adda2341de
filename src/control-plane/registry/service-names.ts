// DNS-like names of a mesh service, as Kubernetes spells them:
//   <name>.<namespace>.svc.<cluster-domain>  (cluster domain: cluster.local)
//   <name>.<namespace>.svc
//   <name>.<namespace>
//   <name>            (only from a client in the same namespace)
// serviceHostnames() lists them for a route's virtual host; resolveServiceHost()
// maps a Host header (port stripped) back to the service.

export const CLUSTER_DOMAIN = 'cluster.local';

export interface ServiceRef {
  namespace: string;
  name: string;
}

/** Every name that reaches `namespace/name`; the short name only when `fromNamespace` is the service's. */
export function serviceHostnames(namespace: string, name: string, fromNamespace?: string): string[] {
  const names = [`${name}.${namespace}.svc.${CLUSTER_DOMAIN}`, `${name}.${namespace}.svc`, `${name}.${namespace}`];
  if (fromNamespace === namespace) names.push(name);
  return names;
}

/** Which service a host names, seen from a client in `fromNamespace` (null: not a mesh service name). */
export function resolveServiceHost(host: string, fromNamespace: string): ServiceRef | null {
  let h = host.trim().toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  const colon = h.lastIndexOf(':');
  if (colon > 0 && !h.includes(']') && /^\d+$/.test(h.slice(colon + 1))) h = h.slice(0, colon);
  const parts = h.split('.');
  const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  if (parts.some((p) => !label.test(p))) return null;
  const [name, namespace, svc, ...rest] = parts;
  if (!name) return null;
  if (parts.length === 1) return { namespace: fromNamespace, name };
  if (parts.length === 2 && namespace) return { namespace, name };
  if (svc !== 'svc' || !namespace) return null;
  if (rest.length === 0 || rest.join('.') === CLUSTER_DOMAIN) return { namespace, name };
  return null;
}
