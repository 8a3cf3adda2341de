// The Kubernetes source: keeps the control plane's store in step with the
// Kubernetes API, so the rest of the control plane (mesh state, translation,
// xDS, the API, the dashboard) reads Kubernetes-sourced services and
// workloads exactly as it reads applied and registered ones.
//
//   kube-apiserver ─┬─ list+watch Services ───────► serviceFromKube ───► Service resource + VIP ─┐
//                   ├─ list+watch Pods ───────────► workloadFromPod ───► registered workload ────┤
//                   ├─ list+watch EndpointSlices ─► workloadsFromEndpointSlice (selector-less) ──┤
//                   └─ list+watch HTTPRoutes, GRPCRoutes (CRDs, once served) ─► same resources ─┤
//                                                                                               ▼
//                                                   store ◄── resourceVersion per collection ── writes
//
// Each collection has a Reflector (reflector.ts). What it writes is marked
// (annotation / field `trellis.dev/source: kubernetes`, and the object it
// came from in `origin`); a full list
// (first start, or after 410 Gone) deletes the marked objects Kubernetes no
// longer has and leaves everything else alone. After every handled change the
// collection's resourceVersion is saved in the store (debounced), so a
// restarted control plane watches from where it stopped: no event missed.
// Writes are skipped when the mapped object did not change (a Pod's status
// heartbeat rewrites nothing).
import type { Store } from '../store/types.ts';
import { kindPrefix, parseResourceKey, resourceKey } from '../resources/keys.ts';
import { refId } from '../resources/status.ts';
import { mergeParentStatuses, routeParentStatuses, writeRouteStatus, type KubeRoute } from './route-status.ts';
import { WORKLOADS_PREFIX, workloadKey } from '../registry/workload.ts';
import { VIPS_PREFIX, vipKey } from '../registry/vip.ts';
import { canonicalJson } from '../resources/service.ts';
import { KubeApiError, type KubeClient, type KubeObject } from './client.ts';
import { GATEWAY_GROUP } from '../../api/gateway-api.ts';
import { KubeConfigError } from './kubeconfig.ts';
import { startReflector, type Reflector } from './reflector.ts';
import { gatewayResourceFromKube, serviceFromKube, workloadFromPod, workloadsFromEndpointSlice, SOURCE_ANNOTATION, SOURCE_KUBERNETES, type KubeEndpointSlice, type KubePod, type KubeService } from './mapping.ts';

export const KUBERNETES_STATE_PREFIX = '/trellis/kubernetes/';

export interface KubernetesSourceOptions {
  log?: (msg: string) => void;
  /** How long a handled change may wait before its resourceVersion is saved (default 200 ms). */
  saveDelayMs?: number;
  /** Server-side watch timeout in seconds (default 300). */
  watchTimeoutSeconds?: number;
  /** How often a kind whose CRD is not installed is looked for again (default 10 s). */
  absentPollMs?: number;
}

export interface KubernetesSource {
  /** Resolves when every collection is listed (or its watch resumed). */
  readonly synced: Promise<void>;
  /** Saved resourceVersion per collection path (what a restart resumes from). */
  resourceVersions(): Record<string, string | undefined>;
  stop(): Promise<void>;
}

interface Collection<T> {
  path: string;
  kind: string;
  /** A CRD that may not be installed: watched once the API server serves it. */
  optional?: boolean;
  /** After an object's keys are written (or deleted). */
  changed?(obj: T, deleted: boolean): void;
  /** The store keys and values an object maps to now (every key it may own; undefined: delete). */
  map(obj: T): Map<string, string | undefined>;
  /** Store prefixes it writes under, for a re-list's clean-up. */
  prefixes: string[];
}

/** Which of our collections wrote a stored value ("Service", "HTTPRoute", "Pod", "EndpointSlice"...), or undefined if not ours. */
function ownerKind(key: string, value: string): string | undefined {
  try {
    const v = JSON.parse(value) as { kind?: unknown; source?: unknown; origin?: unknown; metadata?: { annotations?: Record<string, string> } };
    if (v.metadata?.annotations?.[SOURCE_ANNOTATION] === SOURCE_KUBERNETES) return typeof v.kind === 'string' ? v.kind : undefined;
    if (v.source !== SOURCE_KUBERNETES) return undefined;
    if (key.startsWith(VIPS_PREFIX)) return 'Service';
    return typeof v.origin === 'string' ? v.origin.split('/')[0] : undefined;
  } catch {
    return undefined;
  }
}

