// JSON Web Key Sets for JWT verification: inline, from a file, or from an
// HTTP(S) URL. Remote and file sets are cached, refreshed when their cache
// duration passes (in the background: the old keys keep serving), and
// fetched again when a token names a `kid` the set does not have (at most
// once per `minRefreshIntervalMs`). Failed fetches back off exponentially
// (`backoffBaseMs` doubling up to `backoffMaxMs`); until a set has loaded
// once, verification fails with JWKS_UNAVAILABLE.
//
// One JwksStore lives as long as the proxy: sources are keyed by where they
// come from, so a config swap keeps their keys; `retain` drops the ones no
// config names any more.
import { createHash, createPublicKey, type JsonWebKeyInput, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { JwksSourceSpec } from './config/envoy-jwt.ts';

export const MAX_JWKS_BYTES = 1 << 20;

export interface JwksKey {
  readonly kid?: string;
  readonly alg?: string;
  readonly key: KeyObject;
}

export type KeyLookup =
  | { ok: true; keys: readonly JwksKey[] }
  | { ok: false; code: 'JWT_UNKNOWN_KID' | 'JWKS_UNAVAILABLE'; detail: string };

export interface JwksOptions {
  /** Extra CA certificates (PEM) trusted for HTTPS JWKS URLs. */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** Unknown-kid refetch throttle. Default 5 s. */
  readonly minRefreshIntervalMs?: number;
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  readonly log?: (event: string, fields?: Record<string, unknown>) => void;
  readonly now?: () => number;
}

export interface JwksSource {
  /** Keys usable for a token with this `kid` (all keys when it has none). */
  find(kid: string | undefined): Promise<KeyLookup>;
  /** Fetches completed (successes and failures), for tests and /stats. */
  readonly fetches: number;
}

/** Parse a JWKS document; keys of unsupported types are skipped. */
export function parseJwks(text: string): { ok: true; keys: JwksKey[] } | { ok: false; error: string } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { ok: false, error: 'not JSON' };
  }
  const list = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) return { ok: false, error: 'no "keys" list' };
  const keys: JwksKey[] = [];
  for (const k of list as Record<string, unknown>[]) {
    if (typeof k !== 'object' || k === null) continue;
    if (k.use !== undefined && k.use !== 'sig') continue;
    if (k.kty !== 'RSA' && !(k.kty === 'EC' && k.crv === 'P-256')) continue;
    try {
      const key = createPublicKey({ key: k as unknown as JsonWebKeyInput['key'], format: 'jwk' });
      keys.push({ key, ...(typeof k.kid === 'string' ? { kid: k.kid } : {}), ...(typeof k.alg === 'string' ? { alg: k.alg } : {}) });
    } catch {
      // a malformed key is skipped, as Envoy does
    }
  }
  if (keys.length === 0) return { ok: false, error: 'no usable RSA or P-256 signing keys' };
  return { ok: true, keys };
}

export class JwksStore {
  private readonly opts: JwksOptions;
  private readonly sources = new Map<string, CachedSource>();

  constructor(opts: JwksOptions = {}) {
    this.opts = opts;
  }

  static keyOf(spec: JwksSourceSpec): string {
    if (spec.kind === 'remote') return `remote:${spec.uri}`;
    if (spec.kind === 'file') return `file:${spec.path}`;
    return `inline:${createHash('sha256').update(spec.json).digest('hex')}`;
  }

  /** The source for `spec` (the same object for the same origin). */
  source(spec: JwksSourceSpec): JwksSource {
    const key = JwksStore.keyOf(spec);
    let s = this.sources.get(key);
    if (!s) {
      s = new CachedSource(spec, this.opts);
      this.sources.set(key, s);
    } else s.update(spec);
    return s;
  }

  /** Drop (and stop refreshing) sources whose keys are not listed. */
  retain(keys: ReadonlySet<string>): void {
    for (const [k, s] of this.sources) {
      if (keys.has(k)) continue;
      s.close();
      this.sources.delete(k);
    }
  }

  close(): void {
    this.retain(new Set());
  }
}

class CachedSource implements JwksSource {
  private spec: JwksSourceSpec;
  private readonly opts: JwksOptions;
  private keys: readonly JwksKey[] | undefined;
  private lastError = 'not loaded yet';
  private fetchedAt = -Infinity;
  private lastAttempt = -Infinity;
  private failures = 0;
  private inflight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  fetches = 0;

