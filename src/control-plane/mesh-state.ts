// Keeps an up-to-date MeshState (what translate() reads) from the store:
// resources (Services, routes, declared Workloads) and the registry
// (registered workloads, service VIPs). One list + one watch from the list's
// revision, so nothing is missed between them; on `compacted` it re-lists.
// Consumers get a new immutable MeshState after each batch of changes,
// debounced so a burst of writes becomes one recomputation.
import type { KeyValue, Store, Watch, WatchEvent } from './store/types.ts';
import type {
  ExternalServiceResource, GatewayResource, GRPCRouteResource, HTTPRouteResource, MeshState, ServiceResource, TCPRouteResource, TelemetryResource, PathNormalizationResource, PluginResource, SidecarResource, WorkloadInstance,
} from './translate/model.ts';
import { isPolicyKind, type PolicyResource } from './translate/policies.ts';
import type { AuthorizationPolicyResource, RequestAuthenticationResource } from './translate/authz.ts';

import { RESOURCES_PREFIX } from './resources/keys.ts';
import { WORKLOADS_PREFIX } from './registry/workload.ts';
import { VIPS_PREFIX } from './registry/vip.ts';

export interface MeshStateWatcher {
  current(): MeshState;
  revision(): number;
  stop(): void;
}

interface Raw {
  resources: Map<string, { kind: string; value: unknown }>;
  workloads: Map<string, unknown>;
  vips: Map<string, string>;
}

function parse(kv: KeyValue): unknown {
  try {
    return JSON.parse(kv.value);
  } catch {
    return undefined;
  }
}

/** "/trellis/registry/vips/<ns>/<name>" -> "<ns>/<name>". */
function tail2(key: string, prefix: string): string {
  return key.slice(prefix.length);
}

function vipOf(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    for (const k of ['vip', 'address', 'ip']) if (typeof o[k] === 'string') return o[k];
  }
  return undefined;
}

function toWorkload(v: unknown): WorkloadInstance | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  // A declared `Workload` resource: {kind, metadata, spec}; a registration: flat.
  if (o.kind === 'Workload' && o.spec && typeof o.spec === 'object') {
    const meta = o.metadata as { name: string; namespace?: string; labels?: Record<string, string> };
    const spec = o.spec as Record<string, unknown>;
    return {
      name: (spec.name as string | undefined) ?? meta.name,
      namespace: meta.namespace ?? 'default',
      labels: { ...(meta.labels ?? {}), ...((spec.labels as Record<string, string> | undefined) ?? {}) },
      ...(spec as object),
    } as WorkloadInstance;
  }
  if (typeof o.name === 'string' && typeof o.address === 'string') {
    return { namespace: 'default', ports: [], ...(o as object) } as unknown as WorkloadInstance;
  }
  return undefined;
}

export function buildMeshState(raw: Raw): MeshState {
  const services: ServiceResource[] = [];
  const httpRoutes: HTTPRouteResource[] = [];
  const grpcRoutes: GRPCRouteResource[] = [];
  const tcpRoutes: TCPRouteResource[] = [];
  const workloads: WorkloadInstance[] = [];
  const gateways: GatewayResource[] = [];
  const authorizationPolicies: AuthorizationPolicyResource[] = [];
  const requestAuthentications: RequestAuthenticationResource[] = [];
  const externalServices: ExternalServiceResource[] = [];
  const policies: PolicyResource[] = [];
  const telemetry: TelemetryResource[] = [];
  const pathNormalization: PathNormalizationResource[] = [];
  const plugins: PluginResource[] = [];
  const sidecars: SidecarResource[] = [];
  for (const { kind, value } of raw.resources.values()) {
    if (kind === 'Service') services.push(value as ServiceResource);
    else if (kind === 'HTTPRoute') httpRoutes.push(value as HTTPRouteResource);
    else if (kind === 'GRPCRoute') grpcRoutes.push(value as GRPCRouteResource);
    else if (kind === 'TCPRoute') tcpRoutes.push(value as TCPRouteResource);
    else if (kind === 'Gateway') gateways.push(value as GatewayResource);
    else if (kind === 'AuthorizationPolicy') authorizationPolicies.push(value as AuthorizationPolicyResource);
    else if (kind === 'RequestAuthentication') requestAuthentications.push(value as RequestAuthenticationResource);
    else if (kind === 'ExternalService') externalServices.push(value as ExternalServiceResource);
    else if (kind === 'Telemetry') telemetry.push(value as TelemetryResource);
    else if (kind === 'PathNormalization') pathNormalization.push(value as PathNormalizationResource);
    else if (kind === 'Plugin') plugins.push(value as PluginResource);
    else if (kind === 'Sidecar') sidecars.push(value as SidecarResource);
    else if (isPolicyKind(kind)) policies.push(value as PolicyResource);
    else if (kind === 'Workload') {
      const w = toWorkload(value);
      if (w) workloads.push(w);
    }
  }
  for (const v of raw.workloads.values()) {
    const w = toWorkload(v);
    if (w) workloads.push(w);
  }
  const security = authorizationPolicies.length + requestAuthentications.length > 0 ? { security: { authorizationPolicies, requestAuthentications } } : {};
  return { services, httpRoutes, grpcRoutes, tcpRoutes, workloads, vips: new Map(raw.vips), gateways, externalServices, policies, ...security, ...(telemetry.length > 0 ? { telemetry } : {}), ...(pathNormalization.length > 0 ? { pathNormalization } : {}), ...(plugins.length > 0 ? { plugins } : {}), ...(sidecars.length > 0 ? { sidecars } : {}) };
}

