// The balancer contract, after grpc-js: a policy builds an immutable Picker
// over a set of endpoints; when the set changes the Balancer (balancer.ts)
// builds and publishes a new picker whole, nothing is patched in place.
// `pick()` returns a tagged result. Endpoints are handles whose `load`
// counters the cluster keeps live through the balancer's feedback hooks
// (onStart / onEnd), so latency- and load-aware policies read them at pick
// time without owning any state of their own.
import type { LbPolicy, Locality } from '../config/types.ts';

/** Live load of one endpoint, shared by every picker (and every config
 * version) that holds the endpoint. Mutated only by load.ts. */
export interface EndpointLoad {
  /** Requests in flight (dispatched, not yet ended or failed). */
  active: number;
  /** Peak-EWMA latency estimate in ms at `ewmaStamp`; 0 before any sample. */
  ewmaMs: number;
  /** now() of the last estimate update. */
  ewmaStamp: number;
  /** True once at least one latency sample was recorded. */
  hasData: boolean;
  successes: number;
  failures: number;
  /** now() of the last answer in which the endpoint's proxy turned the
   * request away itself (Outcome.rejected); -Infinity before any. */
  rejectedAt: number;
}

export interface Endpoint {
  /** "address:port" ("[v6]:port" for IPv6): the endpoint's identity. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  /** Endpoint weight, >= 1. */
  readonly weight: number;
  readonly locality: Locality;
  /** Priority tier of the endpoint's locality (0 is the highest). */
  readonly priority: number;
  /** Load-balancing weight of the endpoint's locality, >= 1. */
  readonly localityWeight: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly load: EndpointLoad;
}

export interface PickContext {
  /** Set by the router's hash policy (ring hash); absent means "no affinity". */
  readonly hashKey?: string;
  /** Uniform in [0, 1). Injected so tests are deterministic. */
  readonly random: () => number;
}

export type PickResult =
  | { readonly kind: 'pick'; readonly endpoint: Endpoint }
  | { readonly kind: 'none' };

export interface Picker {
  pick(ctx: PickContext): PickResult;
}

export interface Outcome {
  readonly latencyMs: number;
  /** Completed without a transport error and with a status below 500. */
  readonly ok: boolean;
  /** The endpoint's proxy turned the request away itself (a synthetic
   * answer with a LOCAL_REJECTIONS code, errors.ts): no latency sample, a
   * sign that it has no room (load.ts rejectionPenalty). */
  readonly rejected?: boolean;
}

export interface BuildOptions {
  /** Milliseconds, monotonic (performance.now() by default). */
  readonly now: () => number;
  /** Used at build time only (e.g. round robin's random start offset). */
  readonly random: () => number;
  /** Ring hash bounds; Envoy's defaults when absent. */
  readonly ringHash?: { readonly minRingSize: number; readonly maxRingSize: number };
}

/** One load-balancing policy: a pure picker builder. */
export interface LbPolicyImpl {
  readonly name: LbPolicy;
  /** Build a picker over a non-empty set of eligible endpoints. */
  build(endpoints: readonly Endpoint[], opts: BuildOptions): Picker;
  /** Optional extra feedback (the shared load counters are already updated). */
  onStart?(endpoint: Endpoint): void;
  onEnd?(endpoint: Endpoint, outcome: Outcome): void;
  /** False for policies whose picks must not be split by locality weight
   * (ring hash: one ring per tier keeps the key -> endpoint mapping stable). */
  readonly splitByLocality?: boolean;
}

export const NO_PICK: PickResult = { kind: 'none' };
