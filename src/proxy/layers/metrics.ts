// Request metrics: one count per completed exchange by listener, direction,
// cluster and status class, a latency histogram (first request byte to the
// end of the response) and response body bytes. The cluster is known only
// after the router ran, so it is read from `ctx.cluster` at completion
// ("none" for direct responses, redirects and unrouted requests).
//
// Cheap on the hot path: labelled children are resolved once per
// (listener, cluster) and cached; a request does one map lookup and a few
// additions. A failure before the response began is counted with the
// status the rescue edge renders for it (err.status), also for gRPC callers
// who see it as a trailers-only 200.
import type { Dispatch, ExchangeController, HeaderList, Layer, ProxyRequest, ResponseHandler, ResponseHead } from '../http/exchange.ts';
import type { ProxyError } from '../errors.ts';
import type { CounterChild, HistogramChild } from '../stats.ts';
import { CODE_CLASSES, codeClassIndex, type ProxyStats } from '../proxy-stats.ts';

interface ClusterSeries {
  readonly codes: readonly CounterChild[];
  readonly duration: HistogramChild;
  readonly bytes: CounterChild;
}

export interface MetricsOptions {
  readonly stats: ProxyStats;
  readonly listener: string;
  readonly direction: 'inbound' | 'outbound' | 'gateway';
  readonly now?: () => number;
}

/** Per-listener series cache; shared by every stack built for the listener
 * so a config swap does not re-resolve children. */
export class ListenerSeries {
  private readonly byCluster = new Map<string, ClusterSeries>();
  private readonly o: MetricsOptions;
  constructor(o: MetricsOptions) {
    this.o = o;
  }
  get(cluster: string): ClusterSeries {
    let s = this.byCluster.get(cluster);
    if (!s) {
      const { stats, listener, direction } = this.o;
      s = {
        codes: CODE_CLASSES.map((c) => stats.requests.labels(listener, direction, cluster, c)),
        duration: stats.requestDuration.labels(listener, direction, cluster),
        bytes: stats.responseBytes.labels(listener, cluster),
      };
      this.byCluster.set(cluster, s);
    }
    return s;
  }
}

export function metricsLayer(o: MetricsOptions, series: ListenerSeries = new ListenerSeries(o)): Layer {
  const now = o.now ?? (() => performance.now());
  return function metrics(next: Dispatch): Dispatch {
    return function metricsDispatch(req, handler) {
      next(req, new MetricsHandler(handler, req, series, now));
    };
  };
}

class MetricsHandler implements ResponseHandler {
  private readonly inner: ResponseHandler;
  private readonly req: ProxyRequest;
  private readonly series: ListenerSeries;
  private readonly now: () => number;
  private status = 0;
  private bytes = 0;
  private recorded = false;
  onInformational?: (head: ResponseHead) => void;
  onUpgrade?: ResponseHandler['onUpgrade'];

  constructor(inner: ResponseHandler, req: ProxyRequest, series: ListenerSeries, now: () => number) {
    this.inner = inner;
    this.req = req;
    this.series = series;
    this.now = now;
    if (inner.onInformational) this.onInformational = (head) => inner.onInformational!(head);
    if (inner.onUpgrade) {
      this.onUpgrade = (head, up, rest) => {
        this.status = head.status;
        this.record();
        inner.onUpgrade!(head, up, rest);
      };
    }
  }

  private record(): void {
    if (this.recorded) return;
    this.recorded = true;
    const s = this.series.get(this.req.ctx.cluster ?? 'none');
    s.codes[codeClassIndex(this.status)]!.inc();
    s.duration.observe((this.now() - this.req.ctx.startTime) / 1000);
    if (this.bytes > 0) s.bytes.inc(this.bytes);
  }

  onStart(c: ExchangeController): void {
    this.inner.onStart(c);
  }
  onHeaders(head: ResponseHead): boolean {
    this.status = head.status;
    return this.inner.onHeaders(head);
  }
  onData(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    return this.inner.onData(chunk);
  }
  onEnd(trailers: HeaderList | null): void {
    this.record();
    this.inner.onEnd(trailers);
  }
  onError(err: ProxyError): void {
    if (this.status === 0) this.status = err.status;
    this.record();
    this.inner.onError(err);
  }
}
