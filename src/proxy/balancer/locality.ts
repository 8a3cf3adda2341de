// Priority tiers and locality preference, wrapped around any policy.
//
// 1. Tiers (LocalityEndpoints.priority, 0 first). Envoy's rule with an
//    overprovisioning factor of 1.4: tier t's health h_t = min(1, 1.4 x
//    eligible_t / total_t) (endpoint counts). Tier 0 takes share h_0, tier 1
//    min(h_1, 1 - h_0), and so on until the shares reach 1: a tier that is
//    at least 72% healthy keeps all of its traffic; below that the missing
//    share spills to the next tiers. If the healths sum to less than 1 the
//    shares are h_t / sum(h).
// 2. Locality-aware clusters (ClusterSpec.localityAware) split each tier into
//    groups: the proxy's own zone, then its own region, then the rest, with
//    the same spillover rule between groups (an empty group is skipped). The
//    own zone keeps all traffic while >= 72% of it is eligible.
// 3. Inside a group, locality weights apply when the localities that have
//    eligible endpoints do not all carry the same weight: a locality is
//    chosen with weight localityWeight x its health, then the policy picks
//    inside it. Equal locality weights (the usual "unset") leave the group
//    as one endpoint set for the policy. Ring hash never splits by locality
//    (one ring per group keeps the key -> endpoint mapping stable).
//
// Choices are made with ctx.random(), or with a seeded hash of ctx.hashKey
// when present, so a key sticks to its tier like it sticks to its endpoint.
import type { Locality } from '../config/types.ts';
import { hashUnitSeeded } from './hash.ts';
import type { BuildOptions, Endpoint, LbPolicyImpl, PickContext, PickResult, Picker } from './types.ts';
import { NO_PICK } from './types.ts';

export const OVERPROVISIONING_FACTOR = 1.4;
const HASH_SEED = 0x5bd1e995;

export interface EndpointSet {
  /** Every endpoint of the cluster, eligible or not (tier health needs both). */
  readonly all: readonly Endpoint[];
  /** Those that may be picked: healthy, not draining, not ejected. */
  readonly eligible: readonly Endpoint[];
}

export interface LocalityOptions {
  readonly localityAware: boolean;
  /** The proxy's own locality (NodeInfo.locality). */
  readonly self: Locality;
  readonly overprovisioningFactor?: number;
}

/** A weighted choice among sub-pickers; shares are positive and sum to 1. */
interface Choice {
  readonly shares: readonly number[];
  readonly children: readonly Picker[];
}

function choicePicker(c: Choice): Picker {
  if (c.children.length === 1) return c.children[0]!;
  const n = c.children.length;
  const cumulative: number[] = [];
  let acc = 0;
  for (const s of c.shares) cumulative.push((acc += s));
  return {
    pick(ctx: PickContext): PickResult {
      const u = ctx.hashKey === undefined ? ctx.random() : hashUnitSeeded(ctx.hashKey, HASH_SEED);
      let i = 0;
      while (i < n - 1 && u >= cumulative[i]!) i++;
      return c.children[i]!.pick(ctx);
    },
  };
}

interface Bucket {
  total: number;
  readonly eligible: Endpoint[];
}

/** Spillover shares for ordered buckets (tiers or groups); empty when none
 * has an eligible endpoint. Returns [index, share] pairs with share > 0. */
export function spillShares(buckets: readonly { total: number; eligible: number }[], factor: number): [number, number][] {
  const health = buckets.map((b) => (b.total === 0 ? 0 : Math.min(1, (factor * b.eligible) / b.total)));
  const sum = health.reduce((a, b) => a + b, 0);
  const out: [number, number][] = [];
  if (sum === 0) return out;
  if (sum < 1) {
    health.forEach((h, i) => h > 0 && out.push([i, h / sum]));
    return out;
  }
  let remaining = 1;
  for (let i = 0; i < health.length && remaining > 1e-12; i++) {
    const share = Math.min(health[i]!, remaining);
    if (share > 0) out.push([i, share]);
    remaining -= share;
  }
  return out;
}

