// A DiscoveryRequest's resource_names as the server keeps them. A sidecar
// subscribes to every EDS cluster of the mesh and repeats the whole list in
// each ACK, and thousands of sidecars subscribe to the same list, so:
// - a list is interned by its wire bytes: streams with the same subscription
//   share one array, one Set and one sorted copy instead of a thousand
//   strings each;
// - an ACK is recognised by comparing its names' bytes with the stream's
//   current list (a memcmp), without decoding a name or hashing anything
//   (ads-method.ts decodeRequest).
// Entries are held weakly: a list no stream uses any more is collected.
import { createHash } from 'node:crypto';

export interface NameList {
  /** The resource_names fields (tags included) exactly as they were on the
   * wire, contiguous; null when the request interleaved them with other
   * fields (legal, never seen in practice), so it cannot be matched by bytes. */
  readonly bytes: Buffer | null;
  readonly list: readonly string[];
  readonly set: ReadonlySet<string>;
  /** Has the "*" name (an explicit wildcard). */
  readonly wildcard: boolean;
  /** The names sorted (computed on first use). */
  sorted(): readonly string[];
}

class Names implements NameList {
  readonly bytes: Buffer | null;
  readonly list: readonly string[];
  readonly set: ReadonlySet<string>;
  readonly wildcard: boolean;
  #sorted: readonly string[] | undefined;
  constructor(bytes: Buffer | null, list: readonly string[]) {
    this.bytes = bytes;
    this.list = list;
    this.set = new Set(list);
    this.wildcard = this.set.has('*');
  }
  sorted(): readonly string[] {
    return (this.#sorted ??= [...this.set].sort());
  }
}

export const NO_NAMES: NameList = new Names(Buffer.alloc(0), []);

const interned = new Map<string, WeakRef<NameList>>();
const collected = new FinalizationRegistry<string>((key) => {
  if (interned.get(key)?.deref() === undefined) interned.delete(key);
});

/** The shared NameList for these wire bytes (copied when kept) and their
 * decoded names; `bytes` null for interleaved names (not interned). */
export function internNames(bytes: Buffer | null, list: readonly string[]): NameList {
  if (list.length === 0) return NO_NAMES;
  if (bytes === null) return new Names(null, list);
  const key = createHash('sha1').update(bytes).digest('base64');
  const hit = interned.get(key)?.deref();
  if (hit !== undefined && hit.bytes !== null && hit.bytes.equals(bytes)) return hit;
  const made = new Names(Buffer.from(bytes), list);
  interned.set(key, new WeakRef(made));
  collected.register(made, key);
  return made;
}
