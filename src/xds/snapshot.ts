// A Snapshot: one immutable, versioned set of xDS resources for a proxy (or a
// group of proxies), in go-control-plane's model. Resources go in as
// proto3-JSON, are encoded strictly (codec.ts) once, and are kept both packed
// (what the ADS server sends) and as JSON (what status pages show).
//
// Each resource type has its own version: a hash of that type's content, so a
// new snapshot whose clusters did not change is not pushed to CDS subscribers
// again, and an endpoint-only change pushes only EDS.
import { createHash } from 'node:crypto';
import { packAny, XdsCodecError } from './codec.ts';
import type { JsonObject, PackedAny } from './codec.ts';
import { TypeUrl } from './protos.ts';
import type { ResourceTypeUrl } from './protos.ts';

export interface SnapshotResource {
  readonly name: string;
  readonly any: PackedAny;
  readonly json: JsonObject;
  /** sha256 of the encoded resource (hex, shortened). */
  readonly hash: string;
}

export interface SnapshotTypeResources {
  readonly typeUrl: ResourceTypeUrl;
  /** Content hash of the whole type: changes exactly when a resource of the type changes. */
  readonly version: string;
  readonly resources: ReadonlyMap<string, SnapshotResource>;
}

export interface Snapshot {
  /** The label the caller gave (e.g. the store revision); for display only. */
  readonly label: string;
  readonly types: ReadonlyMap<ResourceTypeUrl, SnapshotTypeResources>;
}

export interface SnapshotInput {
  readonly listeners?: readonly unknown[];
  readonly routes?: readonly unknown[];
  readonly clusters?: readonly unknown[];
  readonly endpoints?: readonly unknown[];
  readonly secrets?: readonly unknown[];
}

export type SnapshotErrorCode =
  | 'XDS_INVALID_RESOURCE'
  | 'XDS_DUPLICATE_NAME'
  | 'XDS_MISSING_NAME'
  | 'XDS_DANGLING_REFERENCE'
  | 'XDS_MISSING_LOCALITY_WEIGHT';

export interface SnapshotError {
  readonly code: SnapshotErrorCode;
  /** e.g. "clusters[2].connectTimeout" or "routes[echo].virtualHosts[0].routes[1].route.cluster". */
  readonly path: string;
  readonly message: string;
}

export type CreateSnapshotResult = { ok: true; snapshot: Snapshot } | { ok: false; errors: SnapshotError[] };

interface KindSpec {
  key: keyof SnapshotInput;
  typeUrl: ResourceTypeUrl;
  nameField: string;
}

const KINDS: readonly KindSpec[] = [
  { key: 'listeners', typeUrl: TypeUrl.listener, nameField: 'name' },
  { key: 'routes', typeUrl: TypeUrl.route, nameField: 'name' },
  { key: 'clusters', typeUrl: TypeUrl.cluster, nameField: 'name' },
  { key: 'endpoints', typeUrl: TypeUrl.endpoint, nameField: 'clusterName' },
  { key: 'secrets', typeUrl: TypeUrl.secret, nameField: 'name' },
];

const shortHash = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex').slice(0, 16);

/** Packed form of resource objects already encoded, by object identity. The
 * control plane hands the same (never mutated) objects to many snapshots —
 * every proxy shares the service clusters and endpoints of a mesh state — so
 * each is encoded and hashed once, not once per proxy. */
const packedByObject = new WeakMap<object, { typeUrl: string; any: PackedAny; hash: string }>();

/** And by content, for the small per-proxy resources that differ in identity
 * but not in content (every sidecar's outbound listener looks alike).
 * Bounded: the oldest entries are dropped first. */
const packedByContent = new Map<string, { any: PackedAny; hash: string }>();
const PACKED_BY_CONTENT_MAX = 20_000;

