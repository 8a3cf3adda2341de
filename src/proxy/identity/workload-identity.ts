// The proxy's workload identity: a key generated locally, a certificate from
// the control plane's CA, and the mesh trust bundle; renewed at about half
// the certificate's lifetime (with jitter, so a fleet does not renew in
// lockstep) and retried with backoff until it expires.
//
// Rotation never drops a connection: each credential set is an immutable
// `Credentials` value with its own tls.SecureContext; `current()` switches
// to the new one atomically. New TLS handshakes (server and client) use the
// new context; established connections keep theirs until they close.
// Listeners subscribe with `onChange` (tls.Server#setSecureContext); upstream
// TLS options read `current()` at each connect (see tls/upstream-tls.ts).
//
// Root rollover: the CA lists its active (issuing) root first in the trust
// bundle. When a bundle arrives whose first root is not the one our
// certificate chains to (the CA activated a new root), the certificate is
// renewed within `rolloverWindowMs` (a random point, so a fleet spreads
// out), and the old root can then be retired without breaking us.
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { generateKeyAndCsr } from './csr.ts';
import type { CaClient } from './ca-client.ts';
import { backoffDelay, RECONNECT_BACKOFF } from '../../lib/backoff.ts';

export interface Credentials {
  readonly spiffeId: string;
  readonly privateKeyPem: string;
  /** Leaf first, then the intermediate(s). */
  readonly certificateChain: string;
  readonly trustBundle: string;
  readonly notBefore: Date;
  readonly expiresAt: Date;
  /** SHA-256 fingerprint of the bundle root the chain leads to (undefined: none in the bundle). */
  readonly root: string | undefined;
  /** key + chain + trust bundle, TLS 1.3 only: for clients and servers. */
  readonly secureContext: tls.SecureContext;
  /** The same material as options, for tls.Server#setSecureContext. */
  readonly contextOptions: tls.SecureContextOptions;
}

export type IdentityStartResult = { ok: true; credentials: Credentials } | { ok: false; code: string; message: string };

export interface WorkloadIdentityOptions {
  readonly ca: CaClient;
  /** Wall clock (ms); Date.now by default. */
  readonly now?: () => number;
  /** Uniform in [0, 1); Math.random by default. */
  readonly random?: () => number;
  /** Renew at this fraction of the lifetime, plus up to `jitter` more. Default 0.5 + 0.1. */
  readonly renewAt?: number;
  readonly jitter?: number;
  /** Re-fetch the trust bundle this often (a bootstrap path besides xDS). Default 5 min; 0 = never. */
  readonly bundlePollMs?: number;
  /** When the bundle's active root is not our certificate's, renew within this long. Default 10 s. */
  readonly rolloverWindowMs?: number;
  readonly log?: (event: string, fields?: Record<string, unknown>) => void;
}

export interface WorkloadIdentity {
  /** Fetch the first certificate (retrying transient failures up to `timeoutMs`). */
  start(opts?: { timeoutMs?: number }): Promise<IdentityStartResult>;
  current(): Credentials | undefined;
  /** Called after every change (rotation or a new trust bundle). */
  onChange(cb: (c: Credentials) => void): () => void;
  /** Replace the trust bundle (from the xDS Secret); keeps the certificate. */
  setTrustBundle(pem: string): void;
  /** Renew now (`POST /identity/renew` on the admin listener, `trellis identity renew`). */
  rotateNow(): Promise<IdentityStartResult>;
  /** What `/identity` on the admin listener shows. */
  describe(): IdentityReport;
  stop(): void;
}

