// Join tokens: the credential a proxy presents with its CSR. A token is bound
// to one workload registration (namespace, service account, workload); the
// identity in the issued certificate comes from the token, never from the
// CSR. Tokens are stored only as their SHA-256 hash under
// /trellis/identity/join-tokens/<hash>, so a store dump does not leak them;
// they are reusable until they expire (the proxy presents the same token at
// every rotation) and revoked by deleting the key.
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
export const DEFAULT_JOIN_TOKEN_TTL_MS = 30 * 24 * 3600_000;
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export type TokenStore = Pick<Store, 'get' | 'put' | 'delete' | 'list'>;

export interface JoinTokenBinding {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly workload: string;
}

export interface JoinTokenRecord extends JoinTokenBinding {
  readonly createdAt: string;
  readonly expiresAt: string;
}

export type MintResult =
  | { ok: true; token: string; expiresAt: string }
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

export async function mintJoinToken(store: TokenStore, binding: JoinTokenBinding, opts: { now: number; ttlMs?: number; caPin?: string }): Promise<MintResult> {
  const bad = checkBinding(binding);
  if (bad) return { ok: false, code: 'INVALID_ARGUMENT', message: bad };
  const ttl = opts.ttlMs ?? DEFAULT_JOIN_TOKEN_TTL_MS;
  if (!Number.isFinite(ttl) || ttl <= 0) return { ok: false, code: 'INVALID_ARGUMENT', message: 'ttl: must be a positive duration' };
  const token = `tjt_${randomBytes(32).toString('base64url')}`;
  const record: JoinTokenRecord = {
    namespace: binding.namespace,
    serviceAccount: binding.serviceAccount,
    workload: binding.workload,
    createdAt: new Date(opts.now).toISOString(),
    expiresAt: new Date(opts.now + ttl).toISOString(),
  };
  await store.put(JOIN_TOKEN_PREFIX + sha256Hex(token), JSON.stringify(record));
  const pin = opts.caPin?.replace(/^sha256:/, '');
  return { ok: true, token: pin ? `${token}.${pin}` : token, expiresAt: record.expiresAt };
}

export async function verifyJoinToken(store: TokenStore, presented: string | undefined, now: number): Promise<VerifyTokenResult> {
  const token = presented === undefined ? undefined : parseJoinToken(presented).secret;
  if (!token || !/^tjt_[A-Za-z0-9_-]{43}$/.test(token)) return { ok: false, code: 'UNAUTHENTICATED', message: 'a join token is required (Authorization: Bearer tjt_...)' };
  const kv = await store.get(JOIN_TOKEN_PREFIX + sha256Hex(token));
  if (!kv) return { ok: false, code: 'UNAUTHENTICATED', message: 'unknown or revoked join token' };
  const rec = JSON.parse(kv.value) as JoinTokenRecord;
  if (Date.parse(rec.expiresAt) <= now) return { ok: false, code: 'UNAUTHENTICATED', message: `join token expired at ${rec.expiresAt}` };
  return { ok: true, binding: rec };
}

export async function revokeJoinToken(store: TokenStore, token: string): Promise<boolean> {
  const r = await store.delete(JOIN_TOKEN_PREFIX + sha256Hex(parseJoinToken(token).secret));
  return r.ok;
}
