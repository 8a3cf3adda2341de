// Virtual IPs for services: what a client dials in transparent mode and what
// the outbound listener matches on. Allocated from 240.240.0.0/16 by default
// (240.0.0.0/4 is reserved: never routed, so it never collides with a real
// address), stable for the service's life, freed when it is deleted.
//
// Two keys per allocation:
//   /trellis/registry/vip-claims/<ip>         {namespace, name, claimedAt}
//   /trellis/registry/vips/<namespace>/<name> {ip, allocatedAt}
// Both written create-only, claim first: two replicas racing can never
// hand out the same address (the claim decides) nor two addresses to one
// service (the vips record decides; the loser gives its claim back). A claim
// whose owner record never appeared (a replica died in between) is freed by
// syncVips after a grace period.
import type { Store } from '../store/types.ts';
import { REGISTRY_PREFIX } from './workload.ts';

export const VIPS_PREFIX = `${REGISTRY_PREFIX}vips/`;
export const VIP_CLAIMS_PREFIX = `${REGISTRY_PREFIX}vip-claims/`;
export const DEFAULT_VIP_RANGE = '240.240.0.0/16';
const ORPHAN_CLAIM_GRACE_MS = 60_000;

export interface VipRecord {
  ip: string;
  allocatedAt: string;
}

interface ClaimRecord {
  namespace: string;
  name: string;
  claimedAt: string;
}

export type AllocateVipResult =
  | { ok: true; ip: string; created: boolean }
  | { ok: false; reason: 'exhausted' | 'invalid'; message: string };

export interface VipOptions {
  /** CIDR to allocate from (default 240.240.0.0/16). Network and broadcast addresses are never used. */
  range?: string;
}

export function vipKey(namespace: string, name: string): string {
  return `${VIPS_PREFIX}${namespace}/${name}`;
}