function groupOf(l: Locality, self: Locality): number {
  if (l.region !== self.region) return 2;
  return l.zone === self.zone ? 0 : 1;
}

function localityId(l: Locality): string {
  return `${l.region}/${l.zone}/${l.subZone}`;
}

function buildGroup(endpoints: Bucket, policy: LbPolicyImpl, opts: BuildOptions, factor: number, all: readonly Endpoint[]): Picker {
  if (policy.splitByLocality !== false) {
    const byLocality = new Map<string, { weight: number; total: number; eligible: Endpoint[] }>();
    for (const e of all) {
      const id = localityId(e.locality);
      let b = byLocality.get(id);
      if (!b) byLocality.set(id, (b = { weight: e.localityWeight, total: 0, eligible: [] }));
      b.total++;
    }
    for (const e of endpoints.eligible) byLocality.get(localityId(e.locality))!.eligible.push(e);
    const live = [...byLocality.values()].filter((b) => b.eligible.length > 0);
    if (live.length > 1 && live.some((b) => b.weight !== live[0]!.weight)) {
      const weights = live.map((b) => b.weight * Math.min(1, (factor * b.eligible.length) / b.total));
      const sum = weights.reduce((a, b) => a + b, 0);
      return choicePicker({ shares: weights.map((w) => w / sum), children: live.map((b) => policy.build(b.eligible, opts)) });
    }
  }
  return policy.build(endpoints.eligible, opts);
}

/** Build the cluster's picker: tiers, groups, localities, then the policy. */
export function buildLocalityPicker(set: EndpointSet, policy: LbPolicyImpl, opts: BuildOptions & LocalityOptions): Picker {
  if (set.eligible.length === 0) return { pick: () => NO_PICK };
  const factor = opts.overprovisioningFactor ?? OVERPROVISIONING_FACTOR;
  const eligible = new Set(set.eligible);
  // Fast path: one tier, no locality preference, everything eligible.
  const tiers = [...new Set(set.all.map((e) => e.priority))].sort((a, b) => a - b);
  const distinctLocalityWeights = new Set(set.all.map((e) => e.localityWeight)).size;
  if (tiers.length === 1 && !opts.localityAware && distinctLocalityWeights === 1) {
    return policy.build(set.eligible, opts);
  }
  const tierPickers: Picker[] = [];
  const tierStats: { total: number; eligible: number }[] = [];
  for (const p of tiers) {
    const inTier = set.all.filter((e) => e.priority === p);
    const groups: { all: Endpoint[]; bucket: Bucket }[] = [];
    for (const e of inTier) {
      const g = opts.localityAware ? groupOf(e.locality, opts.self) : 0;
      while (groups.length <= g) groups.push({ all: [], bucket: { total: 0, eligible: [] } });
      const grp = groups[g]!;
      grp.all.push(e);
      grp.bucket.total++;
      if (eligible.has(e)) grp.bucket.eligible.push(e);
    }
    const present = groups.filter((g) => g.all.length > 0);
    const shares = spillShares(present.map((g) => ({ total: g.bucket.total, eligible: g.bucket.eligible.length })), factor);
    const eligibleInTier = present.reduce((a, g) => a + g.bucket.eligible.length, 0);
    tierStats.push({ total: inTier.length, eligible: eligibleInTier });
    tierPickers.push(
      shares.length === 0
        ? { pick: () => NO_PICK }
        : choicePicker({
            shares: shares.map(([, s]) => s),
            children: shares.map(([i]) => buildGroup(present[i]!.bucket, policy, opts, factor, present[i]!.all)),
          }),
    );
  }
  const shares = spillShares(tierStats, factor);
  return choicePicker({ shares: shares.map(([, s]) => s), children: shares.map(([i]) => tierPickers[i]!) });
}