  constructor(spec: JwksSourceSpec, opts: JwksOptions) {
    this.spec = spec;
    this.opts = opts;
    if (spec.kind === 'inline') {
      const r = parseJwks(spec.json);
      if (r.ok) this.keys = r.keys;
      else this.lastError = r.error;
    } else {
      void this.refresh(); // prefetch: the first request should not wait
    }
  }

  update(spec: JwksSourceSpec): void {
    this.spec = spec; // same origin; timeout or cache duration may change
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : Date.now();
  }

  private backoffMs(): number {
    if (this.failures === 0) return 0;
    const base = this.opts.backoffBaseMs ?? 1000;
    return Math.min(this.opts.backoffMaxMs ?? 60_000, base * 2 ** Math.min(this.failures - 1, 16));
  }

  private canFetch(): boolean {
    return !this.closed && this.now() - this.lastAttempt >= this.backoffMs();
  }

  private refresh(): Promise<void> {
    if (this.inflight) return this.inflight;
    if (!this.canFetch()) return Promise.resolve();
    this.lastAttempt = this.now();
    const p = this.load()
      .then((text) => {
        const r = parseJwks(text);
        if (!r.ok) throw new Error(`invalid JWKS: ${r.error}`);
        this.keys = r.keys;
        this.fetchedAt = this.now();
        this.failures = 0;
        this.opts.log?.('jwks_fetched', { source: this.describe(), keys: r.keys.length });
      })
      .catch((err: unknown) => {
        this.failures++;
        this.lastError = (err as Error).message;
        this.opts.log?.('jwks_fetch_failed', { source: this.describe(), error: this.lastError, retryInMs: this.backoffMs() });
      })
      .finally(() => {
        this.fetches++;
        this.inflight = undefined;
        this.schedule();
      });
    this.inflight = p;
    return p;
  }

  /** Next background refresh: at the cache expiry, or after the backoff. */
  private schedule(): void {
    if (this.closed || this.spec.kind !== 'remote') return;
    clearTimeout(this.timer);
    const delay = this.failures > 0 ? this.backoffMs() : this.spec.cacheMs;
    this.timer = setTimeout(() => void this.refresh(), delay);
    this.timer.unref();
  }

  private describe(): string {
    return this.spec.kind === 'remote' ? this.spec.uri : this.spec.kind === 'file' ? this.spec.path : 'inline';
  }

  private load(): Promise<string> {
    const spec = this.spec;
    if (spec.kind === 'file') return readFile(spec.path, 'utf8');
    if (spec.kind === 'inline') return Promise.resolve(spec.json);
    return fetchText(spec.uri, spec.timeoutMs, this.opts.ca);
  }

  async find(kid: string | undefined): Promise<KeyLookup> {
    if (!this.keys) await this.refresh();
    if (!this.keys) return { ok: false, code: 'JWKS_UNAVAILABLE', detail: `JWKS ${this.describe()} unavailable: ${this.lastError}` };
    let hit = select(this.keys, kid);
    if (hit.length === 0 && this.spec.kind !== 'inline' && this.now() - this.fetchedAt >= (this.opts.minRefreshIntervalMs ?? 5000)) {
      await this.refresh();
      hit = select(this.keys, kid);
    }
    if (hit.length === 0) return { ok: false, code: 'JWT_UNKNOWN_KID', detail: `no key with kid ${JSON.stringify(kid ?? null)}` };
    return { ok: true, keys: hit };
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }
}

function select(keys: readonly JwksKey[], kid: string | undefined): JwksKey[] {
  return kid === undefined ? [...keys] : keys.filter((k) => k.kid === kid);
}

function fetchText(uri: string, timeoutMs: number, ca: JwksOptions['ca']): Promise<string> {
  return new Promise((resolve, reject) => {
    const url = new URL(uri);
    const https = url.protocol === 'https:';
    const opts = { method: 'GET', headers: { accept: 'application/json' }, timeout: timeoutMs, ...(https && ca !== undefined ? { ca: ca as string | Buffer | (string | Buffer)[] } : {}) };
    const req = (https ? httpsRequest : httpRequest)(url, opts, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`HTTP ${res.statusCode ?? '?'} from ${uri}`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_JWKS_BYTES) {
          req.destroy(new Error(`JWKS larger than ${MAX_JWKS_BYTES} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
