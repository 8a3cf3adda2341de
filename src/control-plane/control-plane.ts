// The control plane, assembled: store -> resources API + registry -> mesh
// state -> per-proxy snapshots -> xDS. One process; several replicas share an
// etcd and each serves xDS (proxies list them all and fail over).
//
//   store (sqlite | etcd)
//     ├─ resources service  ── HTTP API (apply/get/list/delete/watch)
//     ├─ registry           ── HTTP API (register/heartbeat/deregister)
//     └─ watchMeshState ── MeshSnapshotSource (translate per proxy view) ── ADS server
import type { Store } from './store/types.ts';
import { openSqliteStore } from './store/sqlite.ts';
import { createResourceService, type ResourceService } from './resources/service.ts';
import { watchMeshState, type MeshStateWatcher } from './mesh-state.ts';
import { MeshSnapshotSource } from './snapshots.ts';
import type { MeshState } from './translate/model.ts';
import { createXdsServer, type XdsServer } from '../xds/server.ts';
import { createApiServer, type ApiServer } from './api/server.ts';
import { registryRoutes, type RegistryApi } from './registry-api.ts';
import { statusRoutes } from './status-api.ts';
import { startMeshIdentity, type MeshIdentity, type MeshIdentityOptions } from './ca/mesh-identity.ts';

export interface ControlPlaneOptions {
  /** Embedded store directory (default backend). */
  dataDir?: string;
  /** etcd endpoints: several replicas share one etcd. */
  etcdEndpoints?: string[];
  /** A store already opened (tests). */
  store?: Store;
  host?: string;
  /** 0 picks a free port. Defaults 15080 / 15010. */
  apiPort?: number;
  xdsPort?: number;
  /** Identifies this replica in xDS responses and logs. */
  id?: string;
  log?: (msg: string) => void;
  /** The mesh CA and automatic mTLS (docs/identity-and-mtls.md); `false` turns both off. */
  identity?: MeshIdentityOptions | false;
}

export interface ControlPlane {
  readonly id: string;
  readonly apiPort: number;
  readonly xdsPort: number;
  readonly apiUrl: string;
  readonly xdsAddress: string;
  readonly store: Store;
  readonly resources: ResourceService;
  readonly xds: XdsServer;
  readonly snapshots: MeshSnapshotSource;
  readonly registry: RegistryApi;
  readonly api: ApiServer;
  /** Undefined when started with `identity: false`. */
  readonly identity: MeshIdentity | undefined;
  close(): Promise<void>;
}

async function openStore(opts: ControlPlaneOptions): Promise<{ store: Store; owned: boolean }> {
  if (opts.store) return { store: opts.store, owned: false };
  if (opts.etcdEndpoints && opts.etcdEndpoints.length > 0) {
    const { openEtcdStore } = await import('./store/etcd.ts');
    return { store: await openEtcdStore({ endpoints: opts.etcdEndpoints }), owned: true };
  }
  return { store: await openSqliteStore(opts.dataDir ?? '.trellis/data'), owned: true };
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const host = opts.host ?? '127.0.0.1';
  const id = opts.id ?? `trellis-cp-${process.pid}`;
  const log = opts.log ?? ((msg: string) => console.log(`${new Date().toISOString()} control-plane ${msg}`));
  const { store, owned } = await openStore(opts);
  const cleanups: (() => Promise<void> | void)[] = [];
  try {
    const resources = createResourceService(store);
    const snapshots = new MeshSnapshotSource({ log });
    const identity = opts.identity === false ? undefined : await startMeshIdentity(store, opts.identity ?? {});
    if (identity) cleanups.push(() => identity.stop());
    const decorate = (state: MeshState): MeshState => (identity ? identity.decorate(state) : state);
    const watcher: MeshStateWatcher = await watchMeshState(store, (state, revision) => snapshots.setState(decorate(state), revision));
    cleanups.push(() => watcher.stop());
    identity?.onChange(() => snapshots.setState(decorate(watcher.current()), watcher.revision()));

    const xds = createXdsServer({ source: snapshots, controlPlaneId: id });
    const xdsPort = await xds.listen(host, opts.xdsPort ?? 15010);
    cleanups.push(() => xds.close({ graceMs: 0 }));

    const registry = registryRoutes(store, { log });
    cleanups.push(() => registry.close());
    const api = createApiServer({ resources });
    api.addRoutes(registry.routes);
    api.addRoutes(statusRoutes({ xds, snapshots, id }));
    if (identity) api.addRoutes(identity.routes);
    const { port: apiPort } = await api.listen(opts.apiPort ?? 15080, host);
    cleanups.push(() => api.close());

    log(`ready: api http://${host}:${apiPort} xds ${host}:${xdsPort} store ${store.kind}`);
    let closed = false;
    return {
      id,
      apiPort,
      xdsPort,
      apiUrl: `http://${host}:${apiPort}`,
      xdsAddress: `${host}:${xdsPort}`,
      store,
      resources,
      xds,
      snapshots,
      registry,
      api,
      identity,
      async close() {
        if (closed) return;
        closed = true;
        for (const c of cleanups.reverse()) await c();
        if (owned) await store.close();
      },
    };
  } catch (err) {
    for (const c of cleanups.reverse()) await c();
    if (owned) await store.close();
    throw err;
  }
}
