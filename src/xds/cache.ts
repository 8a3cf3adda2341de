// Which snapshot each proxy gets. The control plane sets snapshots per node id
// (a proxy's own view) or per group (by default a node's `cluster`, i.e. the
// service it fronts), plus an optional default; the ADS server asks
// `snapshotFor(node)` and re-evaluates its streams whenever something changes.
// A snapshot is checked for consistency before it is accepted.
import type { Json } from './codec.ts';
import { checkConsistency } from './snapshot.ts';
import type { Snapshot, SnapshotError } from './snapshot.ts';

/** The xDS Node of a connected proxy, as sent on a stream's first request. */
export interface XdsNode {
  readonly id: string;
  readonly cluster: string;
  readonly locality: { readonly region: string; readonly zone: string; readonly subZone: string };
  readonly metadata: { readonly [key: string]: Json };
  readonly userAgentName: string;
  readonly userAgentVersion: string;
}

/** What the ADS server needs: a snapshot per node, and a change signal. */
export interface SnapshotSource {
  snapshotFor(node: XdsNode): Snapshot | undefined;
  /** Calls `listener` after any change; returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
}

export type SetSnapshotResult = { ok: true } | { ok: false; errors: SnapshotError[] };

export interface SetSnapshotOptions {
  /** Accept a snapshot whose references dangle (for tests of client-side rejection). */
  readonly skipConsistencyCheck?: boolean;
}

export interface SnapshotCacheOptions {
  /** The group a node belongs to; default: its `cluster`. */
  readonly groupOf?: (node: XdsNode) => string | undefined;
}

export class SnapshotCache implements SnapshotSource {
  readonly #byNode = new Map<string, Snapshot>();
  readonly #byGroup = new Map<string, Snapshot>();
  #default: Snapshot | undefined;
  readonly #listeners = new Set<() => void>();
  readonly #groupOf: (node: XdsNode) => string | undefined;

  constructor(opts: SnapshotCacheOptions = {}) {
    this.#groupOf = opts.groupOf ?? ((node) => (node.cluster === '' ? undefined : node.cluster));
  }

  setSnapshot(nodeId: string, snapshot: Snapshot, opts: SetSnapshotOptions = {}): SetSnapshotResult {
    return this.#set(opts, snapshot, () => this.#byNode.set(nodeId, snapshot));
  }

  setGroupSnapshot(group: string, snapshot: Snapshot, opts: SetSnapshotOptions = {}): SetSnapshotResult {
    return this.#set(opts, snapshot, () => this.#byGroup.set(group, snapshot));
  }

  /** The snapshot for nodes with neither their own nor a group snapshot. */
  setDefaultSnapshot(snapshot: Snapshot, opts: SetSnapshotOptions = {}): SetSnapshotResult {
    return this.#set(opts, snapshot, () => {
      this.#default = snapshot;
    });
  }

  clearSnapshot(nodeId: string): void {
    if (this.#byNode.delete(nodeId)) this.#notify();
  }

  clearGroupSnapshot(group: string): void {
    if (this.#byGroup.delete(group)) this.#notify();
  }

  snapshotFor(node: XdsNode): Snapshot | undefined {
    const own = this.#byNode.get(node.id);
    if (own !== undefined) return own;
    const group = this.#groupOf(node);
    if (group !== undefined) {
      const g = this.#byGroup.get(group);
      if (g !== undefined) return g;
    }
    return this.#default;
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #set(opts: SetSnapshotOptions, snapshot: Snapshot, apply: () => void): SetSnapshotResult {
    if (opts.skipConsistencyCheck !== true) {
      const errors = checkConsistency(snapshot);
      if (errors.length > 0) return { ok: false, errors };
    }
    apply();
    this.#notify();
    return { ok: true };
  }

  #notify(): void {
    for (const l of [...this.#listeners]) l();
  }
}
