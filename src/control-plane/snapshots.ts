// The control plane's snapshot source for the ADS server: the current
// MeshState translated for each connected proxy. Snapshots are computed on
// demand and cached per "view" (nodes that would get identical resources
// share one snapshot), so a change costs one translation per distinct view,
// not one per proxy. A translation that fails the snapshot checks is logged
// and the node keeps its last good snapshot.
import { createHash } from 'node:crypto';
import type { SnapshotSource, XdsNode } from '../xds/cache.ts';
import { createSnapshot, checkConsistency, composeSnapshots, type Snapshot, type SnapshotError } from '../xds/snapshot.ts';
import type { Json } from '../xds/codec.ts';
import type { MeshState, NodeKind, ProxyNode } from './translate/model.ts';
import { translateParts } from './translate/translate.ts';
import { gatewayNodeFields } from './translate/gateway.ts';
import { grpcClientKind } from './translate/proxyless.ts';
import type { RouteWarning } from './translate/http-routes.ts';

const MAX_NODE_VIEWS = 100_000;

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
  if (kind === 'proxyless') out.client = grpcClientKind(node.userAgentName);
  const workload = str(t.workload);
  if (workload) out.workload = workload;
  const ob = t.outbound as { address?: Json; port?: Json } | undefined;
  if (ob && typeof ob.port === 'number') out.outbound = { address: str(ob.address) ?? '127.0.0.1', port: ob.port };
  if (t.capture === 'transparent') out.capture = 'transparent';
  if (t.onDemand === true) out.onDemand = true;
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
  return JSON.stringify([n.kind, n.client ?? '', n.namespace, n.workload ?? '', n.outbound ?? null, n.inboundAddress ?? '', n.upstreams ?? [], n.capture ?? '', n.inboundPort ?? 0, n.gateway ?? '', n.listenAddress ?? '', n.portMap ?? null, n.certDir ?? '', n.onDemand === true]);
}

export interface TranslationReport {
  view: string;
  warnings: RouteWarning[];
  errors: SnapshotError[];
}

/** A digest of everything in `state` but the workloads' addresses. Two
 * states with the same key differ at most in where workloads are, which
 * only the shared part reads (EDS, an egress gateway's static members): so
 * each proxy's own part, and every warning, is the same under both
 * (snapshots.test.ts holds translate to that). */
export function ownInputsKey(state: MeshState): string {
  const { workloads, vips, connectedSidecars, ...rest } = state;
  const h = createHash('sha1');
  h.update(JSON.stringify(rest, (_k, v: unknown) => {
    if (v instanceof Map || v instanceof Set) throw new Error('ownInputsKey: a MeshState field holds a Map or Set: add it here by hand');
    return v;
  }));
  h.update(JSON.stringify(workloads.map((w) => ({ ...w, address: '' }))));
  h.update(JSON.stringify([...vips]));
  h.update(JSON.stringify(connectedSidecars === undefined ? null : [...connectedSidecars].sort()));
  return h.digest('base64');
}

/** The names in a snapshot, per type, as a digest (cached): a proxy's own
 * part checked against one shared part needs no new check against another
 * with the same names. */
const namesDigests = new WeakMap<Snapshot, string>();
function namesDigest(snapshot: Snapshot): string {
  let d = namesDigests.get(snapshot);
  if (d === undefined) {
    const h = createHash('sha1');
    for (const [typeUrl, t] of snapshot.types) h.update(`${typeUrl}\u0000${[...t.resources.keys()].join('\u0000')}\n`);
    d = h.digest('base64');
    namesDigests.set(snapshot, d);
  }
  return d;
}

/** A view's own part as last translated. */
interface OwnPart {
  /** The translation's JSON (a new translation with the same JSON reuses `snapshot`). */
  readonly json: string;
  readonly snapshot: Snapshot;
  /** ownInputsKey of the state it was translated from. */
  readonly inputs: string;
  readonly sharedKey: string;
  readonly warnings: RouteWarning[];
  /** namesDigest of the shared part it was last found consistent with. */
  checkedNames: string;
}

