// The one string hash of the balancers: MurmurHash3 x86_32 over UTF-8, and
// a 53-bit hash from two seeds (exact in a double, so ring positions sort and
// compare as plain numbers with no BigInt on the request path). Stable across
// processes and versions: every proxy maps a key to the same ring point.

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const encoder = new TextEncoder();
let scratch = new Uint8Array(256);

export function murmur3(bytes: Uint8Array, len: number, seed: number): number {
  let h = seed >>> 0;
  const blocks = len & ~3;
  let i = 0;
  for (; i < blocks; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const rem = len & 3;
  if (rem > 0) {
    let k = 0;
    if (rem === 3) k ^= bytes[i + 2]! << 16;
    if (rem >= 2) k ^= bytes[i + 1]! << 8;
    k ^= bytes[i]!;
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function utf8(s: string): number {
  if (scratch.length < s.length * 3) scratch = new Uint8Array(s.length * 3);
  return encoder.encodeInto(s, scratch).written;
}

export function murmur3String(s: string, seed = 0): number {
  const len = utf8(s);
  return murmur3(scratch, len, seed);
}

const SEED_HI = 0;
const SEED_LO = 0x9747b28c;

/** 53-bit hash of a string: an integer in [0, 2^53). */
export function hash53(s: string): number {
  const len = utf8(s);
  const hi = murmur3(scratch, len, SEED_HI) & 0x1fffff;
  const lo = murmur3(scratch, len, SEED_LO);
  return hi * 4294967296 + lo;
}

/** A hash mapped to [0, 1): a deterministic stand-in for random(). */
export function hashUnit(s: string): number {
  return hash53(s) / 9007199254740992;
}

/** A 32-bit-resolution unit value under its own seed, uncorrelated with
 * hash53 of the same key (tier choice must not bias ring positions). */
export function hashUnitSeeded(s: string, seed: number): number {
  return murmur3String(s, seed) / 4294967296;
}