/** Encodes and versions the resources. Does not check cross-references: see checkConsistency. */
export function createSnapshot(input: SnapshotInput, label = ''): CreateSnapshotResult {
  const errors: SnapshotError[] = [];
  const types = new Map<ResourceTypeUrl, SnapshotTypeResources>();
  for (const kind of KINDS) {
    const resources = new Map<string, SnapshotResource>();
    (input[kind.key] ?? []).forEach((json, i) => {
      const at = `${kind.key}[${i}]`;
      const name = typeof json === 'object' && json !== null ? (json as Record<string, unknown>)[kind.nameField] : undefined;
      if (typeof name !== 'string' || name === '') {
        errors.push({ code: 'XDS_MISSING_NAME', path: `${at}.${kind.nameField}`, message: `${kind.nameField} must be a non-empty string` });
        return;
      }
      if (resources.has(name)) {
        errors.push({ code: 'XDS_DUPLICATE_NAME', path: `${at}.${kind.nameField}`, message: `a resource named "${name}" is already in ${kind.key}` });
        return;
      }
      try {
        const memo = packedByObject.get(json as object);
        if (memo !== undefined && memo.typeUrl === kind.typeUrl) {
          resources.set(name, { name, any: memo.any, json: json as JsonObject, hash: memo.hash });
          return;
        }
        const contentKey = `${kind.typeUrl}\u0000${JSON.stringify(json)}`;
        let packed = packedByContent.get(contentKey);
        if (packed === undefined) {
          const any = packAny(kind.typeUrl, json);
          packed = { any, hash: shortHash(any.value) };
          if (packedByContent.size >= PACKED_BY_CONTENT_MAX) {
            const oldest = packedByContent.keys().next();
            if (!oldest.done) packedByContent.delete(oldest.value);
          }
          packedByContent.set(contentKey, packed);
        }
        packedByObject.set(json as object, { typeUrl: kind.typeUrl, ...packed });
        resources.set(name, { name, any: packed.any, json: json as JsonObject, hash: packed.hash });
      } catch (err) {
        if (!(err instanceof XdsCodecError)) throw err;
        errors.push({ code: 'XDS_INVALID_RESOURCE', path: err.path === '' ? at : `${at}.${err.path}`, message: err.reason });
      }
    });
    const sorted = new Map([...resources].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    const version = shortHash([...sorted.values()].map((r) => `${r.name}\u0000${r.hash}`).join('\n'));
    types.set(kind.typeUrl, { typeUrl: kind.typeUrl, version, resources: sorted });
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, snapshot: Object.freeze({ label, types }) };
}

export function snapshotResources(snapshot: Snapshot, typeUrl: ResourceTypeUrl): ReadonlyMap<string, SnapshotResource> {
  return snapshot.types.get(typeUrl)?.resources ?? new Map();
}

// ---------------------------------------------------------------- consistency

const HCM = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP_PROXY = 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const typeOf = (v: Obj): string => String(v['@type'] ?? '').replace(/^.*\//, '');

/**
 * go-control-plane's Consistent(): every RDS name a listener references is in
 * the snapshot, every cluster a route or tcp_proxy references is, every EDS
 * cluster has a ClusterLoadAssignment, every SDS secret name exists. Also
 * every locality carries a load_balancing_weight: proxyless gRPC clients send
 * nothing to a locality without one.
 */
/** Checks every reference in `snapshot`, or, with `only`, just the references
 * made by the resources of `only` (resolved against all of `snapshot`): a
 * composed snapshot whose shared part was checked once need not be walked
 * again for each proxy. */
export function checkConsistency(snapshot: Snapshot, only?: Snapshot): SnapshotError[] {
  const errors: SnapshotError[] = [];
  const scope = only ?? snapshot;
  const routes = snapshotResources(snapshot, TypeUrl.route);
  const clusters = snapshotResources(snapshot, TypeUrl.cluster);
  const endpoints = snapshotResources(snapshot, TypeUrl.endpoint);
  const secrets = snapshotResources(snapshot, TypeUrl.secret);

  const needCluster = (name: unknown, path: string): void => {
    if (typeof name === 'string' && !clusters.has(name)) {
      errors.push({ code: 'XDS_DANGLING_REFERENCE', path, message: `cluster "${name}" is not in the snapshot` });
    }
  };
  // Paths are built only for an error: a shared part has thousands of routes.
  const checkRouteConfig = (rc: Obj, base: string): void => {
    arr(rc.virtualHosts).forEach((vh, v) => {
      if (!isObj(vh)) return;
      arr(vh.routes).forEach((r, i) => {
        if (!isObj(r) || !isObj(r.route)) return;
        const p = (rest: string): string => `${base}.virtualHosts[${v}].routes[${i}].route${rest}`;
        const route = r.route;
        if (typeof route.cluster === 'string' && !clusters.has(route.cluster)) needCluster(route.cluster, p('.cluster'));
        if (isObj(route.weightedClusters)) {
          arr(route.weightedClusters.clusters).forEach((wc, w) => {
            if (isObj(wc) && typeof wc.name === 'string' && !clusters.has(wc.name)) needCluster(wc.name, p(`.weightedClusters.clusters[${w}].name`));
          });
        }
        arr(route.requestMirrorPolicies).forEach((m, k) => {
          if (isObj(m) && typeof m.cluster === 'string' && !clusters.has(m.cluster)) needCluster(m.cluster, p(`.requestMirrorPolicies[${k}].cluster`));
        });
      });
    });
  };
  const checkFilterConfig = (cfg: unknown, path: string): void => {
    if (!isObj(cfg)) return;
    if (typeOf(cfg) === HCM) {
      if (isObj(cfg.rds)) {
        const name = cfg.rds.routeConfigName;
        if (typeof name === 'string' && !routes.has(name)) {
          errors.push({ code: 'XDS_DANGLING_REFERENCE', path: `${path}.rds.routeConfigName`, message: `route configuration "${name}" is not in the snapshot` });
        }
      }
      if (isObj(cfg.routeConfig)) checkRouteConfig(cfg.routeConfig, `${path}.routeConfig`);
    } else if (typeOf(cfg) === TCP_PROXY) {
      needCluster(cfg.cluster, `${path}.cluster`);
      if (isObj(cfg.weightedClusters)) {
        arr(cfg.weightedClusters.clusters).forEach((wc, w) => {
          if (isObj(wc)) needCluster(wc.name, `${path}.weightedClusters.clusters[${w}].name`);
        });
      }
    }
  };

  for (const [name, l] of snapshotResources(scope, TypeUrl.listener)) {
    const base = `listeners[${name}]`;
    const chains: [unknown, string][] = arr(l.json.filterChains).map((c, i) => [c, `${base}.filterChains[${i}]`]);
    if (l.json.defaultFilterChain !== undefined) chains.push([l.json.defaultFilterChain, `${base}.defaultFilterChain`]);
    for (const [chain, p] of chains) {
      if (!isObj(chain)) continue;
      arr(chain.filters).forEach((f, i) => {
        if (isObj(f)) checkFilterConfig(f.typedConfig, `${p}.filters[${i}].typedConfig`);
      });
    }
    if (isObj(l.json.apiListener)) checkFilterConfig(l.json.apiListener.apiListener, `${base}.apiListener.apiListener`);
  }
  for (const [name, r] of snapshotResources(scope, TypeUrl.route)) checkRouteConfig(r.json, `routes[${name}]`);
  for (const [name, c] of snapshotResources(scope, TypeUrl.cluster)) {
    const isEds = c.json.type === 'EDS';
    const eds = isObj(c.json.edsClusterConfig) ? c.json.edsClusterConfig : undefined;
    if (!isEds) continue;
    const service = typeof eds?.serviceName === 'string' && eds.serviceName !== '' ? eds.serviceName : name;
    if (!endpoints.has(service)) {
      errors.push({ code: 'XDS_DANGLING_REFERENCE', path: `clusters[${name}]`, message: `EDS cluster has no ClusterLoadAssignment "${service}"` });
    }
  }
  for (const [name, cla] of snapshotResources(scope, TypeUrl.endpoint)) {
    arr(cla.json.endpoints).forEach((loc, i) => {
      if (!isObj(loc)) return;
      const w = loc.loadBalancingWeight;
      const value = isObj(w) ? w.value : w;
      if (typeof value !== 'number' || value <= 0) {
        errors.push({
          code: 'XDS_MISSING_LOCALITY_WEIGHT',
          path: `endpoints[${name}].endpoints[${i}].loadBalancingWeight`,
          message: 'each locality needs a weight > 0 (gRPC clients send no traffic to a locality without one)',
        });
      }
    });
  }
  // SDS: names of secrets referenced anywhere in listeners and clusters. The
  // path is kept as segments and joined only for an error.
  const at: string[] = [];
  const walkSds = (v: unknown): void => {
    if (typeof v !== 'object' || v === null) return;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        at.push(`[${i}]`);
        walkSds(v[i]);
        at.pop();
      }
      return;
    }
    for (const k in v) {
      const e = (v as Obj)[k];
      if (typeof e !== 'object' || e === null) continue;
      at.push(`.${k}`);
      if (k === 'tlsCertificateSdsSecretConfigs') {
        arr(e).forEach((s, i) => checkSecret(s, `[${i}].name`));
      } else if (k === 'validationContextSdsSecretConfig') {
        checkSecret(e, '.name');
      } else {
        walkSds(e);
      }
      at.pop();
    }
  };
  const checkSecret = (s: unknown, rest: string): void => {
    if (isObj(s) && typeof s.name === 'string' && !secrets.has(s.name)) {
      errors.push({ code: 'XDS_DANGLING_REFERENCE', path: `${at.join('')}${rest}`, message: `secret "${s.name}" is not in the snapshot` });
    }
  };
  for (const [name, l] of snapshotResources(scope, TypeUrl.listener)) {
    at.push(`listeners[${name}]`);
    walkSds(l.json);
    at.pop();
  }
  for (const [name, c] of snapshotResources(scope, TypeUrl.cluster)) {
    at.push(`clusters[${name}]`);
    walkSds(c.json);
    at.pop();
  }
  return errors;
}

