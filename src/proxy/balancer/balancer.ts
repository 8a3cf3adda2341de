// A cluster's balancer: publishes one immutable picker (locality.ts around
// the cluster's policy) and replaces it whole when the endpoint set changes
// (config, health, ejection). The picker is built on the first pick after an
// update, so building a cluster for a config that never serves costs little.
// Feedback hooks keep the endpoints' shared load counters (load.ts) current.
import type { LbPolicy } from '../config/types.ts';
import { recordEnd, recordStart } from './load.ts';
import { buildLocalityPicker } from './locality.ts';
import type { EndpointSet, LocalityOptions } from './locality.ts';
import type { BuildOptions, Endpoint, LbPolicyImpl, Outcome, PickContext, PickResult, Picker } from './types.ts';

export interface Balancer {
  readonly policy: LbPolicy;
  /** Replace the endpoint set; the next pick uses a new picker. */
  update(set: EndpointSet): void;
  /** The current picker (built if needed). */
  picker(): Picker;
  pick(ctx: PickContext): PickResult;
  /** A request was dispatched to `endpoint`. */
  onStart(endpoint: Endpoint): void;
  /** That request ended (response complete, failed or aborted). */
  onEnd(endpoint: Endpoint, outcome: Outcome): void;
}

export function createBalancer(policy: LbPolicyImpl, opts: BuildOptions & LocalityOptions, initial: EndpointSet): Balancer {
  let set = initial;
  let current: Picker | null = null;
  const picker = (): Picker => (current ??= buildLocalityPicker(set, policy, opts));
  return {
    policy: policy.name,
    update(next) {
      set = next;
      current = null;
    },
    picker,
    pick: (ctx) => picker().pick(ctx),
    onStart(endpoint) {
      recordStart(endpoint.load);
      policy.onStart?.(endpoint);
    },
    onEnd(endpoint, outcome) {
      recordEnd(endpoint.load, outcome, opts.now());
      policy.onEnd?.(endpoint, outcome);
    },
  };
}
