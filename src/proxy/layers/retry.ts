// Retries, per-try timeouts and deadline propagation: the layer between the
// route and the cluster, so every attempt picks an endpoint afresh.
//
// Safe by default:
// - only requests that may be sent twice: idempotent methods (GET, HEAD,
//   OPTIONS, PUT, DELETE, TRACE), requests carrying `Idempotency-Key`, and
//   gRPC calls (whose retryable statuses the route names explicitly). Any
//   request is retried after a connect failure (it never left the proxy).
// - never after response bytes reached the caller: the decision is taken on
//   the upstream's response head, before it is forwarded; a retryable head
//   (5xx, a listed status, a trailers-only gRPC status) discards the attempt.
// - request bodies are kept for replay up to 64 KiB (replay-body.ts);
//   beyond that the request is not retried.
// - numRetries, exponential backoff with full jitter, a Linkerd retry budget
//   per cluster, and the cluster's max_retries breaker (active retries).
//
// The remaining deadline goes upstream on every attempt as
// `x-trellis-deadline-ms` (and `grpc-timeout` through the HTTP/2 pool), the
// smaller of the request deadline and the per-try timeout.
import type { RetryOn, RetryPolicySpec } from '../config/envoy-resilience.ts';
import { ProxyError, toProxyError } from '../errors.ts';
import { getHeader, removeHeader, setHeader } from '../http/exchange.ts';
import type { Dispatch, ExchangeController, HeaderList, Layer, ProxyRequest, ResponseHandler, ResponseHead } from '../http/exchange.ts';
import { DEFAULT_REPLAY_LIMIT, ReplayBody } from './replay-body.ts';
import { AVOID_ENDPOINTS_ATTR } from '../cluster.ts';
import type { RetryBudget } from './retry-budget.ts';

/** Remaining milliseconds of the caller's deadline, sent upstream and honoured inbound. */
export const DEADLINE_HEADER = 'x-trellis-deadline-ms';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const GRPC_CONDITION: Readonly<Record<string, RetryOn>> = { '1': 'cancelled', '4': 'deadline-exceeded', '8': 'resource-exhausted', '13': 'internal', '14': 'unavailable' };

export interface RetryDeps {
  /** Milliseconds on the performance.now() clock. */
  readonly now: () => number;
  /** Uniform in [0, 1). */
  readonly random: () => number;
  /** Schedule `fn` after `ms`; returns a cancel function. */
  readonly setTimer: (fn: () => void, ms: number) => () => void;
  readonly budget: (cluster: string) => RetryBudget;
  /** Retries in flight (including in backoff) per cluster, shared across configs. */
  readonly activeRetries: (cluster: string) => { active: number };
  /** The cluster's max_retries breaker. */
  readonly maxRetries: (cluster: string) => number;
  readonly replayLimit?: number;
  readonly onRetry?: (cluster: string) => void;
  readonly onBudgetExhausted?: (cluster: string) => void;
  readonly onRetryOverflow?: (cluster: string) => void;
}

export function realTimer(fn: () => void, ms: number): () => void {
  const t = setTimeout(fn, Math.max(0, ms));
  return () => clearTimeout(t);
}

/** `policyOf` returns the route's policy (undefined: one attempt, still with
 * deadline propagation). */
export function retryLayer(policyOf: (req: ProxyRequest) => RetryPolicySpec | undefined, deps: RetryDeps): Layer {
  return function retry(next: Dispatch): Dispatch {
    return function retryDispatch(req, handler) {
      const policy = policyOf(req);
      const cluster = req.ctx.cluster ?? '';
      if (policy === undefined) {
        req.ctx.attempts = 1;
        setDeadlineHeader(req.head.headers, req.ctx.deadline, deps.now());
        next(req, handler);
        return;
      }
      new RetryRun(next, req, handler, policy, cluster, deps).start();
    };
  };
}

