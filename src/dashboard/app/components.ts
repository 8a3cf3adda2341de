// Small shared components: sparklines and time charts (inline SVG), the
// sortable table, badges and the page frame.
import { h } from './h.ts';
import { type ComponentChildren, type VNode } from 'preact';
import { useState } from 'preact/hooks';

export function Sparkline(p: { values: readonly (number | null)[]; color?: string; width?: number; height?: number; label: string; max?: number }): VNode {
  const w = p.width ?? 110;
  const hgt = p.height ?? 22;
  const nums = p.values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (nums.length < 2) return h('svg', { class: 'spark', width: w, height: hgt, role: 'img', 'aria-label': `${p.label}: not enough data yet` });
  const max = p.max ?? Math.max(...nums);
  const min = p.max !== undefined ? 0 : Math.min(...nums, 0);
  const span = max - min || 1;
  const step = w / (p.values.length - 1);
  const pts: string[] = [];
  p.values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) return;
    pts.push(`${(i * step).toFixed(1)},${(hgt - 2 - ((v - min) / span) * (hgt - 4)).toFixed(1)}`);
  });
  return h('svg', { class: 'spark', width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, role: 'img', 'aria-label': `${p.label}, last ${nums.length} points` },
    h('polyline', { points: pts.join(' '), fill: 'none', stroke: p.color ?? 'currentColor', 'stroke-width': 1.5, 'stroke-linejoin': 'round' }));
}

export interface ChartSeries { label: string; color: string; points: readonly [number, number | null][] }

/** A labelled time chart with axes: `points` are [epoch ms, value]; `more`
 * adds lines on the same axes (with `more`, a legend names each line). */
export function TimeChart(p: { title: string; points: readonly [number, number | null][]; format: (v: number) => string; color?: string; floor?: number; ceiling?: number; label?: string; more?: readonly ChartSeries[] }): VNode {
  const w = 360;
  const hgt = 120;
  const pad = { l: 56, r: 8, t: 8, b: 20 };
  const series: ChartSeries[] = [{ label: p.label ?? p.title, color: p.color ?? '#3b82f6', points: p.points }, ...(p.more ?? [])];
  const all = series.flatMap((s) => s.points);
  const nums = all.map((x) => x[1]).filter((v): v is number => v !== null && Number.isFinite(v));
  const body: VNode[] = [];
  if (p.points.length >= 2 && nums.length >= 1) {
    const t0 = Math.min(...all.map((q) => q[0]));
    const t1 = Math.max(...all.map((q) => q[0]));
    let lo = p.floor ?? Math.min(...nums);
    let hi = p.ceiling ?? Math.max(...nums);
    // A flat line: a one-unit axis below a ceiling (a success rate steady at
    // 100% reads 0%..100%, not 100%..200%), else above the floor.
    if (hi === lo) {
      if (p.ceiling !== undefined && p.floor === undefined) lo = hi - 1;
      else hi = lo + 1;
    }
    const x = (t: number): number => pad.l + ((t - t0) / (t1 - t0 || 1)) * (w - pad.l - pad.r);
    const y = (v: number): number => pad.t + (1 - (v - lo) / (hi - lo)) * (hgt - pad.t - pad.b);
    body.push(
      h('line', { x1: pad.l, x2: w - pad.r, y1: y(hi), y2: y(hi), class: 'grid' }),
      h('line', { x1: pad.l, x2: w - pad.r, y1: y(lo), y2: y(lo), class: 'grid' }),
      h('text', { x: pad.l - 4, y: y(hi) + 4, class: 'axis', 'text-anchor': 'end' }, p.format(hi)),
      h('text', { x: pad.l - 4, y: y(lo) + 4, class: 'axis', 'text-anchor': 'end' }, p.format(lo)),
      h('text', { x: pad.l, y: hgt - 4, class: 'axis' }, new Date(t0).toLocaleTimeString()),
      h('text', { x: w - pad.r, y: hgt - 4, class: 'axis', 'text-anchor': 'end' }, new Date(t1).toLocaleTimeString()),
      ...series.map((s) => h('polyline', { key: s.label, 'data-series': s.label, points: s.points.filter((q) => q[1] !== null).map((q) => `${x(q[0]).toFixed(1)},${y(q[1]!).toFixed(1)}`).join(' '), fill: 'none', stroke: s.color, 'stroke-width': 2 })),
    );
  } else body.push(h('text', { x: w / 2, y: hgt / 2, class: 'axis', 'text-anchor': 'middle' }, 'collecting data…'));
  const last = (s: ChartSeries): number | null => [...s.points].reverse().find((q) => q[1] !== null)?.[1] ?? null;
  return h('figure', { class: 'chart' }, h('figcaption', null, p.title),
    h('svg', { width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, role: 'img', 'aria-label': p.title }, body),
    p.more !== undefined ? h('ul', { class: 'split-legend' }, series.map((s) => {
      const v = last(s);
      return h('li', { key: s.label, 'data-series': s.label }, h('span', { class: 'swatch', style: { background: s.color } }), `${s.label} ${v === null ? '–' : p.format(v)}`);
    })) : null);
}

