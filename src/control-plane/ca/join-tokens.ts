// Join tokens: the credential a workload presents for its first
// certificate. A token is scoped to one identity (namespace + service
// account; the workload name is a label for humans and the registry); the
// identity in the issued certificate comes from the token, never from the
// CSR. Tokens are short-lived (1 h by default) and good for a bounded number
// of certificates (10 by default); renewals are proven with the current
// certificate instead (ca.ts), so a running proxy never needs its token
// again. Tokens are stored only as their SHA-256 hash under
// /trellis/identity/join-tokens/<hash>; `trellis identity token list` shows
// the hash's first 12 hex digits as the id, and revoke deletes the key.
//
// A token carries the CA it must trust, as kubeadm's discovery token does:
// `tjt_<secret>.<hex>`, where <hex> is the SHA-256 of the mesh root's
// SubjectPublicKeyInfo. A proxy reaching the control plane over HTTPS reads
// the trust bundle, keeps it only if a root matches the pin, and from then
// on trusts nothing else (src/proxy/identity/ca-client.ts).
import { randomBytes } from 'node:crypto';
import type { Store } from '../store/types.ts';
import { sha256Hex } from './pki.ts';
import { parseJoinToken } from '../../lib/ca-pin.ts';

export { parseJoinToken };

export const JOIN_TOKEN_PREFIX = '/trellis/identity/join-tokens/';
export const DEFAULT_JOIN_TOKEN_TTL_MS = 3600_000;
export const DEFAULT_JOIN_TOKEN_USES = 10;
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export type TokenStore = Pick<Store, 'get' | 'put' | 'delete' | 'list'>;

export interface JoinTokenBinding {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly workload: string;
}

export interface JoinTokenRecord extends JoinTokenBinding {
  /** The hash's first 12 hex digits (what list and revoke show). */
  readonly id?: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  /** Certificates issued with it so far, and at most. */
  readonly uses?: number;
  readonly maxUses?: number;
}

export type MintResult =
  | { ok: true; token: string; expiresAt: string; id: string }
  | { ok: false; code: 'INVALID_ARGUMENT'; message: string };

export type VerifyTokenResult =
  | { ok: true; binding: JoinTokenRecord }
  | { ok: false; code: 'UNAUTHENTICATED'; message: string };

export function checkBinding(b: Partial<Record<keyof JoinTokenBinding, unknown>>): string | undefined {
  for (const f of ['namespace', 'serviceAccount', 'workload'] as const) {
    const v = b[f];
    if (typeof v !== 'string' || !NAME.test(v)) return `${f}: must be a lowercase DNS name (got ${JSON.stringify(v)})`;
  }
  return undefined;
}

export async function mintJoinToken(store: TokenStore, binding: JoinTokenBinding, opts: { now: number; ttlMs?: number; maxUses?: number; caPin?: string }): Promise<MintResult> {
  const bad = checkBinding(binding);
  if (bad) return { ok: false, code: 'INVALID_ARGUMENT', message: bad };
  const ttl = opts.ttlMs ?? DEFAULT_JOIN_TOKEN_TTL_MS;
  if (!Number.isFinite(ttl) || ttl <= 0) return { ok: false, code: 'INVALID_ARGUMENT', message: 'ttl: must be a positive duration' };
  const maxUses = opts.maxUses ?? DEFAULT_JOIN_TOKEN_USES;
  if (!Number.isInteger(maxUses) || maxUses < 1 || maxUses > 1000) return { ok: false, code: 'INVALID_ARGUMENT', message: `uses: must be a whole number from 1 to 1000 (got ${JSON.stringify(opts.maxUses)})` };
  const token = `tjt_${randomBytes(32).toString('base64url')}`;
  const hash = sha256Hex(token);
  const record: JoinTokenRecord = {
    id: hash.slice(0, 12),
    namespace: binding.namespace,
    serviceAccount: binding.serviceAccount,
    workload: binding.workload,
    createdAt: new Date(opts.now).toISOString(),
    expiresAt: new Date(opts.now + ttl).toISOString(),
    uses: 0,
    maxUses,
  };
  await store.put(JOIN_TOKEN_PREFIX + hash, JSON.stringify(record));
  const pin = opts.caPin?.replace(/^sha256:/, '');
  return { ok: true, token: pin ? `${token}.${pin}` : token, expiresAt: record.expiresAt, id: record.id! };
}