export interface IdentityReport {
  readonly spiffeId: string | null;
  readonly notBefore: string | null;
  readonly expiresAt: string | null;
  readonly renewAt: string | null;
  readonly rotations: number;
  readonly lastError: string | null;
  /** The root the certificate chains to, and whether it is the bundle's active (first) root. */
  readonly root: string | null;
  readonly rootActive: boolean;
  readonly trustBundle: readonly { readonly fingerprint: string; readonly subject: string; readonly notAfter: string }[];
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The bundle root that issued the last certificate of `chain`, by fingerprint. */
export function chainRoot(chain: string, bundle: string): string | undefined {
  const blocks = chain.match(PEM_BLOCK) ?? [];
  const top = blocks.length > 0 ? new X509Certificate(blocks[blocks.length - 1]!) : undefined;
  if (!top) return undefined;
  for (const b of bundle.match(PEM_BLOCK) ?? []) {
    const root = new X509Certificate(b);
    if (root.fingerprint256 === top.fingerprint256 || (top.checkIssued(root) && top.verify(root.publicKey))) return root.fingerprint256.toLowerCase();
  }
  return undefined;
}

/** The bundle's active root: the CA lists it first. */
function activeRoot(bundle: string): string | undefined {
  const first = (bundle.match(PEM_BLOCK) ?? [])[0];
  return first ? new X509Certificate(first).fingerprint256.toLowerCase() : undefined;
}

export function buildCredentials(privateKeyPem: string, certificateChain: string, trustBundle: string): Credentials {
  const leaf = new X509Certificate(certificateChain);
  const uris = (leaf.subjectAltName ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
  const contextOptions: tls.SecureContextOptions = { key: privateKeyPem, cert: certificateChain, ca: trustBundle, minVersion: 'TLSv1.3' };
  return {
    spiffeId: uris[0] ?? '',
    privateKeyPem,
    certificateChain,
    trustBundle,
    notBefore: new Date(leaf.validFrom),
    expiresAt: new Date(leaf.validTo),
    root: chainRoot(certificateChain, trustBundle),
    secureContext: tls.createSecureContext(contextOptions),
    contextOptions,
  };
}

export function bundleFingerprints(pem: string): IdentityReport['trustBundle'] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => {
    const c = new X509Certificate(b);
    return { fingerprint: c.fingerprint256.toLowerCase(), subject: c.subject.replace(/\n/g, ', '), notAfter: new Date(c.validTo).toISOString() };
  });
}

