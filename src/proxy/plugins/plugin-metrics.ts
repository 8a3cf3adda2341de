// Plugin metrics on the proxy's registry (/stats/prometheus):
//   trellis_plugin_errors_total{plugin,reason}   throw | timeout | crash | unavailable | body_too_large
//   trellis_plugin_cpu_seconds_total{plugin}     CPU time of the plugin's thread
//   trellis_plugin_restarts_total{plugin}        workers started again after a crash or a stuck loop
// and the plugins' own metrics as trellis_plugin_<name>{plugin="..."}. A
// name one plugin defined as a counter cannot be another's gauge: that
// update is dropped and logged once.
import type { Counter, Gauge, Histogram, Registry } from '../stats.ts';
import type { Op } from './ts-protocol.ts';

export class PluginMetrics {
  private readonly registry: Registry;
  private readonly log: (event: string, fields?: Record<string, unknown>) => void;
  private readonly errors: Counter;
  private readonly cpuSeconds: Counter;
  private readonly restartCount: Counter;
  private readonly own = new Map<string, { kind: 'counter' | 'gauge' | 'histogram'; metric: Counter | Gauge | Histogram }>();
  private readonly warned = new Set<string>();

  constructor(registry: Registry, log: (event: string, fields?: Record<string, unknown>) => void) {
    this.registry = registry;
    this.log = log;
    this.errors = registry.counter('trellis_plugin_errors_total', 'Plugin hook calls that failed, by reason (the failure policy decided the request).', ['plugin', 'reason']);
    this.cpuSeconds = registry.counter('trellis_plugin_cpu_seconds_total', 'CPU time spent in the plugin (its thread), seconds.', ['plugin']);
    this.restartCount = registry.counter('trellis_plugin_restarts_total', 'Times the plugin was started again after a crash or a stuck hook.', ['plugin']);
  }

  error(plugin: string, reason: string): void {
    this.errors.labels(plugin, reason).inc();
  }

  cpu(plugin: string, seconds: number): void {
    this.cpuSeconds.labels(plugin).inc(seconds);
  }

  restarts(plugin: string): void {
    this.restartCount.labels(plugin).inc();
  }

  /** A metric definition or update the plugin made. */
  apply(plugin: string, o: Exclude<Op, { op: 'log' }>): void {
    const full = `trellis_plugin_${o.name}`;
    if (o.op === 'def') {
      const have = this.own.get(full);
      if (have) {
        if (have.kind !== o.kind) this.warnOnce(plugin, full, `already a ${have.kind}`);
        return;
      }
      if (this.registry.get(full)) {
        this.warnOnce(plugin, full, 'the name is taken by a proxy metric');
        return;
      }
      const metric = o.kind === 'counter'
        ? this.registry.counter(full, o.help, ['plugin'])
        : o.kind === 'gauge'
          ? this.registry.gauge(full, o.help, ['plugin'])
          : this.registry.histogram(full, o.help, ['plugin'], sortedBuckets(o.buckets));
      this.own.set(full, { kind: o.kind, metric });
      return;
    }
    const m = this.own.get(full);
    if (!m) return;
    if (m.kind === 'counter' && o.how === 'inc' && o.v >= 0) (m.metric as Counter).labels(plugin).inc(o.v);
    else if (m.kind === 'gauge') {
      const g = (m.metric as Gauge).labels(plugin);
      if (o.how === 'set') g.set(o.v);
      else if (o.how === 'inc') g.inc(o.v);
      else if (o.how === 'dec') g.dec(o.v);
    } else if (m.kind === 'histogram' && o.how === 'observe') (m.metric as Histogram).labels(plugin).observe(o.v);
  }

  private warnOnce(plugin: string, name: string, why: string): void {
    const k = `${plugin}\u0000${name}`;
    if (this.warned.has(k)) return;
    this.warned.add(k);
    this.log('plugin_metric_rejected', { plugin, metric: name, reason: why });
  }
}

function sortedBuckets(b: readonly number[] | undefined): number[] | undefined {
  if (!b) return undefined;
  const out = [...new Set(b.filter((x) => Number.isFinite(x)))].sort((x, y) => x - y);
  return out.length > 0 ? out : undefined;
}
