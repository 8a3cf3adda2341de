// One upstream cluster (one ClusterSpec of one config version): its endpoint
// set, the balancer over the eligible ones, the max_requests circuit breaker
// and the request path
//
//   dispatch -> breaker -> pick -> count -> endpoint's pool (a CONNECT: a tunnel, connect-tunnel.ts)
//
// Endpoints are eligible when their health is healthy or unknown (Envoy
// treats unknown as healthy), not draining, and not ejected by outlier
// detection (setEndpointEjected). Any change to eligibility publishes a new
// picker whole. Pools and load counters come from the PoolRegistry, so they
// outlive this object; retire() gives them back.
import { openTunnel } from './connect-tunnel.ts';
import type { ConnectionOptions } from 'node:tls';
import type { ClusterSpec, EndpointSpec, HealthStatus, LbPolicy, LocalityEndpoints, NodeInfo, UpstreamProtocol } from './config/types.ts';
import { createBalancer } from './balancer/balancer.ts';
import type { Balancer } from './balancer/balancer.ts';
import { ewmaAt } from './balancer/load.ts';
import { getLbPolicy } from './balancer/registry.ts';
import type { Endpoint, PickContext } from './balancer/types.ts';
import { LOCAL_REJECTIONS, PROXY_ERROR_HEADER, ProxyError, toProxyError } from './errors.ts';
import { getHeader } from './http/exchange.ts';
import type { Dispatch, ExchangeController, HeaderList, ResponseHandler, ResponseHead } from './http/exchange.ts';
import type { LoadLease, PoolLease, PoolProtocol, PoolRegistry } from './pool-registry.ts';
import { DEFAULT_POOL_OPTIONS } from './upstream/types.ts';
import type { PoolOptions, PoolStats } from './upstream/types.ts';
import type { Duplex } from 'node:stream';

/** Load-registry key of the cluster-wide in-flight count (not an endpoint key). */
const CLUSTER_LOAD_KEY = '*';

/** Request attribute holding the hash key computed by the route's hash policy. */
export const HASH_KEY_ATTR = 'trellis.hashKey';

/** Request attribute: a ReadonlySet of endpoint keys a retry should avoid
 * (the endpoints earlier attempts failed on; Envoy's previous_hosts). */
export const AVOID_ENDPOINTS_ATTR = 'trellis.avoidEndpoints';
const AVOID_REPICKS = 3;

export interface RequestOutcome {
  readonly latencyMs: number;
  readonly ok: boolean;
  /** Response status, 0 when the exchange failed before one. */
  readonly status: number;
  /** The error code when the exchange failed or was aborted. */
  readonly error?: string;
}

export interface ClusterDeps {
  readonly node: NodeInfo;
  readonly pools: PoolRegistry;
  /** Uniform in [0, 1). */
  readonly random: () => number;
  /** Milliseconds, monotonic. */
  readonly now: () => number;
  /** TLS origination per endpoint (the mTLS work); plaintext when absent or undefined.
   * Return the same object for the same identity so pools are shared. */
  readonly tls?: (cluster: ClusterSpec, endpoint: EndpointSpec) => ConnectionOptions | undefined;
  /** Every finished request, for outlier detection and metrics. */
  readonly observe?: (cluster: string, endpoint: Endpoint, outcome: RequestOutcome) => void;
}

export interface EndpointSnapshot {
  readonly key: string;
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly priority: number;
  readonly locality: Endpoint['locality'];
  readonly health: HealthStatus;
  readonly ejected: boolean;
  readonly eligible: boolean;
  readonly active: number;
  readonly ewmaMs: number;
  readonly successes: number;
  readonly failures: number;
  readonly pools: Partial<Record<PoolProtocol, PoolStats | null>>;
}

export interface ClusterSnapshot {
  readonly name: string;
  readonly lbPolicy: LbPolicy;
  readonly protocol: UpstreamProtocol;
  readonly active: number;
  readonly maxRequests: number;
  readonly endpoints: readonly EndpointSnapshot[];
}

