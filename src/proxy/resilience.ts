// The resilience layers between the router and the cluster, and the state
// they keep across config versions. The router hands each routed request to
// `clusters.get(name).dispatch`; this wraps that lookup so the request goes,
// in order:
//
//   router -> deadline (x-trellis-deadline-ms honoured) -> rate limit
//          -> fault -> mirror -> retry (per-try timeout, budget) -> cluster
//
// Outlier detection listens on the cluster manager's `observe` hook and
// health checking probes endpoints; both act on the active cluster manager
// and re-apply their verdicts after every config swap (`activate`).
// What lives here outlives a config: retry budgets and active-retry counts
// per cluster, rate-limit buckets, ejections, health verdicts.
import type { ProxyConfig, RouteSpec } from './config/types.ts';
import { planResilience, type PlanResult, type ResiliencePlan, type RouteResilience } from './config/envoy-resilience.ts';
import type { ClusterManager } from './cluster-manager.ts';
import type { RequestOutcome } from './cluster.ts';
import type { Endpoint } from './balancer/types.ts';
import type { ClusterLookup } from './router.ts';
import { ATTR_ROUTE_SPEC } from './router.ts';
import { compose, getHeader, removeHeader } from './http/exchange.ts';
import type { Dispatch, Layer, ProxyRequest } from './http/exchange.ts';
import { Registry, type Counter } from './stats.ts';
import { DEFAULT_RETRY_BUDGET, RetryBudget, type RetryBudgetOptions } from './layers/retry-budget.ts';
import { DEADLINE_HEADER, realTimer, retryLayer } from './layers/retry.ts';
import { mirrorLayer } from './layers/mirror.ts';
import { faultLayer } from './layers/fault.ts';
import { RateLimitStore, rateLimitLayer } from './layers/rate-limit.ts';
import { OutlierDetector } from './outlier-detection.ts';
import { HealthChecker, type Probe } from './health-check.ts';

export interface ResilienceStats {
  /** trellis_retries_total{cluster} */
  readonly retries: Counter;
  /** trellis_retry_budget_exhausted_total{cluster} */
  readonly budgetExhausted: Counter;
  /** trellis_retry_overflow_total{cluster} (max_retries breaker) */
  readonly retryOverflow: Counter;
  /** trellis_outlier_ejections_total{cluster} */
  readonly ejections: Counter;
  /** trellis_rate_limited_total{limit} */
  readonly rateLimited: Counter;
  /** trellis_faults_injected_total{kind} */
  readonly faults: Counter;
  /** trellis_mirror_requests_total{cluster,result} */
  readonly mirrors: Counter;
  /** trellis_health_check_transitions_total{cluster,to} */
  readonly healthTransitions: Counter;
}

export function createResilienceStats(registry: Registry): ResilienceStats {
  return {
    retries: registry.counter('trellis_retries_total', 'Retries sent, by cluster.', ['cluster']),
    budgetExhausted: registry.counter('trellis_retry_budget_exhausted_total', 'Retries not sent because the retry budget was exhausted.', ['cluster']),
    retryOverflow: registry.counter('trellis_retry_overflow_total', 'Retries not sent because of the cluster max_retries breaker.', ['cluster']),
    ejections: registry.counter('trellis_outlier_ejections_total', 'Endpoints ejected by outlier detection.', ['cluster']),
    rateLimited: registry.counter('trellis_rate_limited_total', 'Requests rejected by a rate limit, by limit stat prefix.', ['limit']),
    faults: registry.counter('trellis_faults_injected_total', 'Faults injected, by kind (delay, abort).', ['kind']),
    mirrors: registry.counter('trellis_mirror_requests_total', 'Mirrored requests by cluster and result (sent, ok, failed, dropped).', ['cluster', 'result']),
    healthTransitions: registry.counter('trellis_health_check_transitions_total', 'Active health check verdict changes.', ['cluster', 'to']),
  };
}