export class MeshSnapshotSource implements SnapshotSource {
  #state: MeshState | undefined;
  #revision = 0;
  /** ownInputsKey(#state), computed on first use. */
  #inputs: string | undefined;
  #views = new Map<string, Snapshot>();
  /** The encoded shared part of each view family, once per state. */
  #shared = new Map<string, { snapshot?: Snapshot; errors: SnapshotError[] }>();
  /** Last good snapshot per view, kept when a new translation is rejected. */
  #lastGood = new Map<string, Snapshot>();
  #reports = new Map<string, TranslationReport>();
  /** nodeId -> the view key it was last translated for (bounded: oldest dropped past MAX_NODE_VIEWS). */
  #nodeViews = new Map<string, string>();
  /** Each view's own part. A state that moved only endpoints (the common
   * change) reuses it untranslated; one whose translation gives the same
   * JSON reuses its encoding. Dropped with the view's fallback. */
  #own = new Map<string, OwnPart>();
  readonly #listeners = new Set<() => void>();
  readonly #log: (msg: string) => void;

  constructor(opts: { log?: (msg: string) => void } = {}) {
    this.#log = opts.log ?? (() => {});
  }

  setState(state: MeshState, revision: number): void {
    this.#state = state;
    this.#revision = revision;
    this.#inputs = undefined;
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
    const state = this.#state;
    if (!state) return undefined;
    const pn = proxyNodeOf(node);
    const key = viewKey(pn);
    this.#nodeViews.delete(node.id);
    this.#nodeViews.set(node.id, key);
    if (this.#nodeViews.size > MAX_NODE_VIEWS) this.#nodeViews.delete(this.#nodeViews.keys().next().value!);
    const cached = this.#views.get(key);
    if (cached) return cached;
    const label = String(this.#revision);
    const inputs = (this.#inputs ??= ownInputsKey(state));
    let own = this.#own.get(key);
    let shared = own?.inputs === inputs ? this.#shared.get(own.sharedKey) : undefined;
    let errors: SnapshotError[] = [];
    let warnings: RouteWarning[];
    if (own !== undefined && shared !== undefined) {
      // Only endpoints moved since this view's own part was translated.
      warnings = own.warnings;
    } else {
      const parts = translateParts(state, pn);
      warnings = parts.warnings;
      shared = this.#sharedPart(parts.sharedKey, parts.shared, label);
      const json = JSON.stringify(parts.own);
      if (own?.json !== json) {
        const built = createSnapshot(parts.own, label);
        if (built.ok) own = { json, snapshot: built.snapshot, inputs, sharedKey: parts.sharedKey, warnings, checkedNames: '' };
        else {
          errors = built.errors;
          own = undefined;
        }
      } else own = { ...own, inputs, sharedKey: parts.sharedKey, warnings };
      if (own) this.#own.set(key, own);
      else this.#own.delete(key);
    }
    errors = [...shared.errors, ...errors];
    let composed: Snapshot | undefined;
    if (shared.snapshot && own && errors.length === 0) {
      const c = composeSnapshots(shared.snapshot, own.snapshot, label);
      if (!c.ok) errors = c.errors;
      else {
        const names = namesDigest(shared.snapshot);
        if (own.checkedNames !== names) {
          errors = checkConsistency(c.snapshot, own.snapshot);
          if (errors.length === 0) own.checkedNames = names;
        }
        composed = c.snapshot;
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
    this.#reports.set(key, { view: key, warnings, errors });
    if (snap) this.#views.set(key, snap);
    return snap;
  }

  /** The shared part for `sharedKey` in this state, encoded and checked once. */
  #sharedPart(sharedKey: string, resources: Parameters<typeof createSnapshot>[0], label: string): { snapshot?: Snapshot; errors: SnapshotError[] } {
    let shared = this.#shared.get(sharedKey);
    if (!shared) {
      const built = createSnapshot(resources, label);
      shared = built.ok ? { snapshot: built.snapshot, errors: checkConsistency(built.snapshot) } : { errors: built.errors };
      this.#shared.set(sharedKey, shared);
    }
    return shared;
  }

  /** Warnings and rejections from the latest translations. */
  reports(): TranslationReport[] {
    return [...this.#reports.values()];
  }

  /** The warnings of the view `nodeId` was last translated for (proxy-status). */
  warningsForNode(nodeId: string): RouteWarning[] {
    const view = this.#nodeViews.get(nodeId);
    return view === undefined ? [] : (this.#reports.get(view)?.warnings ?? []);
  }

  /** Distinct warnings about `owner` ("HTTPRoute ns/name", ...) across the latest translations (route status). */
  warningsAbout(owner: string): string[] {
    const out = new Set<string>();
    for (const r of this.#reports.values()) for (const w of r.warnings) if (w.route === owner) out.add(w.message);
    return [...out].sort();
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
