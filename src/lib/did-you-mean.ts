// "Did you mean": the known name closest to a misspelt one, shared by every
// strict reader (resource schemas, proxy config, the xDS codec).

/** Names whose length differs from the key's by more than this are never suggested. */
const MAX_LENGTH_DIFF = 4;

/** The default edit budget for a key: 2, or a quarter of its length if longer. */
export function typoLimit(key: string): number {
  return Math.max(2, Math.floor(key.length / 4));
}

/** The name in `names` closest to `key` (case-insensitive edit distance),
 * if at most `limit` edits away; the first of equally close names wins. */
export function closestName(key: string, names: Iterable<string>, limit: number): string | undefined {
  const k = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const n of names) {
    const d = editDistance(k, n.toLowerCase());
    if (d < bestDistance) {
      best = n;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > MAX_LENGTH_DIFF) return Number.POSITIVE_INFINITY;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