export interface ResilienceOptions {
  readonly registry?: Registry;
  readonly log?: (event: string, fields?: Record<string, unknown>) => void;
  readonly retryBudget?: RetryBudgetOptions;
  readonly healthProbe?: Probe;
  readonly now?: () => number;
  readonly random?: () => number;
}

export type CompiledResilience = { ok: true; plan: ResiliencePlan; warnings: string[] } | { ok: false; errors: string[]; warnings: string[] };

export class Resilience {
  readonly stats: ResilienceStats;
  readonly outliers: OutlierDetector;
  readonly health: HealthChecker;
  private readonly opts: ResilienceOptions;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly budgets = new Map<string, RetryBudget>();
  private readonly activeRetries = new Map<string, { active: number }>();
  private readonly store = new RateLimitStore();
  private plan: ResiliencePlan | null = null;
  private config: ProxyConfig | null = null;

  constructor(opts: ResilienceOptions = {}) {
    this.opts = opts;
    this.now = opts.now ?? (() => performance.now());
    this.random = opts.random ?? Math.random;
    this.stats = createResilienceStats(opts.registry ?? new Registry());
    const log = opts.log ?? (() => {});
    this.outliers = new OutlierDetector({
      now: this.now,
      setTimer: unrefTimer,
      spec: (cluster) => this.plan?.clusters.get(cluster)?.outlier,
      onEject: (cluster, key, durationMs) => {
        this.stats.ejections.labels(cluster).inc();
        log('outlier_ejected', { cluster, endpoint: key, durationMs });
      },
      onReturn: (cluster, key) => log('outlier_returned', { cluster, endpoint: key }),
    });
    this.health = new HealthChecker({
      specs: (cluster) => this.plan?.clusters.get(cluster)?.healthChecks ?? [],
      ...(opts.healthProbe ? { probe: opts.healthProbe } : {}),
      onChange: (cluster, key, healthy) => {
        this.stats.healthTransitions.labels(cluster, healthy ? 'healthy' : 'unhealthy').inc();
        log('health_check_changed', { cluster, endpoint: key, healthy });
      },
    });
  }

  /** Read the config's resilience fields strictly (call before building). */
  compile(config: ProxyConfig): PlanResult {
    return planResilience(config);
  }

  /** The observe hook for the cluster manager. */
  readonly observe = (cluster: string, endpoint: Endpoint, outcome: RequestOutcome): void => {
    this.outliers.observe(cluster, endpoint.key, outcome);
  };

  /** The router's cluster lookup for one config version, with the layers in front. */
  wrapClusters(plan: ResiliencePlan, config: ProxyConfig, clusters: ClusterManager): ClusterLookup {
    const routeOf = (req: ProxyRequest): RouteResilience | undefined => {
      const spec = req.ctx.attrs.get(ATTR_ROUTE_SPEC) as RouteSpec | undefined;
      return spec ? plan.routes.get(spec) : undefined;
    };
    const deps = {
      now: this.now,
      random: this.random,
      setTimer: realTimer,
    };
    // Rate limits, faults and mirrors only when some route of this config
    // has them; the deadline and retry layers always run (deadline propagation).
    const { uses } = plan;
    const layers: Layer[] = [
      deadlineLayer(this.now),
      ...(uses.rateLimit ? [rateLimitLayer((req) => {
        const rl = routeOf(req)?.rateLimit;
        return rl ? { spec: rl, key: `${req.ctx.listener}|${req.ctx.route ?? ''}|${rl.statPrefix}` } : undefined;
      }, {
        now: this.now,
        random: this.random,
        store: this.store,
        onLimited: (limit) => this.stats.rateLimited.labels(limit).inc(),
      })] : []),
      ...(uses.fault ? [faultLayer((req) => routeOf(req)?.fault, { ...deps, onFault: (kind) => this.stats.faults.labels(kind).inc() })] : []),
      ...(uses.mirror ? [mirrorLayer((req) => routeOf(req)?.mirrors ?? [], {
        cluster: (name) => clusters.get(name)?.dispatch,
        random: this.random,
        now: this.now,
        onMirror: (cluster, result) => this.stats.mirrors.labels(cluster, result).inc(),
      })] : []),
      retryLayer((req) => routeOf(req)?.retry, {
        ...deps,
        budget: (cluster) => this.budgetFor(cluster),
        activeRetries: (cluster) => this.activeFor(cluster),
        maxRetries: (cluster) => config.clusters.get(cluster)?.circuitBreakers.maxRetries ?? 3,
        onRetry: (cluster) => this.stats.retries.labels(cluster).inc(),
        onBudgetExhausted: (cluster) => this.stats.budgetExhausted.labels(cluster).inc(),
        onRetryOverflow: (cluster) => this.stats.retryOverflow.labels(cluster).inc(),
      }),
    ];
    const wrapped = new Map<string, { dispatch: Dispatch }>();
    return {
      get(name) {
        let w = wrapped.get(name);
        if (w) return w;
        const c = clusters.get(name);
        if (!c) return undefined;
        w = { dispatch: compose(layers, c.dispatch) };
        wrapped.set(name, w);
        return w;
      },
    };
  }