export function setDeadlineHeader(headers: HeaderList, deadline: number | null, now: number): void {
  if (deadline === null) removeHeader(headers, DEADLINE_HEADER);
  else setHeader(headers, DEADLINE_HEADER, String(Math.max(0, Math.ceil(deadline - now))));
}

/** May this request be sent more than once (beyond connect failures)? */
export function isRetrySafe(req: ProxyRequest): boolean {
  if (req.head.upgrade !== undefined) return false;
  return IDEMPOTENT.has(req.head.method) || req.ctx.grpc || getHeader(req.head.headers, 'idempotency-key') !== undefined;
}

/** Conditions a response head meets. */
export function headConditions(head: ResponseHead, policy: RetryPolicySpec): RetryOn[] {
  const out: RetryOn[] = [];
  const s = head.status;
  if (s >= 500) out.push('5xx');
  if (s === 502 || s === 503 || s === 504) out.push('gateway-error');
  if (s === 409) out.push('retriable-4xx');
  if (policy.retriableStatusCodes.has(s)) out.push('retriable-status-codes');
  const g = getHeader(head.headers, 'grpc-status');
  if (g !== undefined) {
    const c = GRPC_CONDITION[g.trim()];
    if (c) out.push(c);
  }
  return out;
}

/** Conditions a failure before the response head meets; `connect` marks
 * failures where the request never reached the upstream. */
export function errorConditions(err: ProxyError): { conditions: RetryOn[]; connect: boolean } {
  switch (err.code) {
    case 'UPSTREAM_CONNECT_FAILED':
    case 'UPSTREAM_CONNECT_TIMEOUT':
      return { conditions: ['connect-failure', 'reset', '5xx', 'gateway-error'], connect: true };
    case 'UPSTREAM_RESET':
    case 'UPSTREAM_PROTOCOL_ERROR':
    case 'PER_TRY_TIMEOUT':
      return { conditions: ['reset', '5xx', 'gateway-error'], connect: false };
    default:
      return { conditions: [], connect: false };
  }
}

class RetryRun implements ExchangeController {
  readonly next: Dispatch;
  readonly req: ProxyRequest;
  readonly handler: ResponseHandler;
  readonly policy: RetryPolicySpec;
  readonly cluster: string;
  readonly deps: RetryDeps;
  private readonly safe: boolean;
  private readonly replay: ReplayBody | null;
  private readonly bodyRetryable: boolean;
  n = 0;
  current: Attempt | null = null;
  private cancelBackoff: (() => void) | null = null;
  private finished = false;
  committed = false;
  private budgetDenied = false;
  /** The request deadline while an attempt runs with a lowered ctx.deadline. */
  private overall: number | null | undefined = undefined;

  constructor(next: Dispatch, req: ProxyRequest, handler: ResponseHandler, policy: RetryPolicySpec, cluster: string, deps: RetryDeps) {
    this.next = next;
    this.req = req;
    this.handler = handler;
    this.policy = policy;
    this.cluster = cluster;
    this.deps = deps;
    this.safe = isRetrySafe(req);
    const body = req.body;
    const limit = deps.replayLimit ?? DEFAULT_REPLAY_LIMIT;
    if (body === null) {
      this.replay = null;
      this.bodyRetryable = true;
    } else if (body.contentLength !== null && body.contentLength > limit) {
      this.replay = null;
      this.bodyRetryable = false;
    } else {
      this.replay = new ReplayBody(body, limit);
      this.bodyRetryable = true;
    }
  }

  start(): void {
    this.deps.budget(this.cluster).deposit(this.deps.now());
    this.attempt();
  }