export interface Cluster {
  readonly name: string;
  readonly spec: ClusterSpec;
  readonly dispatch: Dispatch;
  /** Requests in flight through this cluster (all config versions of it). */
  active(): number;
  /** An endpoint for an opaque TCP connection, chosen by the cluster's
   * balancer among healthy, non-ejected endpoints; undefined when none. */
  pickTcp(): { address: string; port: number; labels: Readonly<Record<string, string>> } | undefined;
  /** Outlier detection's hook. Returns false for an unknown endpoint key. */
  setEndpointEjected(key: string, ejected: boolean): boolean;
  /** Active health checking's hook. Returns false for an unknown endpoint key. */
  setEndpointHealth(key: string, health: HealthStatus): boolean;
  snapshot(): ClusterSnapshot;
  /** Give back pools and load counters; call after the config was swapped. */
  retire(): void;
}

interface Member {
  readonly endpoint: Endpoint;
  readonly spec: EndpointSpec;
  health: HealthStatus;
  ejected: boolean;
  readonly http1: PoolLease | undefined;
  readonly http2: PoolLease | undefined;
  readonly loadLease: LoadLease;
}

export function endpointKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function positive(n: number): number {
  return Number.isFinite(n) && n > 0 ? n : 1;
}

function isEligible(m: Member): boolean {
  return !m.ejected && (m.health === 'healthy' || m.health === 'unknown');
}