/** "EndpointSlice/<ns>/<name>" of a stored workload, if it has one. */
function originOf(value: string): string | undefined {
  try {
    const o = (JSON.parse(value) as { origin?: unknown }).origin;
    return typeof o === 'string' ? o : undefined;
  } catch {
    return undefined;
  }
}

const nsName = (o: { metadata: { namespace?: string; name: string } }): [string, string] => [o.metadata.namespace ?? 'default', o.metadata.name];
const idOf = (kind: string, o: { metadata: { namespace?: string; name: string } }): string => `${kind}/${nsName(o).join('/')}`;

export async function startKubernetesSource(store: Store, client: KubeClient, opts: KubernetesSourceOptions = {}): Promise<KubernetesSource> {
  const log = opts.log ?? (() => {});
  const saveDelayMs = opts.saveDelayMs ?? 200;
  const absentPollMs = opts.absentPollMs ?? 10_000;
  const stateKey = (path: string): string => `${KUBERNETES_STATE_PREFIX}resource-versions${path}`;
  const statuses = routeStatuses(store, client, log);

  const services: Collection<KubeService> = {
    path: '/api/v1/services',
    kind: 'Service',
    prefixes: [kindPrefix('Service'), VIPS_PREFIX],
    map(svc) {
      const [ns, name] = nsName(svc);
      const out = new Map<string, string | undefined>();
      const r = serviceFromKube(svc);
      if (!r.ok) log(`kubernetes: Service ${ns}/${name} not meshed: ${r.reason}`);
      // The VIP first: the VIP allocator then never allocates one of its own.
      out.set(vipKey(ns, name), r.ok && r.value.vip ? JSON.stringify({ ip: r.value.vip, allocatedAt: r.value.resource.metadata.creationTimestamp ?? '', source: SOURCE_KUBERNETES }) : undefined);
      out.set(resourceKey({ kind: 'Service', namespace: ns, name }), r.ok ? JSON.stringify(r.value.resource) : undefined);
      return out;
    },
    // Routes' ResolvedRefs/Accepted depend on which Services exist.
    changed: () => statuses.recheckAll(),
  };
  const pods: Collection<KubePod> = {
    path: '/api/v1/pods',
    kind: 'Pod',
    prefixes: [WORKLOADS_PREFIX],
    map(pod) {
      const [ns, name] = nsName(pod);
      const r = workloadFromPod(pod);
      return new Map([[workloadKey(ns, name), r.ok ? JSON.stringify(r.value) : undefined]]);
    },
  };
  const slices: Collection<KubeEndpointSlice> = {
    path: '/apis/discovery.k8s.io/v1/endpointslices',
    kind: 'EndpointSlice',
    prefixes: [WORKLOADS_PREFIX],
    map(slice) {
      const r = workloadsFromEndpointSlice(slice);
      if (!r.ok) log(`kubernetes: EndpointSlice ${nsName(slice).join('/')} ignored: ${r.reason}`);
      return new Map(r.ok ? r.value.map((w) => [workloadKey(w.namespace, w.name), JSON.stringify(w)]) : []);
    },
  };
  // The Gateway API kinds, from the upstream CRDs (when installed). Routes
  // get their status written back; a Gateway change re-checks the routes
  // (their parents), its own status is not written yet.
  const gatewayKinds = ([['HTTPRoute', 'httproutes'], ['GRPCRoute', 'grpcroutes'], ['TCPRoute', 'tcproutes'], ['Gateway', 'gateways']] as const).map(([kind, plural]): Collection<KubeObject & { spec?: unknown }> => ({
    path: `/apis/${GATEWAY_GROUP}/v1/${plural}`,
    kind,
    optional: true,
    prefixes: [kindPrefix(kind)],
    map(obj) {
      const [ns, name] = nsName(obj);
      const r = gatewayResourceFromKube(obj, kind);
      if (!r.ok) log(`kubernetes: ${kind} ${ns}/${name} not applied: ${r.reason}`);
      return new Map([[resourceKey({ kind, namespace: ns, name }), r.ok ? JSON.stringify(r.value) : undefined]]);
    },
    changed: kind === 'Gateway' ? () => statuses.recheckAll() : (obj, deleted) => statuses.route(`/apis/${GATEWAY_GROUP}/v1/${plural}`, kind, obj, deleted),
  }));
  const collections = [services, pods, slices, ...gatewayKinds] as unknown as Collection<KubeObject>[];

  /** canonical JSON of what each of our keys holds now. */
  const written = new Map<string, string>();
  /** Keys each object wrote whose names are not fixed by the object's own (an EndpointSlice's endpoints). */
  const owned = new Map<string, Set<string>>();
  const canon = (json: string): string => canonicalJson(JSON.parse(json));

  async function write(key: string, value: string | undefined): Promise<void> {
    if (value === undefined) {
      const cur = await store.get(key);
      // Never delete what someone else wrote (an applied Service, a `trellis run` registration).
      if (cur && ownerKind(key, cur.value) !== undefined) await store.delete(key, { expectModRevision: cur.modRevision });
      written.delete(key);
      return;
    }
    const c = canon(value);
    if (written.get(key) === c) return;
    const put = await store.put(key, value);
    if (!put.ok) throw new Error(`store: writing ${key} failed: ${put.reason}`);
    written.set(key, c);
  }

  /** Bring the store in line with one object: write its keys, delete the ones it no longer maps to. */
  async function reconcile(id: string, next: Map<string, string | undefined>): Promise<void> {
    const before = owned.get(id);
    if (before) for (const k of before) if (!next.has(k)) await write(k, undefined);
    const now = new Set<string>();
    for (const [k, v] of next) {
      await write(k, v);
      if (v !== undefined) now.add(k);
    }
    if (now.size > 0) owned.set(id, now);
    else owned.delete(id);
  }

  const saved = new Map<string, string | undefined>();
  const dirty = new Map<string, string>();
  let saveTimer: NodeJS.Timeout | undefined;
  const flush = async (): Promise<void> => {
    saveTimer = undefined;
    const batch = [...dirty];
    dirty.clear();
    for (const [path, rv] of batch) {
      await store.put(stateKey(path), JSON.stringify({ server: client.server, resourceVersion: rv }));
      saved.set(path, rv);
    }
  };
  const progress = (path: string, rv: string): void => {
    dirty.set(path, rv);
    if (!saveTimer) saveTimer = setTimeout(() => void flush().catch((err: Error) => log(`kubernetes: saving resourceVersion failed: ${err.message}`)), saveDelayMs);
  };

  // What this collection wrote, as the store has it now (a restart resumes on top of it).
  const ours = async (col: Collection<KubeObject>): Promise<Map<string, string>> => {
    const out = new Map<string, string>();
    for (const p of col.prefixes) {
      for (const kv of (await store.list(p)).items) if (ownerKind(kv.key, kv.value) === col.kind) out.set(kv.key, kv.value);
    }
    return out;
  };

  // Fail fast, with the API server's own words, on credentials or RBAC that
  // cannot work. A CRD not installed (404) is only noted.
  const served = async (col: Collection<KubeObject>): Promise<boolean> => {
    try {
      await client.request('GET', `${col.path}?limit=1`);
      return true;
    } catch (err) {
      if (col.optional && err instanceof KubeApiError && err.status === 404) return false;
      throw new KubeConfigError(`kubernetes: cannot list ${col.path} at ${client.server}: ${(err as Error).message}`);
    }
  };
  const present: Collection<KubeObject>[] = [];
  const absent: Collection<KubeObject>[] = [];
  for (const col of collections) (await served(col) ? present : absent).push(col);

  const reflectors: Reflector[] = [];
  const start = async (col: Collection<KubeObject>): Promise<void> => {
    for (const [k, v] of await ours(col)) {
      written.set(k, canon(v));
      const origin = originOf(v);
      if (origin) owned.set(origin, (owned.get(origin) ?? new Set()).add(k));
    }
    const st = await store.get(stateKey(col.path));
    let resume: string | undefined;
    if (st) {
      const v = JSON.parse(st.value) as { server?: string; resourceVersion?: string };
      // A different API server's resourceVersions mean nothing here: list.
      if (v.server === client.server && v.resourceVersion) resume = v.resourceVersion;
    }
    saved.set(col.path, resume);
    if (resume) log(`kubernetes ${col.path}: resuming the watch from resourceVersion ${resume}`);
    reflectors.push(startReflector<KubeObject>(client, {
      path: col.path,
      ...(resume ? { resourceVersion: resume } : {}),
      ...(opts.watchTimeoutSeconds === undefined ? {} : { watchTimeoutSeconds: opts.watchTimeoutSeconds }),
      log,
      handlers: {
        async replace(items) {
          const want = new Set<string>();
          const maps = items.map((o) => [idOf(col.kind, o), col.map(o)] as const);
          for (const [, m] of maps) for (const [k, v] of m) if (v !== undefined) want.add(k);
          for (const k of (await ours(col)).keys()) if (!want.has(k)) await write(k, undefined);
          for (const id of [...owned.keys()]) if (id.startsWith(`${col.kind}/`)) owned.delete(id);
          for (const [id, m] of maps) await reconcile(id, m);
          for (const o of items) col.changed?.(o, false);
        },
        async event(type, obj) {
          const next = col.map(obj);
          if (type === 'DELETED') for (const k of next.keys()) next.set(k, undefined);
          await reconcile(idOf(col.kind, obj), next);
          col.changed?.(obj, type === 'DELETED');
        },
        progress: (rv) => progress(col.path, rv),
      },
    }));
  };
  for (const col of present) await start(col);
  const synced = Promise.all(reflectors.map((r) => r.synced)).then(() => {});

  // Kinds whose CRD is not installed: nothing of theirs can exist (drop what
  // an earlier run wrote), and they are watched as soon as they are served.
  let stopped = false;
  let pollTimer: NodeJS.Timeout | undefined;
  for (const col of absent) {
    log(`kubernetes: ${col.kind} is not served by the API server (CRD not installed); checking again every ${Math.round(absentPollMs / 1000)} s`);
    for (const k of (await ours(col)).keys()) await write(k, undefined);
    await store.delete(stateKey(col.path));
  }
  const poll = async (): Promise<void> => {
    pollTimer = undefined;
    for (const col of [...absent]) {
      if (stopped || !(await served(col).catch(() => false))) continue;
      absent.splice(absent.indexOf(col), 1);
      log(`kubernetes: ${col.kind} is served now; watching it`);
      await start(col);
    }
    if (!stopped && absent.length > 0) pollTimer = setTimeout(() => void poll(), absentPollMs);
  };
  if (absent.length > 0) pollTimer = setTimeout(() => void poll(), absentPollMs);

  return {
    synced,
    resourceVersions: () => Object.fromEntries(saved),
    async stop() {
      if (stopped) return;
      stopped = true;
      if (pollTimer) clearTimeout(pollTimer);
      statuses.stop();
      for (const r of reflectors) r.stop();
      if (saveTimer) clearTimeout(saveTimer);
      await flush();
    },
  };
}