  /** The config is now serving: outlier and health verdicts go to its clusters. */
  activate(plan: ResiliencePlan, config: ProxyConfig, clusters: ClusterManager): void {
    this.plan = plan;
    this.config = config;
    this.outliers.attach({
      size: (cluster) => config.endpoints.get(cluster)?.reduce((n, le) => n + le.endpoints.length, 0) ?? 0,
      setEjected: (cluster, key, ejected) => void clusters.get(cluster)?.setEndpointEjected(key, ejected),
    });
    this.health.sync(config, { setHealth: (cluster, key, h) => void clusters.get(cluster)?.setEndpointHealth(key, h) });
  }

  budgetFor(cluster: string): RetryBudget {
    let b = this.budgets.get(cluster);
    // A cluster's own budget (RetryPolicy.budget via cluster metadata) wins;
    // a changed budget starts afresh, an unchanged one survives config swaps.
    const own = this.plan?.clusters.get(cluster)?.retryBudget;
    const want = own ? { ...this.opts.retryBudget, ...own } : this.opts.retryBudget;
    const ratio = want?.ratio ?? DEFAULT_RETRY_BUDGET.ratio;
    const min = want?.minRetriesPerSecond ?? DEFAULT_RETRY_BUDGET.minRetriesPerSecond;
    if (!b || b.ratio !== ratio || b.minRetriesPerSecond !== min) this.budgets.set(cluster, (b = new RetryBudget(want)));
    return b;
  }

  private activeFor(cluster: string): { active: number } {
    let a = this.activeRetries.get(cluster);
    if (!a) this.activeRetries.set(cluster, (a = { active: 0 }));
    return a;
  }

  stop(): void {
    this.outliers.stop();
    this.health.stop();
  }
}

function unrefTimer(fn: () => void, ms: number): () => void {
  const t = setTimeout(fn, Math.max(0, ms));
  t.unref();
  return () => clearTimeout(t);
}

/** Honour an inbound `x-trellis-deadline-ms`: the request's deadline becomes
 * no later than the caller's (runs inside the router, before the timeout
 * layer arms its timer). A malformed value is dropped. */
export function deadlineLayer(now: () => number): Layer {
  return function deadline(next: Dispatch): Dispatch {
    return function deadlineDispatch(req, handler) {
      const v = getHeader(req.head.headers, DEADLINE_HEADER);
      if (v !== undefined) {
        const ms = /^\d{1,10}$/.test(v.trim()) ? Number(v.trim()) : NaN;
        if (Number.isFinite(ms)) {
          const d = now() + ms;
          if (req.ctx.deadline === null || d < req.ctx.deadline) req.ctx.deadline = d;
        } else removeHeader(req.head.headers, DEADLINE_HEADER);
      }
      next(req, handler);
    };
  };
}