function ipToInt(ip: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export type ParsedRange = { ok: true; first: number; size: number } | { ok: false; message: string };

/** Usable host addresses of an IPv4 CIDR (/8 to /30). */
export function parseVipRange(cidr: string): ParsedRange {
  const [addr, bitsText] = cidr.split('/');
  const base = addr === undefined ? null : ipToInt(addr);
  const bits = Number(bitsText);
  if (base === null || !Number.isInteger(bits) || bits < 8 || bits > 30) return { ok: false, message: `range: ${JSON.stringify(cidr)} is not an IPv4 CIDR between /8 and /30` };
  const hostBits = 32 - bits;
  const network = base - (base % 2 ** hostBits);
  return { ok: true, first: network + 1, size: 2 ** hostBits - 2 };
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function parseJson<T>(value: string): T | null {
  try {
    return JSON.parse(value) as T;
  } catch {
    return null;
  }
}

/** The service's VIP, allocating one if it has none yet. Safe to call concurrently from several replicas. */
export async function allocateVip(store: Store, namespace: string, name: string, opts: VipOptions = {}): Promise<AllocateVipResult> {
  if (!namespace || !name || namespace.includes('/') || name.includes('/')) return { ok: false, reason: 'invalid', message: 'namespace and name must be non-empty and contain no "/"' };
  const range = parseVipRange(opts.range ?? DEFAULT_VIP_RANGE);
  if (!range.ok) return { ok: false, reason: 'invalid', message: range.message };
  const key = vipKey(namespace, name);
  const existing = await store.get(key);
  const existingIp = existing && parseJson<VipRecord>(existing.value)?.ip;
  if (existingIp) return { ok: true, ip: existingIp, created: false };

  const claimed = new Set((await store.list(VIP_CLAIMS_PREFIX)).items.map((kv) => kv.key.slice(VIP_CLAIMS_PREFIX.length)));
  // Start where the name hashes to: a service deleted and created again tends
  // to get its old address back, and replicas rarely start on the same one.
  const start = fnv1a(`${namespace}/${name}`) % range.size;
  const claim: ClaimRecord = { namespace, name, claimedAt: new Date().toISOString() };
  for (let probe = 0; probe < range.size; probe++) {
    const ip = intToIp(range.first + ((start + probe) % range.size));
    if (claimed.has(ip)) continue;
    const c = await store.put(VIP_CLAIMS_PREFIX + ip, JSON.stringify(claim), { expectModRevision: 0 });
    let claimRev: number;
    if (c.ok) claimRev = c.revision;
    else {
      const owner = c.current && parseJson<ClaimRecord>(c.current.value);
      if (!c.current || !owner || owner.namespace !== namespace || owner.name !== name) continue; // taken by another service
      claimRev = c.current.modRevision; // ours already (a retried write, or an earlier attempt)
    }
    const rec: VipRecord = { ip, allocatedAt: new Date().toISOString() };
    const r = await store.put(key, JSON.stringify(rec), { expectModRevision: 0 });
    if (r.ok) return { ok: true, ip, created: true };
    const winner = r.current && parseJson<VipRecord>(r.current.value)?.ip;
    if (winner === ip) return { ok: true, ip, created: false };
    // Another replica allocated this service meanwhile: give our claim back.
    await store.delete(VIP_CLAIMS_PREFIX + ip, { expectModRevision: claimRev });
    if (winner) return { ok: true, ip: winner, created: false };
    return allocateVip(store, namespace, name, opts); // its record vanished again: start over
  }
  return { ok: false, reason: 'exhausted', message: `no free virtual IP left in ${opts.range ?? DEFAULT_VIP_RANGE}` };
}

/** Free the service's VIP (no-op if it has none). */
export async function releaseVip(store: Store, namespace: string, name: string): Promise<boolean> {
  const key = vipKey(namespace, name);
  const kv = await store.get(key);
  if (!kv) return false;
  const ip = parseJson<VipRecord>(kv.value)?.ip;
  const del = await store.delete(key, { expectModRevision: kv.modRevision });
  if (!del.ok) return false;
  if (ip) {
    const claim = await store.get(VIP_CLAIMS_PREFIX + ip);
    const owner = claim && parseJson<ClaimRecord>(claim.value);
    if (claim && owner?.namespace === namespace && owner.name === name) await store.delete(claim.key, { expectModRevision: claim.modRevision });
  }
  return true;
}

/**
 * Make VIPs match the set of services: allocate for new ones, free those of
 * deleted ones, drop claims orphaned by a replica that died mid-allocation.
 * Call on every change of the Service set (from the leader, or from any
 * replica: it is safe to run concurrently).
 */
export async function syncVips(
  store: Store,
  services: ReadonlyArray<{ namespace: string; name: string }>,
  opts: VipOptions & { now?: number } = {},
): Promise<{ allocated: string[]; released: string[]; failed: Array<{ service: string; message: string }> }> {
  const wanted = new Set(services.map((s) => `${s.namespace}/${s.name}`));
  const allocated: string[] = [];
  const released: string[] = [];
  const failed: Array<{ service: string; message: string }> = [];
  const records = (await store.list(VIPS_PREFIX)).items;
  const have = new Map(records.map((kv) => [kv.key.slice(VIPS_PREFIX.length), parseJson<VipRecord>(kv.value)?.ip ?? null]));
  for (const s of services) {
    const id = `${s.namespace}/${s.name}`;
    if (have.has(id)) continue;
    const r = await allocateVip(store, s.namespace, s.name, opts);
    if (r.ok) allocated.push(`${id}=${r.ip}`);
    else failed.push({ service: id, message: r.message });
  }
  for (const id of have.keys()) {
    if (wanted.has(id)) continue;
    const [ns, name] = id.split('/');
    if (ns && name && (await releaseVip(store, ns, name))) released.push(id);
  }
  const now = opts.now ?? Date.now();
  const owned = new Set((await store.list(VIPS_PREFIX)).items.map((kv) => parseJson<VipRecord>(kv.value)?.ip));
  for (const claim of (await store.list(VIP_CLAIMS_PREFIX)).items) {
    const ip = claim.key.slice(VIP_CLAIMS_PREFIX.length);
    const rec = parseJson<ClaimRecord>(claim.value);
    const age = rec ? now - Date.parse(rec.claimedAt) : Infinity;
    if (!owned.has(ip) && age > ORPHAN_CLAIM_GRACE_MS) await store.delete(claim.key, { expectModRevision: claim.modRevision });
  }
  return { allocated, released, failed };
}