/** Keeps the status of Kubernetes-sourced routes written (route-status.ts): per
 * route after it changes, every route after a Service changes; debounced. */
function routeStatuses(store: Store, client: KubeClient, log: (msg: string) => void): {
  route(path: string, kind: string, obj: KubeObject, deleted: boolean): void;
  recheckAll(): void;
  stop(): void;
} {
  const known = new Map<string, { path: string; kind: string; obj: KubeRoute }>();
  const pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let stopped = false;
  const refIndex = async (): Promise<Set<string>> => {
    const ids = new Set<string>();
    for (const kind of ['Service', 'Gateway']) {
      for (const kv of (await store.list(kindPrefix(kind))).items) {
        const k = parseResourceKey(kv.key);
        if (k) ids.add(refId(k.kind, k.namespace, k.name));
      }
    }
    return ids;
  };
  const run = async (): Promise<void> => {
    timer = undefined;
    if (running || stopped) return;
    running = true;
    try {
      const refs = await refIndex();
      const batch = [...pending];
      pending.clear();
      for (const id of batch) {
        const r = known.get(id);
        if (!r || stopped) continue;
        const apiVersion = `${GATEWAY_GROUP}/v1`;
        const ours = routeParentStatuses(r.obj, r.kind, gatewayResourceFromKube(r.obj, r.kind), refs, new Date().toISOString().replace(/\.\d+Z$/, 'Z'));
        const parents = mergeParentStatuses(r.obj.status?.parents, ours);
        if (!parents) continue;
        // A conflict: the route changed meanwhile; its event brings it back here.
        const w = await writeRouteStatus(client, r.path, { apiVersion, kind: r.kind }, r.obj, parents).catch((err: Error) => {
          log(`kubernetes: writing the status of ${id} failed: ${err.message}`);
          return 'failed';
        });
        if (w === 'written') log(`kubernetes: ${id} status: ${ours[0]?.conditions.map((c) => `${c.type}=${c.status}`).join(' ') ?? 'no parentRefs'}`);
      }
    } catch (err) {
      log(`kubernetes: route status: ${(err as Error).message}`);
    } finally {
      running = false;
      if (pending.size > 0 && !stopped) timer = setTimeout(() => void run(), 50);
    }
  };
  const schedule = (): void => {
    if (!timer && !stopped) timer = setTimeout(() => void run(), 50);
  };
  return {
    route(path, kind, obj, deleted) {
      const id = idOf(kind, obj);
      if (deleted) {
        known.delete(id);
        pending.delete(id);
        return;
      }
      known.set(id, { path, kind, obj: obj as KubeRoute });
      pending.add(id);
      schedule();
    },
    recheckAll() {
      if (known.size === 0) return;
      for (const id of known.keys()) pending.add(id);
      schedule();
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
