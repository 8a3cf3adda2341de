// Tables that fit the terminal: columns declare alignment, a drop priority
// and whether they may shrink. When the natural width is too wide, flexible
// columns (names) are shortened with "…" down to their minimum, then the
// least important columns are dropped until the rest fits. Without a
// terminal (piped output) nothing is cut.

export interface Column<R> {
  readonly header: string;
  readonly value: (row: R) => string;
  readonly align?: 'left' | 'right';
  /** Higher is dropped later; columns with Infinity are never dropped. Default Infinity. */
  readonly priority?: number;
  /** May be shortened down to this many characters. */
  readonly minWidth?: number;
}

const GAP = 3;

export function truncate(s: string, width: number): string {
  if (s.length <= width) return s;
  if (width <= 1) return s.slice(0, width);
  return `${s.slice(0, width - 1)}…`;
}

/** Render rows under `columns`, fitting `maxWidth` (undefined: no limit). */
export function fitTable<R>(columns: readonly Column<R>[], rows: readonly R[], maxWidth?: number): string {
  let cols = columns.map((c) => {
    const cells = rows.map((r) => c.value(r));
    return { c, cells, width: Math.max(c.header.length, ...cells.map((s) => s.length)) };
  });
  const total = (): number => cols.reduce((n, x) => n + x.width, 0) + GAP * Math.max(0, cols.length - 1);
  if (maxWidth !== undefined && maxWidth > 0) {
    // 1. Shrink flexible columns, widest first.
    for (;;) {
      const over = total() - maxWidth;
      if (over <= 0) break;
      const flex = cols.filter((x) => x.c.minWidth !== undefined && x.width > Math.max(x.c.minWidth, x.c.header.length)).sort((a, b) => b.width - a.width)[0];
      if (!flex) break;
      flex.width = Math.max(flex.c.minWidth!, flex.c.header.length, flex.width - over);
    }
    // 2. Drop the least important columns.
    while (total() > maxWidth) {
      const droppable = cols.filter((x) => (x.c.priority ?? Infinity) !== Infinity);
      if (droppable.length === 0) break;
      const victim = droppable.reduce((a, b) => ((b.c.priority ?? Infinity) < (a.c.priority ?? Infinity) ? b : a));
      cols = cols.filter((x) => x !== victim);
    }
  }
  const line = (cells: string[]): string =>
    cells
      .map((s, i) => {
        const x = cols[i]!;
        const v = truncate(s, x.width);
        if (i === cells.length - 1 && x.c.align !== 'right') return v;
        return x.c.align === 'right' ? v.padStart(x.width) : v.padEnd(x.width);
      })
      .join(' '.repeat(GAP))
      .trimEnd();
  return [line(cols.map((x) => x.c.header)), ...rows.map((_, ri) => line(cols.map((x) => x.cells[ri]!)))].join('\n');
}

// ---- cell formats shared by the metrics commands ----

export function fmtPercent(v: number | null): string {
  return v === null ? '-' : `${(v * 100).toFixed(2)}%`;
}

export function fmtRps(v: number): string {
  return `${v < 10 ? v.toFixed(2) : v.toFixed(1)}rps`;
}

export function fmtMs(v: number | null): string {
  if (v === null) return '-';
  if (v < 1) return `${v.toFixed(2)}ms`;
  if (v < 10_000) return `${Math.round(v)}ms`;
  return `${(v / 1000).toFixed(1)}s`;
}