export interface Column<T> {
  key: string;
  label: string;
  /** Sort key; omit for an unsortable column. */
  sort?: (row: T) => number | string | null;
  render: (row: T) => ComponentChildren;
  numeric?: boolean;
}

export function SortTable<T>(p: { columns: Column<T>[]; rows: readonly T[]; rowKey: (r: T) => string; rowClass?: (r: T) => string; initial?: { key: string; desc: boolean }; label: string; empty?: string }): VNode {
  const [order, setOrder] = useState(p.initial ?? { key: p.columns[0]?.key ?? '', desc: false });
  const col = p.columns.find((c) => c.key === order.key);
  const rows = [...p.rows];
  if (col?.sort) {
    const s = col.sort;
    rows.sort((a, b) => {
      const x = s(a);
      const y = s(b);
      if (x === y) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      const c = x < y ? -1 : 1;
      return order.desc ? -c : c;
    });
  }
  return h('table', { class: 'table', 'aria-label': p.label },
    h('thead', null, h('tr', null, p.columns.map((c) => h('th', {
      key: c.key,
      scope: 'col',
      class: c.numeric ? 'num' : '',
      'aria-sort': c.key === order.key ? (order.desc ? 'descending' : 'ascending') : 'none',
    }, c.sort
      ? h('button', { type: 'button', class: 'sort', onClick: () => setOrder({ key: c.key, desc: c.key === order.key ? !order.desc : c.numeric === true }) },
        c.label, h('span', { 'aria-hidden': 'true', class: 'arrow' }, c.key === order.key ? (order.desc ? ' ▾' : ' ▴') : ''))
      : c.label)))),
    h('tbody', null, rows.length === 0
      ? h('tr', null, h('td', { colSpan: p.columns.length, class: 'empty' }, p.empty ?? 'nothing yet'))
      : rows.map((r) => h('tr', { key: p.rowKey(r), class: p.rowClass?.(r) ?? '' }, p.columns.map((c) => h('td', { key: c.key, class: c.numeric ? 'num' : '' }, c.render(r)))))));
}

export function Badge(p: { tone: 'good' | 'warn' | 'bad' | 'idle' | 'info'; children: ComponentChildren; title?: string }): VNode {
  return h('span', { class: `badge ${p.tone}`, title: p.title }, p.children);
}

export function Page(p: { title: string; actions?: ComponentChildren; children: ComponentChildren }): VNode {
  return h('section', { class: 'page', 'aria-labelledby': 'page-title' },
    h('header', { class: 'page-head' }, h('h1', { id: 'page-title', tabIndex: -1 }, p.title), p.actions ? h('div', { class: 'actions' }, p.actions) : null),
    p.children);
}

export function Live(p: { connected: boolean; what: string }): VNode {
  return h('span', { class: `live ${p.connected ? 'on' : 'off'}`, role: 'status' }, p.connected ? `live: ${p.what}` : `reconnecting: ${p.what}`);
}
