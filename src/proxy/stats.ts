// A small Prometheus registry: counters, gauges and histograms with a fixed
// label set per metric, rendered in the text exposition format (0.0.4).
//
// Hot path rule: resolve a labelled child once (`metric.labels(...)`) and keep
// it; `child.inc()` / `child.observe()` are a few arithmetic operations with no
// string building. Cardinality is bounded: once a metric holds `maxSeries`
// children, further label combinations share one overflow child whose label
// values are all "__overflow__" (and the overflow is counted in
// `trellis_stats_overflow_total`), so a bad label source cannot grow memory.

export const OVERFLOW_LABEL = '__overflow__';
export const DEFAULT_MAX_SERIES = 2000;

/** Latency buckets in seconds: 0.5 ms .. 30 s. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

export interface CounterChild {
  inc(n?: number): void;
  get(): number;
}

export interface GaugeChild {
  set(v: number): void;
  inc(n?: number): void;
  dec(n?: number): void;
  get(): number;
}

export interface HistogramChild {
  observe(v: number): void;
  /** Snapshot (cumulative bucket counts, same order as the buckets). */
  get(): { buckets: number[]; sum: number; count: number };
}

type Kind = 'counter' | 'gauge' | 'histogram';

abstract class Metric<C> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  protected readonly children = new Map<string, { values: readonly string[]; child: C }>();
  private overflowChild: C | undefined;
  private readonly registry: Registry;
  abstract readonly kind: Kind;

  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[]) {
    this.registry = registry;
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  protected abstract create(): C;

  /** The child for these label values (in `labelNames` order). Resolve once
   * and keep it: this builds a key string. */
  labels(...values: string[]): C {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name}: expected ${this.labelNames.length} label values (${this.labelNames.join(', ')}), got ${values.length}`);
    }
    const key = values.join('\u0000');
    const hit = this.children.get(key);
    if (hit) return hit.child;
    if (this.children.size >= this.registry.maxSeries) {
      this.registry.noteOverflow(this.name);
      if (!this.overflowChild) {
        this.overflowChild = this.create();
        this.children.set('\u0001overflow', { values: this.labelNames.map(() => OVERFLOW_LABEL), child: this.overflowChild });
      }
      return this.overflowChild;
    }
    const child = this.create();
    this.children.set(key, { values: [...values], child });
    return child;
  }

  /** Forget one series (e.g. a listener that was removed from the config). */
  remove(...values: string[]): void {
    this.children.delete(values.join('\u0000'));
  }

  /** Forget every series whose label `name` has `value`. */
  removeWhere(name: string, value: string): void {
    const i = this.labelNames.indexOf(name);
    if (i < 0) return;
    for (const [k, e] of this.children) if (e.values[i] === value) this.children.delete(k);
  }

  seriesCount(): number {
    return this.children.size;
  }

  protected labelText(values: readonly string[], extra?: string): string {
    const parts: string[] = [];
    for (let i = 0; i < this.labelNames.length; i++) parts.push(`${this.labelNames[i]}="${escapeLabel(values[i]!)}"`);
    if (extra !== undefined) parts.push(extra);
    return parts.length === 0 ? '' : `{${parts.join(',')}}`;
  }

  abstract render(out: string[]): void;

  protected header(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.kind}`);
  }
}

class CounterImpl implements CounterChild {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
  get(): number {
    return this.value;
  }
}

class GaugeImpl implements GaugeChild {
  value = 0;
  set(v: number): void {
    this.value = v;
  }
  inc(n = 1): void {
    this.value += n;
  }
  dec(n = 1): void {
    this.value -= n;
  }
  get(): number {
    return this.value;
  }
}