export function createCluster(spec: ClusterSpec, localities: readonly LocalityEndpoints[], deps: ClusterDeps): Cluster {
  const policy = getLbPolicy(spec.lbPolicy);
  if (!policy) throw new Error(`cluster ${spec.name}: lbPolicy "${spec.lbPolicy}" is not a registered load-balancing policy`);
  const { pools, random, now } = deps;
  const protocols: PoolProtocol[] = spec.protocol === 'downstream' ? ['http1', 'http2'] : [spec.protocol];

  const members = new Map<string, Member>();
  const ordered: Member[] = [];
  for (const le of localities) {
    for (const ep of le.endpoints) {
      const key = endpointKey(ep.address, ep.port);
      if (members.has(key)) continue; // first occurrence wins
      const opts: PoolOptions = {
        ...DEFAULT_POOL_OPTIONS,
        host: ep.address,
        port: ep.port,
        maxConnections: spec.circuitBreakers.maxConnections,
        maxPendingRequests: spec.circuitBreakers.maxPendingRequests,
        idleTimeoutMs: spec.idleTimeoutMs,
        connectTimeoutMs: spec.connectTimeoutMs,
        maxRequestsPerConnection: spec.maxRequestsPerConnection,
      };
      const tls = deps.tls?.(spec, ep);
      if (tls) opts.tls = tls;
      const loadLease = pools.acquireLoad(spec.name, key);
      const m: Member = {
        endpoint: {
          key,
          address: ep.address,
          port: ep.port,
          weight: positive(ep.weight),
          locality: le.locality,
          priority: le.priority,
          localityWeight: positive(le.weight),
          labels: ep.labels ?? {},
          load: loadLease.load,
        },
        spec: ep,
        health: ep.health,
        ejected: false,
        http1: protocols.includes('http1') ? pools.acquire('http1', opts) : undefined,
        http2: protocols.includes('http2') ? pools.acquire('http2', opts) : undefined,
        loadLease,
      };
      members.set(key, m);
      ordered.push(m);
    }
  }

  const all = ordered.map((m) => m.endpoint);
  const eligibleSet = () => ({ all, eligible: ordered.filter(isEligible).map((m) => m.endpoint) });
  const balancer: Balancer = createBalancer(
    policy,
    {
      now,
      random,
      ...(spec.ringHash ? { ringHash: spec.ringHash } : {}),
      localityAware: spec.localityAware,
      self: deps.node.locality,
    },
    eligibleSet(),
  );

  // The max_requests count is shared with the same-named cluster of other
  // config versions (through the registry), so requests still in flight on
  // the old version count against the new one's limit during a swap.
  const clusterLoad = pools.acquireLoad(spec.name, CLUSTER_LOAD_KEY);
  const counter = clusterLoad.load;
  let retired = false;
  const maxRequests = spec.circuitBreakers.maxRequests;
  const noKey: PickContext = { random };
  const state: TrackState = {
    cluster: spec.name,
    balancer,
    now,
    observe: deps.observe,
    ended: () => {
      if (counter.active > 0) counter.active--;
    },
  };

  const dispatch: Dispatch = (req, handler) => {
    if (counter.active >= maxRequests) {
      handler.onError(new ProxyError('OVERFLOW', `cluster ${spec.name}: ${counter.active} requests in flight (max_requests ${maxRequests})`));
      return;
    }
    const hashKey = req.ctx.attrs.get(HASH_KEY_ATTR);
    const pickCtx = typeof hashKey === 'string' ? { hashKey, random } : noKey;
    let picked = balancer.pick(pickCtx);
    const avoid = req.ctx.attrs.get(AVOID_ENDPOINTS_ATTR) as ReadonlySet<string> | undefined;
    for (let i = 0; avoid !== undefined && i < AVOID_REPICKS && picked.kind === 'pick' && avoid.has(picked.endpoint.key); i++) picked = balancer.pick(pickCtx);
    if (picked.kind === 'none') {
      handler.onError(new ProxyError('NO_HEALTHY_UPSTREAM', `cluster ${spec.name}`));
      return;
    }
    const ep = picked.endpoint;
    const m = members.get(ep.key)!;
    const lease = spec.protocol === 'downstream' ? (req.head.httpVersion === '2' ? m.http2 : m.http1) : (m.http1 ?? m.http2);
    req.ctx.upstreamEndpoint = ep.key;
    req.ctx.cluster ??= spec.name;
    counter.active++;
    balancer.onStart(ep);
    const tracked = new TrackedHandler(handler, state, ep, now());
    if (req.head.upgrade === 'CONNECT') {
      // A CONNECT tunnel is a TCP connection of its own, not a pooled request.
      openTunnel({ host: ep.address, port: ep.port, tls: deps.tls?.(spec, m.spec), connectTimeoutMs: spec.connectTimeoutMs }, tracked);
      return;
    }
    try {
      lease!.pool().dispatch(req, tracked);
    } catch (err) {
      tracked.onError(toProxyError(err));
    }
  };

  const setAndPublish = (key: string, change: (m: Member) => boolean): boolean => {
    const m = members.get(key);
    if (!m) return false;
    const before = isEligible(m);
    if (change(m) && isEligible(m) !== before) balancer.update(eligibleSet());
    return true;
  };

  return {
    name: spec.name,
    spec,
    dispatch,
    active: () => counter.active,
    pickTcp() {
      const picked = balancer.pick(noKey);
      if (picked.kind !== 'pick') return undefined;
      const { address, port, labels } = picked.endpoint;
      return { address, port, labels };
    },
    setEndpointEjected: (key, ejected) =>
      setAndPublish(key, (m) => {
        if (m.ejected === ejected) return false;
        m.ejected = ejected;
        return true;
      }),
    setEndpointHealth: (key, health) =>
      setAndPublish(key, (m) => {
        if (m.health === health) return false;
        m.health = health;
        return true;
      }),
    snapshot() {
      const t = now();
      return {
        name: spec.name,
        lbPolicy: spec.lbPolicy,
        protocol: spec.protocol,
        active: counter.active,
        maxRequests,
        endpoints: ordered.map((m) => {
          const load = m.endpoint.load;
          const poolStats: Partial<Record<PoolProtocol, PoolStats | null>> = {};
          if (m.http1) poolStats.http1 = m.http1.stats();
          if (m.http2) poolStats.http2 = m.http2.stats();
          return {
            key: m.endpoint.key,
            address: m.endpoint.address,
            port: m.endpoint.port,
            weight: m.endpoint.weight,
            priority: m.endpoint.priority,
            locality: m.endpoint.locality,
            health: m.health,
            ejected: m.ejected,
            eligible: isEligible(m),
            active: load.active,
            ewmaMs: load.hasData ? ewmaAt(load, t) : 0,
            successes: load.successes,
            failures: load.failures,
            pools: poolStats,
          };
        }),
      };
    },
    retire() {
      if (retired) return;
      retired = true;
      clusterLoad.release();
      for (const m of ordered) {
        m.http1?.release();
        m.http2?.release();
        m.loadLease.release();
      }
    },
  };
}