  private attempt(): void {
    this.cancelBackoff = null;
    const { req, deps } = this;
    const ctx = req.ctx;
    this.n++;
    ctx.attempts = this.n;
    const a = new Attempt(this, this.n > 1);
    this.current = a;
    const now = deps.now();
    const perTry = this.policy.perTryTimeoutMs;
    const tryDeadline = perTry > 0 ? now + perTry : null;
    const saved = ctx.deadline;
    const effective = tryDeadline !== null && (saved === null || tryDeadline < saved) ? tryDeadline : saved;
    const headers = req.head.headers.slice();
    setDeadlineHeader(headers, effective, now);
    const body = this.replay ? this.replay.view() : this.n === 1 ? req.body : null;
    const areq: ProxyRequest = { head: { ...req.head, headers }, body, ctx };
    if (perTry > 0) a.cancelTimer = deps.setTimer(() => a.perTryTimeout(), perTry);
    // The HTTP/2 pool derives grpc-timeout from ctx.deadline when it sends
    // the head: lower it for the attempt while it is being dispatched.
    ctx.deadline = effective;
    this.overall = saved;
    try {
      ctx.upstreamEndpoint = undefined;
      this.next(areq, a);
      a.endpoint = ctx.upstreamEndpoint;
    } catch (err) {
      a.onError(toProxyError(err));
    } finally {
      ctx.deadline = saved;
      this.overall = undefined;
    }
  }

  /** Decide whether a failed attempt (by these conditions) is retried; if so, schedule it. */
  tryRetry(conditions: readonly RetryOn[], connect: boolean): boolean {
    if (this.finished) return false;
    const { policy, deps, cluster } = this;
    if (!conditions.some((c) => policy.retryOn.has(c))) return false;
    if (!this.safe && !connect) return false;
    if (!this.bodyRetryable || (this.replay !== null && !this.replay.replayable)) return false;
    if (this.n > policy.numRetries) return false;
    const now = deps.now();
    const cap = Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** (this.n - 1));
    const delay = deps.random() * cap;
    const deadline = this.overall === undefined ? this.req.ctx.deadline : this.overall;
    if (deadline !== null && now + delay >= deadline) return false;
    const active = deps.activeRetries(cluster);
    if (active.active >= deps.maxRetries(cluster)) {
      deps.onRetryOverflow?.(cluster);
      return false;
    }
    if (!deps.budget(cluster).tryWithdraw(now)) {
      this.budgetDenied = true;
      deps.onBudgetExhausted?.(cluster);
      return false;
    }
    active.active++;
    deps.onRetry?.(cluster);
    const failedOn = this.current?.endpoint ?? this.req.ctx.upstreamEndpoint;
    if (failedOn !== undefined) {
      const attrs = this.req.ctx.attrs;
      let avoid = attrs.get(AVOID_ENDPOINTS_ATTR) as Set<string> | undefined;
      if (!avoid) attrs.set(AVOID_ENDPOINTS_ATTR, (avoid = new Set()));
      avoid.add(failedOn);
    }
    let pending = true;
    const cancel = deps.setTimer(() => {
      pending = false;
      if (this.finished) {
        active.active--;
        return;
      }
      this.attempt();
    }, delay);
    this.cancelBackoff = () => {
      cancel();
      if (pending) {
        pending = false;
        active.active--;
      }
    };
    return true;
  }

  /** The attempt's head is going to the caller: no more retries. */
  commit(): void {
    this.committed = true;
    this.replay?.commit();
    if (this.n > 1 || this.budgetDenied) this.markExhaustedIfFailed(this.current?.status ?? 0);
  }

  private markExhaustedIfFailed(status: number): void {
    if (status >= 500 || status === 0) this.req.ctx.responseFlags.push('URX');
  }

  finishOk(trailers: HeaderList | null): void {
    if (this.finished) return;
    this.finished = true;
    this.replay?.release();
    this.handler.onEnd(trailers);
  }

  /** Final failure: forwarded to the caller. */
  finishError(err: ProxyError): void {
    if (this.finished) return;
    this.finished = true;
    this.replay?.release(err);
    const ctx = this.req.ctx;
    let out = err;
    if (!this.committed) {
      if (this.budgetDenied && errorConditions(err).conditions.some((c) => this.policy.retryOn.has(c))) {
        out = new ProxyError('RETRY_BUDGET_EXHAUSTED', `last attempt: ${err.message}`, { cause: err });
      }
      if (this.n > 1 || this.budgetDenied) ctx.responseFlags.push('URX');
      if (err.code === 'PER_TRY_TIMEOUT') ctx.responseFlags.push(err.flag);
    }
    this.handler.onError(out);
  }

  // ---- ExchangeController handed to the caller for every attempt ----

  resume(): void {
    this.current?.controller?.resume();
  }

  abort(err: ProxyError): void {
    if (this.finished) return;
    this.cancelBackoff?.();
    this.cancelBackoff = null;
    const a = this.current;
    if (a) a.discard(err);
    this.finishError(err);
  }
}