/** Folds one key into `raw`; false for keys the mesh state does not read
 * (leader election, CA state, VIP claims...), which need no recomputation. */
function apply(raw: Raw, key: string, value: unknown | undefined): boolean {
  if (key.startsWith(RESOURCES_PREFIX)) {
    const kind = key.slice(RESOURCES_PREFIX.length).split('/')[0] ?? '';
    if (value === undefined) raw.resources.delete(key);
    else raw.resources.set(key, { kind, value });
  } else if (key.startsWith(WORKLOADS_PREFIX)) {
    if (value === undefined) raw.workloads.delete(key);
    else raw.workloads.set(key, value);
  } else if (key.startsWith(VIPS_PREFIX)) {
    const vip = value === undefined ? undefined : vipOf(value);
    if (vip === undefined) raw.vips.delete(tail2(key, VIPS_PREFIX));
    else raw.vips.set(tail2(key, VIPS_PREFIX), vip);
  } else return false;
  return true;
}

/** Watch the store and call `onChange` with each new MeshState (debounced). */
export async function watchMeshState(
  store: Store,
  onChange: (state: MeshState, revision: number) => void,
  opts: { debounceMs?: number } = {},
): Promise<MeshStateWatcher> {
  const debounceMs = opts.debounceMs ?? 20;
  let raw: Raw = { resources: new Map(), workloads: new Map(), vips: new Map() };
  let state: MeshState = buildMeshState(raw);
  let rev = 0;
  let watch: Watch | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const emit = (): void => {
    timer = undefined;
    if (stopped) return;
    state = buildMeshState(raw);
    onChange(state, rev);
  };
  const schedule = (): void => {
    if (!timer) timer = setTimeout(emit, debounceMs);
  };

  const start = async (): Promise<void> => {
    const fresh: Raw = { resources: new Map(), workloads: new Map(), vips: new Map() };
    const { items, revision } = await store.list('/trellis/');
    for (const kv of items) apply(fresh, kv.key, parse(kv));
    raw = fresh;
    rev = revision;
    state = buildMeshState(raw);
    watch = store.watch('/trellis/', { fromRevision: revision + 1 }, {
      onEvent(ev: WatchEvent) {
        rev = ev.revision;
        const relevant = ev.type === 'put' ? apply(raw, ev.kv.key, parse(ev.kv)) : apply(raw, ev.key, undefined);
        if (relevant) schedule();
      },
      onError(err) {
        if (stopped || err.code === 'closed') return;
        // Compacted or interrupted: start over from a fresh list.
        watch?.cancel();
        start().then(schedule, () => setTimeout(() => void start().then(schedule, () => {}), 1000));
      },
    });
  };
  await start();
  onChange(state, rev);

  return {
    current: () => state,
    revision: () => rev,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      watch?.cancel();
    },
  };
}