interface TrackState {
  readonly cluster: string;
  readonly balancer: Balancer;
  readonly now: () => number;
  readonly observe: ClusterDeps['observe'];
  readonly ended: () => void;
}

/** Forwards everything to the downstream handler and closes the books on the
 * request exactly once: at onEnd, onError, onUpgrade (the tunnel is not
 * counted as a request in flight) or the downstream's abort, whichever comes
 * first. The books close before the event is forwarded, so a retry layer
 * reacting to it already sees the updated counters. */
class TrackedHandler implements ResponseHandler, ExchangeController {
  readonly #inner: ResponseHandler;
  readonly #state: TrackState;
  readonly #endpoint: Endpoint;
  readonly #start: number;
  #controller: ExchangeController | null = null;
  #status = 0;
  /** The endpoint's proxy answered with a local rejection (errors.ts LOCAL_REJECTIONS). */
  #rejected = false;
  #done = false;
  onInformational?: (head: ResponseHead) => void;
  onUpgrade?: (head: ResponseHead, upstream: Duplex, upstreamHead: Buffer) => void;

  constructor(inner: ResponseHandler, state: TrackState, endpoint: Endpoint, start: number) {
    this.#inner = inner;
    this.#state = state;
    this.#endpoint = endpoint;
    this.#start = start;
    if (inner.onInformational) this.onInformational = (head) => inner.onInformational!(head);
    if (inner.onUpgrade) {
      this.onUpgrade = (head, upstream, upstreamHead) => {
        this.#status = head.status;
        this.#finish(true);
        inner.onUpgrade!(head, upstream, upstreamHead);
      };
    }
  }

  #finish(ok: boolean, error?: string): void {
    if (this.#done) return;
    this.#done = true;
    const s = this.#state;
    s.ended();
    const latencyMs = Math.max(0, s.now() - this.#start);
    s.balancer.onEnd(this.#endpoint, this.#rejected ? { latencyMs, ok, rejected: true } : { latencyMs, ok });
    s.observe?.(s.cluster, this.#endpoint, error === undefined ? { latencyMs, ok, status: this.#status } : { latencyMs, ok, status: this.#status, error });
  }

  // The handler is also the controller handed downstream, so an abort from
  // the downstream closes the books before it reaches the pool.
  onStart(controller: ExchangeController): void {
    this.#controller = controller;
    this.#inner.onStart(this);
  }

  resume(): void {
    this.#controller?.resume();
  }

  abort(err: ProxyError): void {
    this.#finish(false, err.code);
    this.#controller?.abort(err);
  }

  onHeaders(head: ResponseHead): boolean {
    this.#status = head.status;
    const synthetic = getHeader(head.headers, PROXY_ERROR_HEADER);
    if (synthetic !== undefined && LOCAL_REJECTIONS.has(synthetic)) this.#rejected = true;
    return this.#inner.onHeaders(head);
  }

  onData(chunk: Buffer): boolean {
    return this.#inner.onData(chunk);
  }

  onEnd(trailers: HeaderList | null): void {
    this.#finish(this.#status < 500);
    this.#inner.onEnd(trailers);
  }

  onError(err: ProxyError): void {
    this.#finish(false, err.code);
    this.#inner.onError(err);
  }
}
