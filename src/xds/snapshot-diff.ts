// Differences between two versions of a type's resources. The resource maps
// are shared by every proxy that gets the same snapshot, so the diff of a
// pair is computed once (weakly cached, dropped with the snapshots) and each
// stream intersects it with its subscription: O(changed), not O(subscribed),
// per stream. Used by state-of-the-world RDS/EDS and by every delta stream.
import type { SnapshotResource, SnapshotTypeResources } from './snapshot.ts';

const changed = new WeakMap<SnapshotTypeResources, WeakMap<SnapshotTypeResources, SnapshotResource[]>>();
const removed = new WeakMap<SnapshotTypeResources, WeakMap<SnapshotTypeResources, string[]>>();

/** Resources of `next` that are new or changed against `prev`. */
export function changedSince(next: SnapshotTypeResources, prev: SnapshotTypeResources): SnapshotResource[] {
  let byNext = changed.get(prev);
  if (byNext === undefined) changed.set(prev, (byNext = new WeakMap()));
  let d = byNext.get(next);
  if (d === undefined) {
    d = [];
    for (const [name, r] of next.resources) if (prev.resources.get(name)?.hash !== r.hash) d.push(r);
    byNext.set(next, d);
  }
  return d;
}

/** Names in `prev` that `next` no longer has. */
export function removedSince(next: SnapshotTypeResources, prev: SnapshotTypeResources): string[] {
  let byNext = removed.get(prev);
  if (byNext === undefined) removed.set(prev, (byNext = new WeakMap()));
  let d = byNext.get(next);
  if (d === undefined) {
    d = [];
    for (const name of prev.resources.keys()) if (!next.resources.has(name)) d.push(name);
    byNext.set(next, d);
  }
  return d;
}