class Attempt implements ResponseHandler {
  private readonly run: RetryRun;
  private readonly isRetry: boolean;
  controller: ExchangeController | null = null;
  /** The endpoint the cluster picked (a retry avoids it). */
  endpoint: string | undefined;
  cancelTimer: (() => void) | null = null;
  /** Discarded: events from it are ignored. */
  private stale = false;
  private closed = false;
  private abortWith: ProxyError | null = null;
  status = 0;
  onInformational?: (head: ResponseHead) => void;
  onUpgrade?: ResponseHandler['onUpgrade'];

  constructor(run: RetryRun, isRetry: boolean) {
    this.run = run;
    this.isRetry = isRetry;
    const h = run.handler;
    if (h.onInformational) this.onInformational = (head) => { if (!this.stale) h.onInformational!(head); };
    if (h.onUpgrade) {
      this.onUpgrade = (head, up, rest) => {
        if (this.stale) {
          up.destroy();
          return;
        }
        this.close();
        run.commit();
        h.onUpgrade!(head, up, rest);
      };
    }
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cancelTimer?.();
    this.cancelTimer = null;
    if (this.isRetry) this.run.deps.activeRetries(this.run.cluster).active--;
  }

  /** Drop this attempt: abort it upstream and ignore whatever it reports. */
  discard(err: ProxyError): void {
    if (this.stale) return;
    this.stale = true;
    this.abortWith = err;
    this.close();
    this.controller?.abort(err);
  }

  perTryTimeout(): void {
    this.cancelTimer = null;
    if (this.stale || this.run.committed) return;
    const err = new ProxyError('PER_TRY_TIMEOUT', `after ${this.run.policy.perTryTimeoutMs} ms`);
    this.discard(err);
    this.failed(err);
  }

  private failed(err: ProxyError): void {
    const { conditions, connect } = errorConditions(err);
    if (!this.run.tryRetry(conditions, connect)) this.run.finishError(err);
  }

  onStart(c: ExchangeController): void {
    this.controller = c;
    if (this.stale) {
      c.abort(this.abortWith ?? new ProxyError('UPSTREAM_RESET', 'attempt discarded'));
      return;
    }
    this.run.handler.onStart(this.run);
  }

  onHeaders(head: ResponseHead): boolean {
    if (this.stale) return false;
    this.status = head.status;
    const run = this.run;
    if (!run.committed) {
      const conditions = headConditions(head, run.policy);
      if (conditions.length > 0 && run.tryRetry(conditions, false)) {
        this.discard(new ProxyError('UPSTREAM_RESET', `response ${head.status} discarded for a retry`));
        return false;
      }
    }
    // Per-try timeout covers the wait for the response head.
    this.cancelTimer?.();
    this.cancelTimer = null;
    run.commit();
    return run.handler.onHeaders(head);
  }

  onData(chunk: Buffer): boolean {
    if (this.stale) return false;
    return this.run.handler.onData(chunk);
  }

  onEnd(trailers: HeaderList | null): void {
    if (this.stale) return;
    this.stale = true;
    this.close();
    this.run.finishOk(trailers);
  }

  onError(err: ProxyError): void {
    if (this.stale) return;
    this.stale = true;
    this.close();
    if (this.run.committed) this.run.finishError(err);
    else this.failed(err);
  }
}