class HistogramImpl implements HistogramChild {
  readonly bounds: readonly number[];
  /** Non-cumulative counts; the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]! += 1;
    this.sum += v;
    this.count++;
  }
  get(): { buckets: number[]; sum: number; count: number } {
    const buckets: number[] = [];
    let acc = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      acc += this.counts[i]!;
      buckets.push(acc);
    }
    return { buckets, sum: this.sum, count: this.count };
  }
}

export class Counter extends Metric<CounterChild> {
  readonly kind = 'counter' as const;
  protected create(): CounterChild {
    return new CounterImpl();
  }
  render(out: string[]): void {
    this.header(out);
    for (const { values, child } of this.children.values()) out.push(`${this.name}${this.labelText(values)} ${fmt(child.get())}`);
  }
}

export class Gauge extends Metric<GaugeChild> {
  readonly kind = 'gauge' as const;
  private collectors: Array<(g: Gauge) => void> = [];
  protected create(): GaugeChild {
    return new GaugeImpl();
  }
  /** Called before each exposition to refresh values that are cheaper to
   * read on demand (pool sizes, config version) than to track. Returns an
   * unregister function. */
  onCollect(fn: (g: Gauge) => void): () => void {
    this.collectors.push(fn);
    return () => {
      this.collectors = this.collectors.filter((f) => f !== fn);
    };
  }
  /** Drop every series (collectors that rebuild the whole set call this first). */
  reset(): void {
    this.children.clear();
  }
  render(out: string[]): void {
    for (const c of this.collectors) c(this);
    this.header(out);
    for (const { values, child } of this.children.values()) out.push(`${this.name}${this.labelText(values)} ${fmt(child.get())}`);
  }
}

export class Histogram extends Metric<HistogramChild> {
  readonly kind = 'histogram' as const;
  readonly buckets: readonly number[];
  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(registry, name, help, labelNames);
    if (labelNames.includes('le')) throw new Error(`${name}: "le" is reserved for histogram buckets`);
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]! > buckets[i - 1]!)) throw new Error(`${name}: buckets must be strictly increasing`);
    }
    this.buckets = [...buckets];
  }
  protected create(): HistogramChild {
    return new HistogramImpl(this.buckets);
  }
  render(out: string[]): void {
    this.header(out);
    for (const { values, child } of this.children.values()) {
      const snap = child.get();
      for (let i = 0; i < this.buckets.length; i++) {
        out.push(`${this.name}_bucket${this.labelText(values, `le="${fmt(this.buckets[i]!)}"`)} ${fmt(snap.buckets[i]!)}`);
      }
      out.push(`${this.name}_bucket${this.labelText(values, 'le="+Inf"')} ${fmt(snap.count)}`);
      out.push(`${this.name}_sum${this.labelText(values)} ${fmt(snap.sum)}`);
      out.push(`${this.name}_count${this.labelText(values)} ${fmt(snap.count)}`);
    }
  }
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export class Registry {
  readonly maxSeries: number;
  private readonly metrics = new Map<string, Counter | Gauge | Histogram>();
  private overflow: Counter | undefined;

  constructor(opts: { maxSeries?: number } = {}) {
    this.maxSeries = opts.maxSeries ?? DEFAULT_MAX_SERIES;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.register(name, labelNames, 'counter', () => new Counter(this, name, help, labelNames)) as Counter;
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.register(name, labelNames, 'gauge', () => new Gauge(this, name, help, labelNames)) as Gauge;
  }

  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets: readonly number[] = LATENCY_BUCKETS): Histogram {
    return this.register(name, labelNames, 'histogram', () => new Histogram(this, name, help, labelNames, buckets)) as Histogram;
  }

  get(name: string): Counter | Gauge | Histogram | undefined {
    return this.metrics.get(name);
  }

  /** @internal */
  noteOverflow(metric: string): void {
    if (metric === 'trellis_stats_overflow_total') return;
    this.overflow ??= this.counter('trellis_stats_overflow_total', 'Label combinations folded into the __overflow__ series because a metric reached its series limit.', ['metric']);
    this.overflow.labels(metric).inc();
  }

  /** The text exposition format (Content-Type: text/plain; version=0.0.4). */
  expose(): string {
    const out: string[] = [];
    for (const m of this.metrics.values()) m.render(out);
    out.push('');
    return out.join('\n');
  }

  private register(name: string, labelNames: readonly string[], kind: Kind, make: () => Counter | Gauge | Histogram): Counter | Gauge | Histogram {
    const existing = this.metrics.get(name);
    if (existing) {
      if (existing.kind !== kind || existing.labelNames.join() !== labelNames.join()) {
        throw new Error(`metric ${name} is already registered as a ${existing.kind} with labels (${existing.labelNames.join(', ')})`);
      }
      return existing;
    }
    if (!NAME_RE.test(name)) throw new Error(`metric name "${name}" is not a valid Prometheus name`);
    for (const l of labelNames) if (!LABEL_RE.test(l) || l.startsWith('__')) throw new Error(`metric ${name}: label name "${l}" is not valid`);
    const m = make();
    this.metrics.set(name, m);
    return m;
  }
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function escapeLabel(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

function escapeHelp(v: string): string {
  return v.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'));
}

function fmt(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}