async function lookup(store: TokenStore, presented: string | undefined, now: number): Promise<{ ok: true; key: string; record: JoinTokenRecord; modRevision: number } | { ok: false; code: 'UNAUTHENTICATED'; message: string }> {
  const token = presented === undefined ? undefined : parseJoinToken(presented).secret;
  if (!token || !/^tjt_[A-Za-z0-9_-]{43}$/.test(token)) return { ok: false, code: 'UNAUTHENTICATED', message: 'a join token is required (Authorization: Bearer tjt_...)' };
  const key = JOIN_TOKEN_PREFIX + sha256Hex(token);
  const kv = await store.get(key);
  if (!kv) return { ok: false, code: 'UNAUTHENTICATED', message: 'unknown or revoked join token' };
  const rec = JSON.parse(kv.value) as JoinTokenRecord;
  if (Date.parse(rec.expiresAt) <= now) return { ok: false, code: 'UNAUTHENTICATED', message: `join token expired at ${rec.expiresAt}: mint a new one (trellis identity token)` };
  return { ok: true, key, record: rec, modRevision: kv.modRevision };
}

/** Checks a token without spending a use (e.g. to register the workload it names). */
export async function verifyJoinToken(store: TokenStore, presented: string | undefined, now: number): Promise<VerifyTokenResult> {
  const r = await lookup(store, presented, now);
  return r.ok ? { ok: true, binding: r.record } : r;
}

/** Checks a token and spends one use (a certificate), atomically: two
 * replicas racing for the last use cannot both win. */
export async function consumeJoinToken(store: TokenStore, presented: string | undefined, now: number): Promise<VerifyTokenResult> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const r = await lookup(store, presented, now);
    if (!r.ok) return r;
    const uses = r.record.uses ?? 0;
    const max = r.record.maxUses ?? Number.POSITIVE_INFINITY;
    if (uses >= max) return { ok: false, code: 'UNAUTHENTICATED', message: `join token used up (${uses} of ${max} certificates): mint a new one (trellis identity token)` };
    const next = { ...r.record, uses: uses + 1 };
    const put = await store.put(r.key, JSON.stringify(next), { expectModRevision: r.modRevision });
    if (put.ok) return { ok: true, binding: next };
  }
  return { ok: false, code: 'UNAUTHENTICATED', message: 'join token: too many concurrent uses, try again' };
}

export async function revokeJoinToken(store: TokenStore, token: string): Promise<boolean> {
  const r = await store.delete(JOIN_TOKEN_PREFIX + sha256Hex(parseJoinToken(token).secret));
  return r.ok;
}

/** Every token's record (never the secret), oldest first. */
export async function listJoinTokens(store: TokenStore): Promise<(JoinTokenRecord & { id: string })[]> {
  const { items } = await store.list(JOIN_TOKEN_PREFIX);
  return items
    .map((kv) => ({ ...(JSON.parse(kv.value) as JoinTokenRecord), id: kv.key.slice(JOIN_TOKEN_PREFIX.length, JOIN_TOKEN_PREFIX.length + 12) }))
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
}

/** Revoke by id (12+ hex digits of the hash); the record, or undefined when none matches. */
export async function revokeJoinTokenById(store: TokenStore, id: string): Promise<JoinTokenRecord | undefined> {
  if (!/^[0-9a-f]{12,64}$/.test(id)) return undefined;
  const { items } = await store.list(JOIN_TOKEN_PREFIX + id.slice(0, 12));
  const hit = items.find((kv) => kv.key.slice(JOIN_TOKEN_PREFIX.length).startsWith(id));
  if (!hit) return undefined;
  await store.delete(hit.key);
  return JSON.parse(hit.value) as JoinTokenRecord;
}
