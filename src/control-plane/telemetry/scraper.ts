// The control plane's scraper: every `intervalMs` (default 5 s) it fetches
// `/stats/prometheus` from each proxy's admin address and records the
// standard request metrics in the embedded aggregator. Targets come from a
// provider function; the control plane builds it from the proxies connected
// over xDS, whose node metadata carries `trellis.admin: "host:port"`
// (docs/telemetry.md). Scrapes of one round run concurrently, each with a
// timeout; a failing target is reported in `status()` and skipped.
import { parsePrometheusText } from './prom-text.ts';
import { EmbeddedAggregator, KEPT_METRICS } from './embedded-source.ts';

export const DEFAULT_SCRAPE_INTERVAL_MS = 5_000;

export interface ScrapeTarget {
  /** `host:port` of the proxy's admin listener. */
  readonly address: string;
}

export interface ScraperOptions {
  readonly targets: () => readonly ScrapeTarget[] | Promise<readonly ScrapeTarget[]>;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  readonly now?: () => number;
}

export interface TargetStatus {
  readonly address: string;
  readonly ok: boolean;
  readonly lastScrape: number | null;
  readonly error?: string;
}

export type ScrapeListener = (round: { at: number; ok: number; failed: number }) => void;

export class Scraper {
  readonly aggregator: EmbeddedAggregator;
  private readonly o: ScraperOptions;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly statuses = new Map<string, TargetStatus>();
  private readonly listeners = new Set<ScrapeListener>();
  private stopped = false;

  constructor(o: ScraperOptions) {
    this.o = o;
    this.intervalMs = o.intervalMs ?? DEFAULT_SCRAPE_INTERVAL_MS;
    if (!(this.intervalMs >= 100)) throw new Error('scraper.intervalMs: must be at least 100');
    this.now = o.now ?? Date.now;
    this.aggregator = new EmbeddedAggregator({ scrapeIntervalMs: this.intervalMs, now: this.now });
  }

  start(): void {
    if (this.timer || this.stopped) return;
    const tick = (): void => {
      this.running = this.scrapeOnce().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.intervalMs);
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Called after every round (the API's live stream hangs off this). */
  onRound(fn: ScrapeListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  status(): TargetStatus[] {
    return [...this.statuses.values()];
  }

  /** One round over every target. */
  async scrapeOnce(): Promise<void> {
    let targets: readonly ScrapeTarget[];
    try {
      targets = await this.o.targets();
    } catch {
      targets = [];
    }
    const names = new Set(targets.map((t) => t.address));
    this.aggregator.retain(names);
    for (const k of this.statuses.keys()) if (!names.has(k)) this.statuses.delete(k);
    const results = await Promise.all(targets.map((t) => this.scrapeTarget(t.address)));
    const ok = results.filter(Boolean).length;
    const round = { at: this.now(), ok, failed: results.length - ok };
    for (const l of this.listeners) l(round);
  }

  private async scrapeTarget(address: string): Promise<boolean> {
    const t = this.now();
    try {
      const res = await fetch(`http://${address}/stats/prometheus`, { signal: AbortSignal.timeout(this.o.timeoutMs ?? Math.min(this.intervalMs, 3_000)) });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      const parsed = parsePrometheusText(await res.text(), (n) => KEPT_METRICS.has(n));
      if (!parsed.ok) throw new Error(parsed.error);
      this.aggregator.record(address, t, parsed.samples);
      this.statuses.set(address, { address, ok: true, lastScrape: t });
      return true;
    } catch (err) {
      const prev = this.statuses.get(address);
      this.statuses.set(address, { address, ok: false, lastScrape: prev?.lastScrape ?? null, error: (err as Error).message });
      return false;
    }
  }
}
