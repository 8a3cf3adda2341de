// Scrape history of every proxy: per target, a ring of snapshots of the
// counters the golden metrics need (request counts, duration buckets, TCP
// counters). A snapshot is a Float64Array indexed by the target's series
// index (NaN: absent in that scrape), so 15 minutes of 5-second scrapes cost
// 180 small arrays per target, not 180 maps.
//
// Counter increase over a window sums the positive steps between consecutive
// snapshots; a value that went down is a restart (the new value is the
// increase), and a series that appears between two scrapes of a target
// started from zero (so the first requests of a new label tuple count).
import type { Sample } from './prom-text.ts';

export interface SeriesMeta {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

interface Snapshot {
  readonly t: number;
  readonly values: Float64Array;
}

export class TargetHistory {
  readonly target: string;
  private readonly index = new Map<string, number>();
  private readonly metas: SeriesMeta[] = [];
  private readonly ring: (Snapshot | undefined)[];
  private head = 0;
  private size = 0;
  /** Series beyond this many are ignored (and counted). */
  private readonly maxSeries: number;
  ignored = 0;

  constructor(target: string, capacity: number, maxSeries = 20_000) {
    this.target = target;
    this.ring = new Array<Snapshot | undefined>(capacity);
    this.maxSeries = maxSeries;
  }

  add(t: number, samples: readonly Sample[]): void {
    const ids: number[] = [];
    const vals: number[] = [];
    for (const s of samples) {
      const key = seriesKey(s.name, s.labels);
      let id = this.index.get(key);
      if (id === undefined) {
        if (this.metas.length >= this.maxSeries) {
          this.ignored++;
          continue;
        }
        id = this.metas.length;
        this.index.set(key, id);
        this.metas.push({ name: s.name, labels: s.labels });
      }
      ids.push(id);
      vals.push(s.value);
    }
    const values = new Float64Array(this.metas.length).fill(NaN);
    for (let i = 0; i < ids.length; i++) values[ids[i]!] = vals[i]!;
    this.ring[this.head] = { t, values };
    this.head = (this.head + 1) % this.ring.length;
    if (this.size < this.ring.length) this.size++;
  }

  latestTime(): number | undefined {
    return this.size === 0 ? undefined : this.at(this.size - 1).t;
  }

  /** Snapshot i in time order (0 = oldest kept). */
  private at(i: number): Snapshot {
    return this.ring[(this.head - this.size + i + this.ring.length * 2) % this.ring.length]!;
  }

  /** Each series' increase over (now - windowMs, now]. The baseline is the
   * newest snapshot at or before the window start, else the oldest kept.
   * Returns the milliseconds the increases cover (baseline to newest
   * snapshot): about the window once the history is that long, less while
   * it is younger, 0 with fewer than two snapshots. */
  increases(now: number, windowMs: number, visit: (meta: SeriesMeta, increase: number) => void): number {
    if (this.size < 1) return 0;
    const from = now - windowMs;
    let start = 0;
    for (let i = this.size - 1; i >= 0; i--) {
      if (this.at(i).t <= from) {
        start = i;
        break;
      }
    }
    const n = this.metas.length;
    const inc = new Float64Array(n);
    const seen = new Uint8Array(n);
    // With one snapshot only there is nothing to difference against.
    for (let i = start; i + 1 < this.size; i++) {
      const a = this.at(i).values;
      const b = this.at(i + 1).values;
      for (let j = 0; j < b.length; j++) {
        const cur = b[j]!;
        if (Number.isNaN(cur)) continue;
        seen[j] = 1;
        const prev = j < a.length && !Number.isNaN(a[j]!) ? a[j]! : 0;
        inc[j]! += cur >= prev ? cur - prev : cur;
      }
    }
    for (let j = 0; j < n; j++) if (seen[j]) visit(this.metas[j]!, inc[j]!);
    return this.at(this.size - 1).t - this.at(start).t;
  }

  /** The latest value of every series. */
  latest(visit: (meta: SeriesMeta, value: number) => void): void {
    if (this.size === 0) return;
    const v = this.at(this.size - 1).values;
    for (let j = 0; j < v.length; j++) if (!Number.isNaN(v[j]!)) visit(this.metas[j]!, v[j]!);
  }
}

export function seriesKey(name: string, labels: Readonly<Record<string, string>>): string {
  let k = name;
  for (const l of Object.keys(labels).sort()) k += `\u0000${l}\u0001${labels[l]}`;
  return k;
}
