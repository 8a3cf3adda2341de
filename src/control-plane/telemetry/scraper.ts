// The control plane's scraper: every `intervalMs` (default 5 s) it fetches
// `/stats/prometheus` from each proxy's admin address and records the
// standard request metrics in the embedded aggregator. Targets come from a
// provider function; the control plane builds it from the proxies connected
// over xDS, whose node metadata carries `trellis.admin: "host:port"`
// (docs/telemetry.md), or `trellis.metrics` for a proxy on another host,
// scraped over mutual TLS (proxy/metrics-listener.ts). Scrapes of one round run concurrently, each with a
// timeout; a failing target is reported in `status()` and skipped.
import { parsePrometheusText } from './prom-text.ts';
import { tlsFetch } from '../../lib/tls-fetch.ts';
import { parseSpiffeId } from '../../lib/spiffe.ts';
import { uriSansOf } from '../../proxy/tls/spiffe-verify.ts';
import { EmbeddedAggregator, KEPT_METRICS } from './embedded-source.ts';

export const DEFAULT_SCRAPE_INTERVAL_MS = 5_000;

export interface ScrapeTarget {
  /** `host:port` of the proxy's admin listener, or of its metrics listener with `tls`. */
  readonly address: string;
  /** Scrape over mutual TLS (proxy/metrics-listener.ts): the control plane's
   * serving certificate as the client certificate; the proxy must present a
   * mesh certificate of this namespace. */
  readonly tls?: { readonly namespace: string };
}

/** The control plane's serving certificate and the mesh trust bundle. */
export interface ScrapeClientCert {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

export interface ScraperOptions {
  readonly targets: () => readonly ScrapeTarget[] | Promise<readonly ScrapeTarget[]>;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  readonly now?: () => number;
  /** For `tls` targets; without it they fail with a clear status. */
  readonly clientCert?: () => ScrapeClientCert | undefined;
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
    const results = await Promise.all(targets.map((t) => this.scrapeTarget(t)));
    const ok = results.filter(Boolean).length;
    const round = { at: this.now(), ok, failed: results.length - ok };
    for (const l of this.listeners) l(round);
  }

  private async scrapeTarget(target: ScrapeTarget): Promise<boolean> {
    const { address } = target;
    const t = this.now();
    try {
      const signal = AbortSignal.timeout(this.o.timeoutMs ?? Math.min(this.intervalMs, 3_000));
      let res: Response;
      if (target.tls) {
        const client = this.o.clientCert?.();
        if (!client) throw new Error('mTLS metrics target, but the control plane has no serving certificate');
        const ns = target.tls.namespace;
        res = await tlsFetch(`https://${address}/stats/prometheus`, {
          ca: client.ca, cert: client.cert, key: client.key, signal,
          checkServerIdentity: (_host, cert) => {
            const ids = uriSansOf(cert).map(parseSpiffeId);
            return ids.length === 1 && ids[0]?.namespace === ns ? undefined : new Error(`the proxy's certificate is not a workload identity of namespace ${ns}`);
          },
        });
      } else {
        res = await fetch(`http://${address}/stats/prometheus`, { signal });
      }
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
