// API tokens: the bearer credentials people and tools present to the
// control plane's HTTP API (docs/security-model.md). A token carries one
// role:
//   admin      everything (apply, delete, tokens, CA rotation, registry)
//   viewer     read only (GET/HEAD, watch, metrics, tap)
//   registrar  register, heartbeat and deregister workloads of ONE
//              identity (namespace + service account), nothing else
// Tokens are stored only as their SHA-256 hash under
// /trellis/auth/tokens/<hash>; the id shown by `trellis token list` is the
// hash's first 12 hex digits, so a listing never reveals a usable secret.
//
// The first admin token: a control plane that requires credentials and finds
// no admin token in its store mints one at start and writes it to
// <data-dir>/admin-token (0600 in a 0700 directory). One replica wins a
// create-only marker key, so replicas sharing an etcd mint it once.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Store } from '../store/types.ts';
import { sha256Hex } from '../ca/pki.ts';

export const API_TOKEN_PREFIX = '/trellis/auth/tokens/';
export const BOOTSTRAP_MARKER_KEY = '/trellis/auth/bootstrap';
export const API_TOKEN_PATTERN = /^tat_[A-Za-z0-9_-]{43}$/;
export const ADMIN_TOKEN_FILE = 'admin-token';

export type Role = 'admin' | 'viewer' | 'registrar';
export const ROLES: readonly Role[] = ['admin', 'viewer', 'registrar'];

export type TokenStore = Pick<Store, 'get' | 'put' | 'delete' | 'list'>;

export interface ApiTokenRecord {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  /** registrar only: the one identity it may register workloads under. */
  readonly namespace?: string;
  readonly serviceAccount?: string;
  readonly createdAt: string;
  /** Absent: does not expire. */
  readonly expiresAt?: string;
}

export interface CreateTokenInput {
  readonly name: string;
  readonly role: Role;
  readonly namespace?: string;
  readonly serviceAccount?: string;
  readonly ttlMs?: number;
}

export type CreateTokenResult = { ok: true; token: string; record: ApiTokenRecord } | { ok: false; message: string };

const NAME = /^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/;

export function checkTokenInput(v: Partial<Record<keyof CreateTokenInput, unknown>>): string | undefined {
  if (typeof v.name !== 'string' || !NAME.test(v.name)) return `name: must be a lowercase DNS label such as ci-viewer (got ${JSON.stringify(v.name)})`;
  if (typeof v.role !== 'string' || !ROLES.includes(v.role as Role)) return `role: must be one of ${ROLES.join(', ')} (got ${JSON.stringify(v.role)})`;
  if (v.role === 'registrar') {
    for (const f of ['namespace', 'serviceAccount'] as const) {
      if (typeof v[f] !== 'string' || !NAME.test(v[f] as string)) return `${f}: a registrar token is bound to one identity: a lowercase DNS label is required (got ${JSON.stringify(v[f])})`;
    }
  } else if (v.namespace !== undefined || v.serviceAccount !== undefined) {
    return `namespace/serviceAccount: only a registrar token is bound to an identity (role is ${v.role})`;
  }
  if (v.ttlMs !== undefined && (typeof v.ttlMs !== 'number' || !Number.isFinite(v.ttlMs) || v.ttlMs <= 0)) return 'ttl: must be a positive duration';
  return undefined;
}

export async function createApiToken(store: TokenStore, input: CreateTokenInput, now = Date.now()): Promise<CreateTokenResult> {
  const bad = checkTokenInput(input);
  if (bad) return { ok: false, message: bad };
  const token = `tat_${randomBytes(32).toString('base64url')}`;
  const hash = sha256Hex(token);
  const record: ApiTokenRecord = {
    id: hash.slice(0, 12),
    name: input.name,
    role: input.role,
    ...(input.role === 'registrar' ? { namespace: input.namespace!, serviceAccount: input.serviceAccount! } : {}),
    createdAt: new Date(now).toISOString(),
    ...(input.ttlMs === undefined ? {} : { expiresAt: new Date(now + input.ttlMs).toISOString() }),
  };
  await store.put(API_TOKEN_PREFIX + hash, JSON.stringify(record));
  return { ok: true, token, record };
}

export type VerifyApiTokenResult = { ok: true; record: ApiTokenRecord } | { ok: false; message: string };

export async function verifyApiToken(store: TokenStore, token: string, now = Date.now()): Promise<VerifyApiTokenResult> {
  if (!API_TOKEN_PATTERN.test(token)) return { ok: false, message: 'the bearer token is not a Trellis API token (tat_...)' };
  const kv = await store.get(API_TOKEN_PREFIX + sha256Hex(token));
  if (!kv) return { ok: false, message: 'unknown or revoked API token' };
  const record = JSON.parse(kv.value) as ApiTokenRecord;
  if (record.expiresAt !== undefined && Date.parse(record.expiresAt) <= now) return { ok: false, message: `API token "${record.name}" expired at ${record.expiresAt}` };
  return { ok: true, record };
}

export async function listApiTokens(store: TokenStore): Promise<ApiTokenRecord[]> {
  const { items } = await store.list(API_TOKEN_PREFIX);
  return items.map((kv) => JSON.parse(kv.value) as ApiTokenRecord).sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
}

/** Revoke by id (or a longer prefix of the hash); false when none matches. */
export async function revokeApiToken(store: TokenStore, id: string): Promise<ApiTokenRecord | undefined> {
  if (!/^[0-9a-f]{12,64}$/.test(id)) return undefined;
  const { items } = await store.list(API_TOKEN_PREFIX + id.slice(0, 12));
  const hit = items.find((kv) => kv.key.slice(API_TOKEN_PREFIX.length).startsWith(id));
  if (!hit) return undefined;
  await store.delete(hit.key);
  return JSON.parse(hit.value) as ApiTokenRecord;
}

export type BootstrapResult =
  | { created: true; file: string }
  | { created: false; reason: 'admin_exists' | 'other_replica' };

/** Mint the first admin token into `<dataDir>/admin-token` unless an admin
 * token exists (or another replica already did). */
export async function ensureBootstrapAdmin(store: TokenStore, dataDir: string, replica: string): Promise<BootstrapResult> {
  if ((await listApiTokens(store)).some((t) => t.role === 'admin')) return { created: false, reason: 'admin_exists' };
  const marker = await store.put(BOOTSTRAP_MARKER_KEY, JSON.stringify({ replica, at: new Date().toISOString() }), { expectModRevision: 0 });
  if (!marker.ok) return { created: false, reason: 'other_replica' };
  const made = await createApiToken(store, { name: 'bootstrap-admin', role: 'admin' });
  if (!made.ok) throw new Error(made.message);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
  const file = path.join(dataDir, ADMIN_TOKEN_FILE);
  writeFileSync(file, `${made.token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { created: true, file };
}
