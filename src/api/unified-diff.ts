// A line-based unified diff (LCS), enough for showing what `apply --dry-run`
// would change in a resource's YAML. Inputs are small (one resource), so the
// O(n*m) table is fine; it is bounded to keep a huge input from hurting.
const MAX_CELLS = 4_000_000;

export function unifiedDiff(oldText: string, newText: string, opts: { oldName?: string; newName?: string; context?: number } = {}): string {
  if (oldText === newText) return '';
  const a = oldText === '' ? [] : oldText.replace(/\n$/, '').split('\n');
  const b = newText === '' ? [] : newText.replace(/\n$/, '').split('\n');
  const ctx = opts.context ?? 3;
  const ops = (a.length + 1) * (b.length + 1) > MAX_CELLS ? wholesale(a, b) : lcsOps(a, b);
  const out = [`--- ${opts.oldName ?? 'current'}`, `+++ ${opts.newName ?? 'applied'}`];
  // Group ops into hunks with `ctx` lines of context.
  let i = 0;
  while (i < ops.length) {
    while (i < ops.length && ops[i]?.t === ' ') i++;
    if (i >= ops.length) break;
    let start = Math.max(0, i - ctx);
    let end = i;
    let lastChange = i;
    while (end < ops.length) {
      if (ops[end]?.t !== ' ') lastChange = end;
      else if (end - lastChange > 2 * ctx) break;
      end++;
    }
    end = Math.min(ops.length, lastChange + ctx + 1);
    const hunk = ops.slice(start, end);
    const first = ops[start];
    const oldStart = (first?.ai ?? 0) + 1;
    const newStart = (first?.bi ?? 0) + 1;
    const oldLen = hunk.filter((o) => o.t !== '+').length;
    const newLen = hunk.filter((o) => o.t !== '-').length;
    out.push(`@@ -${oldLen === 0 ? oldStart - 1 : oldStart},${oldLen} +${newLen === 0 ? newStart - 1 : newStart},${newLen} @@`);
    for (const o of hunk) out.push(`${o.t}${o.line}`);
    i = end;
    start = end;
  }
  return `${out.join('\n')}\n`;
}

interface Op {
  t: ' ' | '-' | '+';
  line: string;
  /** Index in a (old) and b (new) at this point. */
  ai: number;
  bi: number;
}

function lcsOps(a: string[], b: string[]): Op[] {
  const n = a.length;
  const m = b.length;
  const w = m + 1;
  const table = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      table[i * w + j] = a[i] === b[j] ? (table[(i + 1) * w + j + 1] ?? 0) + 1 : Math.max(table[(i + 1) * w + j] ?? 0, table[i * w + j + 1] ?? 0);
    }
  }
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ t: ' ', line: a[i] ?? '', ai: i, bi: j });
      i++;
      j++;
    } else if (i < n && (j >= m || (table[(i + 1) * w + j] ?? 0) >= (table[i * w + j + 1] ?? 0))) {
      ops.push({ t: '-', line: a[i] ?? '', ai: i, bi: j });
      i++;
    } else {
      ops.push({ t: '+', line: b[j] ?? '', ai: i, bi: j });
      j++;
    }
  }
  return ops;
}

function wholesale(a: string[], b: string[]): Op[] {
  return [...a.map((line, i): Op => ({ t: '-', line, ai: i, bi: 0 })), ...b.map((line, j): Op => ({ t: '+', line, ai: a.length, bi: j }))];
}
