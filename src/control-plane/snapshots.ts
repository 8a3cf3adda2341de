// The control plane's snapshot source for the ADS server: the current
// MeshState translated for each connected proxy. Snapshots are computed on
// demand and cached per "view" (nodes that would get identical resources
// share one snapshot), so a change costs one translation per distinct view,
// not one per proxy. A translation that fails the snapshot checks is logged
// and the node keeps its last good snapshot.
import type { SnapshotSource, XdsNode } from '../xds/cache.ts';
import { createSnapshot, checkConsistency, composeSnapshots, type Snapshot, type SnapshotError } from '../xds/snapshot.ts';
import type { Json } from '../xds/codec.ts';
import type { MeshState, NodeKind, ProxyNode } from './translate/model.ts';
import { translateParts } from './translate/translate.ts';
import { gatewayNodeFields } from './translate/gateway.ts';
import type { RouteWarning } from './translate/http-routes.ts';

const KINDS: readonly NodeKind[] = ['sidecar', 'gateway', 'proxyless', 'node-proxy'];

/** Reads the Trellis view of a node from its xDS metadata (`metadata.trellis`).
 * Nodes without it (e.g. grpc-js-xds clients) are proxyless gRPC clients. */
export function proxyNodeOf(node: XdsNode): ProxyNode {
  const t = (node.metadata.trellis ?? {}) as { [k: string]: Json };
  const str = (v: Json | undefined): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const kind = KINDS.includes(t.kind as NodeKind) ? (t.kind as NodeKind) : 'proxyless';
  const out: ProxyNode = {
    id: node.id,
    kind,
    namespace: str(t.namespace) ?? 'default',
    locality: { region: node.locality.region, zone: node.locality.zone, subZone: node.locality.subZone },
  };
  const workload = str(t.workload);
  if (workload) out.workload = workload;
  const ob = t.outbound as { address?: Json; port?: Json } | undefined;
  if (ob && typeof ob.port === 'number') out.outbound = { address: str(ob.address) ?? '127.0.0.1', port: ob.port };
  if (t.capture === 'transparent') out.capture = 'transparent';
  if (typeof t.inboundPort === 'number') out.inboundPort = t.inboundPort;
  const inboundAddress = str(t.inboundAddress);
  if (inboundAddress) out.inboundAddress = inboundAddress;
  if (kind === 'gateway') Object.assign(out, gatewayNodeFields(t));
  if (Array.isArray(t.upstreams)) {
    out.upstreams = [];
    for (const u of t.upstreams) {
      if (!u || typeof u !== 'object' || Array.isArray(u)) continue;
      const service = str(u.service);
      if (!service || typeof u.port !== 'number' || typeof u.localPort !== 'number') continue;
      const ns = str(u.namespace);
      const la = str(u.localAddress);
      out.upstreams.push({ service, port: u.port, localPort: u.localPort, ...(ns ? { namespace: ns } : {}), ...(la ? { localAddress: la } : {}) });
    }
  }
  return out;
}

/** Everything translate() reads from the node, as a cache key. */
function viewKey(n: ProxyNode): string {
  return JSON.stringify([n.kind, n.namespace, n.workload ?? '', n.outbound ?? null, n.inboundAddress ?? '', n.upstreams ?? [], n.capture ?? '', n.inboundPort ?? 0, n.gateway ?? '', n.listenAddress ?? '', n.portMap ?? null, n.certDir ?? '']);
}

export interface TranslationReport {
  view: string;
  warnings: RouteWarning[];
  errors: SnapshotError[];
}

export class MeshSnapshotSource implements SnapshotSource {
  #state: MeshState | undefined;
  #revision = 0;
  #views = new Map<string, Snapshot>();
  /** The encoded shared part of each view family, once per state. */
  #shared = new Map<string, { snapshot?: Snapshot; errors: SnapshotError[] }>();
  /** Last good snapshot per view, kept when a new translation is rejected. */
  #lastGood = new Map<string, Snapshot>();
  #reports = new Map<string, TranslationReport>();
  /** Each view's own part as last encoded, by its translation's JSON: a state
   * change that leaves a proxy's own resources alone (most do: an endpoint
   * moved elsewhere) reuses the encoding. Dropped with the view's fallback. */
  #own = new Map<string, { json: string; snapshot: Snapshot }>();
  readonly #listeners = new Set<() => void>();
  readonly #log: (msg: string) => void;

  constructor(opts: { log?: (msg: string) => void } = {}) {
    this.#log = opts.log ?? (() => {});
  }

  setState(state: MeshState, revision: number): void {
    this.#state = state;
    this.#revision = revision;
    // Keep a fallback only for views asked for under the previous state (the
    // connected proxies ask again on every change), so workloads that come
    // and go under new names do not accumulate snapshots.
    for (const key of this.#lastGood.keys()) if (!this.#views.has(key)) this.#lastGood.delete(key);
    for (const key of this.#own.keys()) if (!this.#views.has(key)) this.#own.delete(key);
    this.#views = new Map();
    this.#shared = new Map();
    this.#reports = new Map();
    for (const l of this.#listeners) l();
  }

  revision(): number {
    return this.#revision;
  }

  snapshotFor(node: XdsNode): Snapshot | undefined {
    if (!this.#state) return undefined;
    const pn = proxyNodeOf(node);
    const key = viewKey(pn);
    const cached = this.#views.get(key);
    if (cached) return cached;
    const parts = translateParts(this.#state, pn);
    const label = String(this.#revision);
    let shared = this.#shared.get(parts.sharedKey);
    if (!shared) {
      const built = createSnapshot(parts.shared, label);
      shared = built.ok ? { snapshot: built.snapshot, errors: checkConsistency(built.snapshot) } : { errors: built.errors };
      this.#shared.set(parts.sharedKey, shared);
    }
    let errors: SnapshotError[] = [...shared.errors];
    let composed: Snapshot | undefined;
    if (shared.snapshot && errors.length === 0) {
      const json = JSON.stringify(parts.own);
      const prev = this.#own.get(key);
      const own: ReturnType<typeof createSnapshot> = prev?.json === json ? { ok: true, snapshot: prev.snapshot } : createSnapshot(parts.own, label);
      if (own.ok && prev?.json !== json) this.#own.set(key, { json, snapshot: own.snapshot });
      if (!own.ok) errors = own.errors;
      else {
        const c = composeSnapshots(shared.snapshot, own.snapshot, label);
        if (!c.ok) errors = c.errors;
        else {
          errors = checkConsistency(c.snapshot, own.snapshot);
          composed = c.snapshot;
        }
      }
    }
    let snap: Snapshot | undefined;
    if (composed && errors.length === 0) {
      snap = composed;
      this.#lastGood.set(key, snap);
    } else {
      this.#log(`translation for ${pn.kind} view of ${pn.namespace}/${pn.workload ?? pn.id} rejected: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
      snap = this.#lastGood.get(key);
    }
    const out = { warnings: parts.warnings };
    this.#reports.set(key, { view: key, warnings: out.warnings, errors });
    if (snap) this.#views.set(key, snap);
    return snap;
  }

  /** Warnings and rejections from the latest translations. */
  reports(): TranslationReport[] {
    return [...this.#reports.values()];
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
