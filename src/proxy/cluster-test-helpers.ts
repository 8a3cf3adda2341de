// Test-only fakes for the cluster, cluster manager and pool registry tests:
// pools that hold requests until the test answers them, requests, and a
// handler that records what reached the downstream.
import type { ClusterSpec, LocalityEndpoints, NodeInfo, ProxyConfig } from './config/types.ts';
import type { ProxyError } from './errors.ts';
import type { Dispatch, ExchangeController, HeaderList, ProxyRequest, ResponseHandler, ResponseHead } from './http/exchange.ts';
import type { CreatePool, PoolProtocol } from './pool-registry.ts';
import type { PoolOptions, UpstreamPool } from './upstream/types.ts';

export const NODE: NodeInfo = { id: 'proxy-1', cluster: 'web', locality: { region: 'r1', zone: 'a', subZone: '' }, metadata: {} };

export interface FakeExchange {
  readonly req: ProxyRequest;
  readonly handler: ResponseHandler;
  aborted: ProxyError | null;
  respond(status: number): void;
  fail(err: ProxyError): void;
}

export interface FakePool extends UpstreamPool {
  /** Writable so a test can make a pool misbehave. */
  dispatch: Dispatch;
  readonly protocol: PoolProtocol;
  readonly opts: PoolOptions;
  readonly exchanges: FakeExchange[];
  inFlight(): number;
  closeCalls: number;
  destroyCalls: number;
  closed: boolean;
}

export function fakePoolFactory(): { create: CreatePool; created: FakePool[] } {
  const created: FakePool[] = [];
  const create: CreatePool = (protocol, opts) => {
    let inFlight = 0;
    let onIdle: (() => void) | null = null;
    const settle = (): void => {
      inFlight--;
      if (inFlight === 0 && onIdle) onIdle();
    };
    const pool: FakePool = {
      protocol,
      opts,
      exchanges: [],
      closeCalls: 0,
      destroyCalls: 0,
      closed: false,
      inFlight: () => inFlight,
      dispatch(req, handler) {
        inFlight++;
        let done = false;
        const ex: FakeExchange = {
          req,
          handler,
          aborted: null,
          respond(status) {
            if (done) return;
            done = true;
            handler.onHeaders({ status, headers: [] });
            handler.onData(Buffer.from('ok'));
            settle();
            handler.onEnd(null);
          },
          fail(err) {
            if (done) return;
            done = true;
            settle();
            handler.onError(err);
          },
        };
        pool.exchanges.push(ex);
        handler.onStart({
          resume() {},
          abort(err) {
            ex.aborted = err;
            ex.fail(err); // as undici does: an aborted exchange reports its error
          },
        });
      },
      stats: () => ({ connections: inFlight > 0 ? 1 : 0, active: inFlight, pending: 0 }),
      close() {
        pool.closeCalls++;
        pool.closed = true;
        return inFlight === 0 ? Promise.resolve() : new Promise<void>((r) => (onIdle = r));
      },
      destroy() {
        pool.destroyCalls++;
      },
    };
    created.push(pool);
    return pool;
  };
  return { create, created };
}

export function request(over: { httpVersion?: '1.1' | '2'; hashKey?: string } = {}): ProxyRequest {
  const attrs = new Map<string, unknown>();
  if (over.hashKey !== undefined) attrs.set('trellis.hashKey', over.hashKey);
  return {
    head: { method: 'GET', scheme: 'http', authority: 'svc', path: '/', headers: [], httpVersion: over.httpVersion ?? '1.1' },
    body: null,
    ctx: {
      listener: 'out',
      direction: 'outbound',
      downstream: { remoteAddress: '127.0.0.1', remotePort: 1, localAddress: '127.0.0.1', localPort: 2 },
      startTime: 0,
      deadline: null,
      responseFlags: [],
      grpc: false,
      attempts: 1,
      attrs,
    },
  };
}

export interface Recorded {
  events: string[];
  status: number | null;
  error: ProxyError | null;
  controller: ExchangeController | null;
  body: string;
}

export function recorder(): { handler: ResponseHandler; rec: Recorded; done: Promise<void> } {
  const rec: Recorded = { events: [], status: null, error: null, controller: null, body: '' };
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  const handler: ResponseHandler = {
    onStart(c) {
      rec.events.push('start');
      rec.controller = c;
    },
    onHeaders(head: ResponseHead) {
      rec.events.push('headers');
      rec.status = head.status;
      return true;
    },
    onData(chunk) {
      rec.body += chunk.toString();
      return true;
    },
    onEnd(_t: HeaderList | null) {
      rec.events.push('end');
      resolve();
    },
    onError(err) {
      rec.events.push(`error:${err.code}`);
      rec.error = err;
      resolve();
    },
  };
  return { handler, rec, done };
}

export function clusterSpec(name: string, over: Partial<ClusterSpec> = {}): ClusterSpec {
  return {
    name,
    lbPolicy: 'round_robin',
    protocol: 'http1',
    connectTimeoutMs: 1000,
    idleTimeoutMs: 10_000,
    maxRequestsPerConnection: 0,
    circuitBreakers: { maxConnections: 100, maxPendingRequests: 100, maxRequests: 100, maxRetries: 3 },
    localityAware: false,
    ...over,
  };
}

export function localities(addrs: readonly string[], over: Partial<LocalityEndpoints> = {}, port = 8080): LocalityEndpoints[] {
  return [{
    locality: NODE.locality,
    priority: 0,
    weight: 1,
    endpoints: addrs.map((address) => ({ address, port, weight: 1, health: 'healthy' as const })),
    ...over,
  }];
}

export function proxyConfig(version: string, clusters: Record<string, { spec?: Partial<ClusterSpec>; endpoints: LocalityEndpoints[] }>): ProxyConfig {
  return {
    version,
    listeners: [],
    routeConfigs: new Map(),
    clusters: new Map(Object.keys(clusters).map((n) => [n, clusterSpec(n, clusters[n]!.spec)])),
    endpoints: new Map(Object.entries(clusters).map(([n, c]) => [n, c.endpoints])),
  };
}