export function createWorkloadIdentity(opts: WorkloadIdentityOptions): WorkloadIdentity {
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const renewAt = opts.renewAt ?? 0.5;
  const jitter = opts.jitter ?? 0.1;
  const log = opts.log ?? (() => {});
  const listeners = new Set<(c: Credentials) => void>();
  let creds: Credentials | undefined;
  let renewTimer: NodeJS.Timeout | undefined;
  let bundleTimer: NodeJS.Timeout | undefined;
  let renewAtMs: number | null = null;
  let rotations = 0;
  let lastError: string | null = null;
  let stopped = false;
  let inflight: Promise<IdentityStartResult> | undefined;

  const publish = (c: Credentials): void => {
    creds = c;
    for (const cb of listeners) {
      try {
        cb(c);
      } catch (err) {
        log('identity_listener_failed', { error: (err as Error).message });
      }
    }
  };

  /** A new key and certificate: renewed with `current` (proof of possession,
   * no join token spent) when given, else with the join token. */
  const fetchOnce = async (current?: Credentials): Promise<IdentityStartResult & { retryable?: boolean }> => {
    const key = await generateKeyAndCsr();
    let r = await opts.ca.requestCertificate(key.csrPem, current);
    // The current certificate no longer proves anything (expired, a retired
    // root): the join token, if it is still good.
    if (!r.ok && current && !r.retryable) r = await opts.ca.requestCertificate(key.csrPem);
    if (!r.ok) return { ok: false, code: r.code, message: r.message, retryable: r.retryable };
    try {
      return { ok: true, credentials: buildCredentials(key.privateKeyPem, r.value.certificateChain, r.value.trustBundle) };
    } catch (err) {
      return { ok: false, code: 'BAD_CERTIFICATE', message: `the CA's answer does not load: ${(err as Error).message}`, retryable: true };
    }
  };

  const schedule = (c: Credentials): void => {
    clearTimeout(renewTimer);
    if (stopped) return;
    // From when we received it: CAs backdate notBefore for clock skew.
    const from = Math.max(c.notBefore.getTime(), now());
    const life = Math.max(0, c.expiresAt.getTime() - from);
    renewAtMs = from + life * (renewAt + jitter * random());
    renewTimer = setTimeout(() => void renew(0), Math.max(0, renewAtMs - now()));
    renewTimer.unref();
  };

  /** A new active root: renew at a random point of the rollover window (unless sooner anyway). */
  const rollover = (c: Credentials): void => {
    const active = activeRoot(c.trustBundle);
    if (stopped || active === undefined || c.root === active) return;
    const at = now() + (opts.rolloverWindowMs ?? 10_000) * random();
    if (renewAtMs !== null && renewAtMs <= at) return;
    log('identity_root_rollover', { root: c.root ?? null, active, renewInMs: Math.round(at - now()) });
    clearTimeout(renewTimer);
    renewAtMs = at;
    renewTimer = setTimeout(() => void renew(0), Math.max(0, at - now()));
    renewTimer.unref();
  };

  const renew = async (attempt: number): Promise<void> => {
    if (stopped) return;
    const r = await rotate();
    if (r.ok || stopped) return;
    const delay = backoffDelay(attempt, RECONNECT_BACKOFF, random);
    renewTimer = setTimeout(() => void renew(attempt + 1), delay);
    renewTimer.unref();
  };

  const rotate = (): Promise<IdentityStartResult> => {
    inflight ??= (async () => {
      const r = await fetchOnce(creds);
      if (r.ok) {
        rotations++;
        lastError = null;
        log('identity_issued', { spiffeId: r.credentials.spiffeId, expiresAt: r.credentials.expiresAt.toISOString() });
        publish(r.credentials);
        schedule(r.credentials);
        return { ok: true, credentials: r.credentials } as const;
      }
      lastError = `${r.code}: ${r.message}`;
      log('identity_renew_failed', { code: r.code, error: r.message });
      return { ok: false, code: r.code, message: r.message } as const;
    })().finally(() => {
      inflight = undefined;
    });
    return inflight;
  };

  const pollBundle = (): void => {
    const every = opts.bundlePollMs ?? 300_000;
    if (every <= 0 || stopped) return;
    bundleTimer = setTimeout(async () => {
      const r = await opts.ca.fetchTrustBundle();
      if (r.ok) identity.setTrustBundle(r.value);
      pollBundle();
    }, every);
    bundleTimer.unref();
  };

  const identity: WorkloadIdentity = {
    async start({ timeoutMs = 30_000 } = {}) {
      const deadline = now() + timeoutMs;
      for (let attempt = 0; ; attempt++) {
        const r = await fetchOnce();
        if (r.ok) {
          rotations++;
          publish(r.credentials);
          schedule(r.credentials);
          pollBundle();
          return { ok: true, credentials: r.credentials };
        }
        lastError = `${r.code}: ${r.message}`;
        const delay = backoffDelay(attempt, RECONNECT_BACKOFF, random);
        if (!r.retryable || stopped || now() + delay > deadline) return { ok: false, code: r.code, message: r.message };
        await new Promise((res) => setTimeout(res, delay));
      }
    },
    current: () => creds,
    onChange(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    setTrustBundle(pem) {
      if (!creds || pem === creds.trustBundle || pem.trim() === '') return;
      try {
        const next = buildCredentials(creds.privateKeyPem, creds.certificateChain, pem);
        publish(next);
        log('trust_bundle_updated', { roots: bundleFingerprints(pem).length });
        rollover(next);
      } catch (err) {
        log('trust_bundle_rejected', { error: (err as Error).message });
      }
    },
    rotateNow: () => rotate(),
    describe: () => ({
      spiffeId: creds?.spiffeId ?? null,
      notBefore: creds?.notBefore.toISOString() ?? null,
      expiresAt: creds?.expiresAt.toISOString() ?? null,
      renewAt: renewAtMs === null ? null : new Date(renewAtMs).toISOString(),
      rotations,
      lastError,
      root: creds?.root ?? null,
      rootActive: creds !== undefined && creds.root !== undefined && creds.root === activeRoot(creds.trustBundle),
      trustBundle: creds ? bundleFingerprints(creds.trustBundle) : [],
    }),
    stop() {
      stopped = true;
      clearTimeout(renewTimer);
      clearTimeout(bundleTimer);
    },
  };
  return identity;
}
