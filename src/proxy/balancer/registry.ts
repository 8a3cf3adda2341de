// Load-balancing policies by LbPolicy name (grpc-js keeps its balancers in a
// registry the same way). Built-ins are registered here; an extension can
// replace one with registerLbPolicy().
import type { LbPolicy } from '../config/types.ts';
import { leastRequest } from './least-request.ts';
import { peakEwma } from './peak-ewma.ts';
import { random } from './random.ts';
import { ringHash } from './ring-hash.ts';
import { roundRobin } from './round-robin.ts';
import type { LbPolicyImpl } from './types.ts';
import { weightedRoundRobin } from './weighted-round-robin.ts';

export const DEFAULT_LB_POLICY: LbPolicy = 'peak_ewma';

const policies = new Map<LbPolicy, LbPolicyImpl>();
for (const p of [peakEwma, roundRobin, weightedRoundRobin, random, leastRequest, ringHash]) policies.set(p.name, p);

export function getLbPolicy(name: LbPolicy): LbPolicyImpl | undefined {
  return policies.get(name);
}

export function registerLbPolicy(impl: LbPolicyImpl): void {
  policies.set(impl.name, impl);
}

export function lbPolicyNames(): LbPolicy[] {
  return [...policies.keys()];
}