/** Two maps with disjoint keys read as one, without copying either (a proxy's
 * few own resources over the thousands it shares with every other proxy). */
class UnionMap<K, V> implements ReadonlyMap<K, V> {
  readonly #a: ReadonlyMap<K, V>;
  readonly #b: ReadonlyMap<K, V>;
  constructor(a: ReadonlyMap<K, V>, b: ReadonlyMap<K, V>) {
    this.#a = a;
    this.#b = b;
  }
  get size(): number {
    return this.#a.size + this.#b.size;
  }
  get(key: K): V | undefined {
    return this.#a.get(key) ?? this.#b.get(key);
  }
  has(key: K): boolean {
    return this.#a.has(key) || this.#b.has(key);
  }
  forEach(cb: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [k, v] of this) cb.call(thisArg, v, k, this);
  }
  *entries(): MapIterator<[K, V]> {
    yield* this.#a.entries();
    yield* this.#b.entries();
  }
  *keys(): MapIterator<K> {
    yield* this.#a.keys();
    yield* this.#b.keys();
  }
  *values(): MapIterator<V> {
    yield* this.#a.values();
    yield* this.#b.values();
  }
  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }
}

/** `base` plus `extra` as one snapshot: types `extra` leaves empty are
 * `base`'s own (shared, not copied); the others are merged, with a version
 * derived from both. A name in both is an error. */
export function composeSnapshots(base: Snapshot, extra: Snapshot, label = base.label): CreateSnapshotResult {
  const errors: SnapshotError[] = [];
  const types = new Map<ResourceTypeUrl, SnapshotTypeResources>();
  for (const kind of KINDS) {
    const b = base.types.get(kind.typeUrl);
    const e = extra.types.get(kind.typeUrl);
    if (!e || e.resources.size === 0) {
      if (b) types.set(kind.typeUrl, b);
      continue;
    }
    if (!b || b.resources.size === 0) {
      types.set(kind.typeUrl, e);
      continue;
    }
    for (const name of e.resources.keys()) {
      if (b.resources.has(name)) {
        errors.push({ code: 'XDS_DUPLICATE_NAME', path: `${kind.key}[${name}]`, message: `a resource named "${name}" is in both parts of the snapshot` });
      }
    }
    types.set(kind.typeUrl, { typeUrl: kind.typeUrl, version: shortHash(`${b.version}+${e.version}`), resources: new UnionMap(b.resources, e.resources) });
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, snapshot: Object.freeze({ label, types }) };
}
