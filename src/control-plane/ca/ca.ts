// The mesh certificate authority. A root (ECDSA P-256, 10 years) is made on
// first start and kept in the store under /trellis/ca/state together with an
// intermediate (1 year) that signs workload certificates (24 h by default).
// The private keys sit in the store: acceptable for the embedded store on the
// control plane's own disk; an operator who wants the root key elsewhere
// passes `operatorCa` (`--ca-cert/--ca-key` files): that CA signs the
// intermediate and its key never enters the store. The operator CA may itself
// be an intermediate under an offline root: its chain up to the root comes
// with it (`--ca-cert` holding the chain, or `--ca-root`); the self-signed
// root is then the bundle's trust anchor (its certificate only) and every
// workload chain carries the CAs between the leaf and that root.
//
// signCsr(): the caller authenticates with a join token (spending one of its
// uses), or renews: it presents its current certificate chain and a
// signature over the CSR made with that certificate's key (proof of
// possession), and gets the same identity again. The CSR's signature is
// verified, its key must be P-256, and the issued SPIFFE ID is the
// token's or the certificate's: a CSR naming any other identity is refused
// (IDENTITY_MISMATCH).
//
// Root rotation keeps traffic flowing with an overlap, in three steps:
//   stageRoot()     a new root joins the trust bundle; issuing is unchanged.
//                   Proxies pick the bundle up (xDS Secret, or with their
//                   next certificate / bundle poll).
//   activateRoot()  a new intermediate under the new root issues from now
//                   on; the old root stays in the bundle, so certificates it
//                   issued keep verifying until they expire.
//   retireRoot()    the old root leaves the bundle; refused while a live
//                   proxy still holds a certificate chaining to it
//                   (`force` overrides).
// The bundle lists the active (issuing) root first: a proxy whose
// certificate chains to another root renews onto the active one when a new
// bundle arrives (proxy/identity/workload-identity.ts). Every issuance is
// recorded under /trellis/ca/issued/<namespace>/<workload> (SPIFFE ID, root,
// serial, expiry): `holders()` says which workloads still depend on a root.
import type { Store } from '../store/types.ts';
import * as x509 from '../../lib/x509.ts';
import { controlPlaneSpiffeId, spiffeIdFor, isValidTrustDomain } from '../../lib/spiffe.ts';
import {
  createIntermediate, createRoot, fingerprint, generateKeyPair, importKeyPair, keyMatches, notAfterOf, operatorPath, signServing, signWorkload, splitPem,
} from './pki.ts';
import { spkiPin } from '../../lib/ca-pin.ts';
import {
  consumeJoinToken, listJoinTokens, mintJoinToken, revokeJoinToken, revokeJoinTokenById, verifyJoinToken,
  type JoinTokenBinding, type JoinTokenRecord, type MintResult, type VerifyTokenResult,
} from './join-tokens.ts';
import { verify as verifySignature, X509Certificate as NodeX509 } from 'node:crypto';

export const CA_STATE_KEY = '/trellis/ca/state';
export const ISSUED_PREFIX = '/trellis/ca/issued/';
export const DEFAULT_WORKLOAD_TTL_MS = 24 * 3600_000;
export const DEFAULT_ROOT_TTL_MS = 10 * 365 * 24 * 3600_000;
export const DEFAULT_INTERMEDIATE_TTL_MS = 365 * 24 * 3600_000;

export type CaStore = Pick<Store, 'get' | 'put' | 'delete' | 'list'>;

interface RootRecord {
  certPem: string;
  /** Absent for an operator-supplied CA (its key is never stored). */
  keyPem?: string;
  /** staged: in the bundle, not issuing; active: issuing; retired roots are removed. */
  state: 'staged' | 'active' | 'previous';
  addedAt: string;
}

interface CaState {
  version: 1;
  trustDomain: string;
  roots: RootRecord[];
  intermediate: {
    certPem: string; keyPem: string; rootFingerprint: string;
    /** The operator CAs between this intermediate and the root (PEM, issuer
     * of this intermediate first); absent when the root signed it. */
    chainPem?: string;
  };
}

export interface CaOptions {
  readonly store: CaStore;
  readonly trustDomain: string;
  /** Wall clock in ms (Date.now by default). */
  readonly now?: () => number;
  readonly workloadTtlMs?: number;
  readonly rootTtlMs?: number;
  readonly intermediateTtlMs?: number;
  /** An operator's CA used instead of a generated root: `certPem` is the CA
   * whose PKCS#8 key is `keyPem`, optionally followed by its chain up to the
   * root; `rootPem` may hold the root (and chain) separately. Only the
   * operator CA's key is needed: the root's stays offline. */
  readonly operatorCa?: { readonly certPem: string; readonly keyPem: string; readonly rootPem?: string };
  /** Checks the CSR's bearer credential instead of join tokens (Kubernetes
   * mode: kubernetes/token-review.ts); join tokens are then not minted. */
  readonly authenticate?: (token: string | undefined) => Promise<{ ok: true; binding: JoinTokenBinding } | { ok: false; code: 'UNAUTHENTICATED' | 'UNAVAILABLE'; message: string }>;
}

export type SignErrorCode = 'UNAUTHENTICATED' | 'UNAVAILABLE' | 'INVALID_CSR' | 'IDENTITY_MISMATCH';

/** Renewal: the current chain (leaf first) and an ECDSA-SHA256 signature
 * (base64, DER) over the CSR's PEM text with the current key. */
export interface RenewalProof {
  readonly certificateChain: string;
  readonly signature: string;
}

export type WorkloadCertificateResult =
  | { ok: true; spiffeId: string; namespace: string; serviceAccount: string; leaf: NodeX509 }
  | { ok: false; code: 'UNAUTHENTICATED'; message: string };

export type SignResult =
  | { ok: true; spiffeId: string; certificateChain: string; trustBundle: string; expiresAt: string }
  | { ok: false; code: SignErrorCode; message: string };

export interface TrustBundle {
  /** Concatenated PEM roots. */
  readonly pem: string;
  readonly roots: readonly { readonly fingerprint: string; readonly state: RootRecord['state']; readonly notAfter: string }[];
}

export interface CaStatus {
  readonly trustDomain: string;
  readonly bundle: TrustBundle;
  readonly intermediate: { readonly fingerprint: string; readonly notAfter: string; readonly rootFingerprint: string };
  readonly operatorSupplied: boolean;
}

/** The certificate a workload was last issued: which root it chains to. */
export interface IssuedRecord {
  readonly namespace: string;
  readonly workload: string;
  readonly spiffeId: string;
  readonly serial: string;
  readonly rootFingerprint: string;
  readonly issuedAt: string;
  readonly notAfter: string;
}

export type RetireResult =
  | { ok: true }
  | { ok: false; code: 'NOT_PREVIOUS'; message: string }
  | { ok: false; code: 'IN_USE'; message: string; holders: IssuedRecord[] };

export interface CertificateAuthority {
  readonly trustDomain: string;
  trustBundle(): TrustBundle;
  status(): CaStatus;
  signCsr(csrPem: string, opts: { credentials: { joinToken?: string; renewal?: RenewalProof } }): Promise<SignResult>;
  createJoinToken(binding: JoinTokenBinding, opts?: { ttlMs?: number; maxUses?: number }): Promise<MintResult>;
  revokeJoinToken(token: string): Promise<boolean>;
  /** A token without spending a use (registration under its identity). */
  verifyJoinToken(token: string): Promise<VerifyTokenResult>;
  listJoinTokens(): Promise<(JoinTokenRecord & { id: string })[]>;
  revokeJoinTokenById(id: string): Promise<JoinTokenRecord | undefined>;
  /** A workload certificate chain that verifies to the bundle now, and its identity. */
  verifyWorkloadCertificate(chainPem: string): WorkloadCertificateResult;
  /** Step 1 of root rotation; returns the new root's fingerprint. */
  stageRoot(): Promise<string>;
  /** Step 2: issue under the staged root from now on. */
  activateRoot(): Promise<void>;
  /** Step 3: drop a previous root from the bundle. Refused (IN_USE) while a
   * holder `blocks` says is live (default: every unexpired one) still holds a
   * certificate chaining to it, unless `force`. */
  retireRoot(fingerprint: string, opts?: { force?: boolean; blocks?: (r: IssuedRecord) => boolean }): Promise<RetireResult>;
  /** The last unexpired certificate of every workload, optionally only those under `rootFingerprint`. */
  holders(rootFingerprint?: string): Promise<IssuedRecord[]>;
  rotateIntermediate(): Promise<void>;
  /** Re-read the state (another replica rotated). */
  reload(): Promise<void>;
  /** The control plane's own serving certificate (a fresh key each time):
   * its API and xDS listeners, and the injection webhook. */
  issueServingCertificate(sans: { dnsNames: readonly string[]; ipAddresses: readonly string[] }, ttlMs?: number): Promise<ServingCertificate>;
  /** `sha256:<hex>` of the active root's public key: what join tokens pin. */
  caPin(): string;
}

export interface ServingCertificate {
  readonly spiffeId: string;
  readonly privateKeyPem: string;
  /** Leaf then intermediate. */
  readonly certificateChain: string;
  readonly trustBundle: string;
  readonly notAfter: Date;
}

export const DEFAULT_SERVING_TTL_MS = 24 * 3600_000;

export type StartCaResult = { ok: true; ca: CertificateAuthority } | { ok: false; code: 'INVALID_ARGUMENT'; message: string };

export async function startCertificateAuthority(opts: CaOptions): Promise<StartCaResult> {
  if (!isValidTrustDomain(opts.trustDomain)) {
    return { ok: false, code: 'INVALID_ARGUMENT', message: `trustDomain: must be a lowercase DNS-like name (got ${JSON.stringify(opts.trustDomain)})` };
  }
  const now = opts.now ?? Date.now;
  const workloadTtl = opts.workloadTtlMs ?? DEFAULT_WORKLOAD_TTL_MS;
  const store = opts.store;
  let operatorKey: CryptoKey | undefined;
  /** The operator CA first, its self-signed root last. */
  let operator: string[] = [];
  if (opts.operatorCa) {
    try {
      const found = operatorPath([...splitPem(opts.operatorCa.certPem), ...splitPem(opts.operatorCa.rootPem ?? '')]);
      if (!found.ok) return { ok: false, code: 'INVALID_ARGUMENT', message: `caCert: ${found.message}` };
      operator = found.path;
      const kp = await importKeyPair(opts.operatorCa.keyPem, operator[0]!);
      if (!(await keyMatches(kp))) return { ok: false, code: 'INVALID_ARGUMENT', message: 'caKey: the key does not belong to the first certificate of caCert' };
      operatorKey = kp.privateKey;
    } catch (err) {
      return { ok: false, code: 'INVALID_ARGUMENT', message: `caCert/caKey: cannot load the operator CA: ${(err as Error).message} (an ECDSA P-256 certificate and PKCS#8 key are required)` };
    }
  }

  const newIntermediate = async (root: RootRecord): Promise<CaState['intermediate']> => {
    // A root without a key is the operator's: its CA (maybe an intermediate under it) signs.
    const issuerKey = root.keyPem ? (await importKeyPair(root.keyPem, root.certPem)).privateKey : operatorKey!;
    const issuerCertPem = root.keyPem ? root.certPem : operator[0]!;
    const between = root.keyPem ? [] : operator.slice(0, -1);
    const kp = await generateKeyPair();
    const certPem = await createIntermediate({
      trustDomain: opts.trustDomain, now: new Date(now()), ttlMs: opts.intermediateTtlMs ?? DEFAULT_INTERMEDIATE_TTL_MS,
      keys: kp.keys, issuerCertPem, issuerKey,
    });
    return {
      certPem, keyPem: kp.privateKeyPem, rootFingerprint: fingerprint(root.certPem),
      ...(between.length > 0 ? { chainPem: between.map((c) => c.trimEnd() + '\n').join('') } : {}),
    };
  };
  const newRoot = async (state: RootRecord['state']): Promise<RootRecord> => {
    const kp = await generateKeyPair();
    const certPem = await createRoot({ trustDomain: opts.trustDomain, now: new Date(now()), ttlMs: opts.rootTtlMs ?? DEFAULT_ROOT_TTL_MS, keys: kp.keys });
    return { certPem, keyPem: kp.privateKeyPem, state, addedAt: new Date(now()).toISOString() };
  };

  // Load or create (first start). Two replicas racing: the loser re-reads.
  let state: CaState;
  let modRevision = 0;
  const load = async (): Promise<boolean> => {
    const kv = await store.get(CA_STATE_KEY);
    if (!kv) return false;
    state = JSON.parse(kv.value) as CaState;
    modRevision = kv.modRevision;
    return true;
  };
  if (!(await load())) {
    const root: RootRecord = opts.operatorCa
      ? { certPem: operator[operator.length - 1]!, state: 'active', addedAt: new Date(now()).toISOString() }
      : await newRoot('active');
    const initial: CaState = { version: 1, trustDomain: opts.trustDomain, roots: [root], intermediate: await newIntermediate(root) };
    const r = await store.put(CA_STATE_KEY, JSON.stringify(initial), { expectModRevision: 0 });
    if (r.ok) {
      state = initial;
      modRevision = r.revision;
    } else if (!(await load())) {
      throw new Error('CA state: lost a creation race but found no state');
    }
  }
  if (state!.trustDomain !== opts.trustDomain) {
    return { ok: false, code: 'INVALID_ARGUMENT', message: `trustDomain: the store's CA is for "${state!.trustDomain}", not "${opts.trustDomain}" (a trust domain cannot change in place)` };
  }

  let signer: { certPem: string; key: CryptoKey } | undefined;
  const signingKey = async (): Promise<{ certPem: string; key: CryptoKey }> => {
    if (!signer || signer.certPem !== state.intermediate.certPem) {
      const kp = await importKeyPair(state.intermediate.keyPem, state.intermediate.certPem);
      signer = { certPem: state.intermediate.certPem, key: kp.privateKey };
    }
    return signer;
  };

  const save = async (next: CaState): Promise<void> => {
    const r = await store.put(CA_STATE_KEY, JSON.stringify(next), { expectModRevision: modRevision });
    if (!r.ok) throw new Error('CA state changed concurrently (another replica rotated): reload and retry');
    state = next;
    modRevision = r.revision;
  };

  // Active first (proxies read the first root as the issuing one), then staged, then previous.
  const ORDER: Record<RootRecord['state'], number> = { active: 0, staged: 1, previous: 2 };
  const bundle = (): TrustBundle => {
    const roots = [...state.roots].sort((a, b) => ORDER[a.state] - ORDER[b.state]);
    return {
      pem: roots.map((r) => r.certPem.trimEnd() + '\n').join(''),
      roots: roots.map((r) => ({ fingerprint: fingerprint(r.certPem), state: r.state, notAfter: notAfterOf(r.certPem).toISOString() })),
    };
  };

  const holders = async (root?: string): Promise<IssuedRecord[]> => {
    const out: IssuedRecord[] = [];
    for (const kv of (await store.list(ISSUED_PREFIX)).items) {
      try {
        const r = JSON.parse(kv.value) as IssuedRecord;
        if (Date.parse(r.notAfter) > now() && (root === undefined || r.rootFingerprint === root)) out.push(r);
      } catch {
        // a damaged record says nothing
      }
    }
    return out;
  };

  const ca: CertificateAuthority = {
    trustDomain: opts.trustDomain,
    trustBundle: bundle,
    status: () => ({
      trustDomain: opts.trustDomain,
      bundle: bundle(),
      intermediate: {
        fingerprint: fingerprint(state.intermediate.certPem),
        notAfter: notAfterOf(state.intermediate.certPem).toISOString(),
        rootFingerprint: state.intermediate.rootFingerprint,
      },
      operatorSupplied: opts.operatorCa !== undefined,
    }),

    async signCsr(csrPem, { credentials }) {
      let b: { namespace: string; serviceAccount: string; workload: string };
      if (credentials.renewal && credentials.joinToken === undefined) {
        const cert = ca.verifyWorkloadCertificate(credentials.renewal.certificateChain);
        if (!cert.ok) return cert;
        let proven = false;
        try {
          proven = verifySignature('sha256', Buffer.from(csrPem), cert.leaf.publicKey, Buffer.from(credentials.renewal.signature, 'base64'));
        } catch {
          proven = false;
        }
        if (!proven) return { ok: false, code: 'UNAUTHENTICATED', message: 'renewal: the signature over the CSR was not made with the key of the certificate presented' };
        // The workload it was issued to (holders() tracks workloads): the issuance record with its serial.
        const serial = new x509.X509Certificate(cert.leaf.raw).serialNumber.toLowerCase();
        const issued = (await store.list(`${ISSUED_PREFIX}${cert.namespace}/`)).items
          .map((kv) => JSON.parse(kv.value) as IssuedRecord)
          .find((r) => r.serial === serial);
        b = { namespace: cert.namespace, serviceAccount: cert.serviceAccount, workload: issued?.workload ?? cert.serviceAccount };
      } else {
        const auth = opts.authenticate ? await opts.authenticate(credentials.joinToken) : await consumeJoinToken(store, credentials.joinToken, now());
        if (!auth.ok) return auth;
        b = auth.binding;
      }
      let csr: x509.Pkcs10CertificateRequest;
      try {
        csr = new x509.Pkcs10CertificateRequest(csrPem);
      } catch (err) {
        return { ok: false, code: 'INVALID_CSR', message: `csr: not a PEM PKCS#10 request (${(err as Error).message})` };
      }
      const alg = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
      if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
        return { ok: false, code: 'INVALID_CSR', message: `csr: the key must be ECDSA P-256 (got ${alg.name ?? '?'} ${alg.namedCurve ?? ''})`.trim() };
      }
      if (!(await csr.verify())) return { ok: false, code: 'INVALID_CSR', message: 'csr: the signature does not verify' };
      const spiffeId = spiffeIdFor(opts.trustDomain, b.namespace, b.serviceAccount);
      const asked: string[] = [];
      for (const ext of csr.extensions) {
        if (ext instanceof x509.SubjectAlternativeNameExtension) for (const n of ext.names.items) asked.push(`${n.type}:${n.value}`);
      }
      const other = asked.filter((n) => n !== `url:${spiffeId}`);
      if (other.length > 0) {
        return { ok: false, code: 'IDENTITY_MISMATCH', message: `csr: asks for ${other.join(', ')}; this credential grants only ${spiffeId}` };
      }
      const { certPem: issuerCertPem, key } = await signingKey();
      const rootFingerprint = state.intermediate.rootFingerprint;
      const leaf = await signWorkload({ spiffeId, publicKey: csr.publicKey, now: new Date(now()), ttlMs: workloadTtl, issuerCertPem, issuerKey: key });
      const record: IssuedRecord = {
        namespace: b.namespace, workload: b.workload, spiffeId, serial: new x509.X509Certificate(leaf.certPem).serialNumber.toLowerCase(),
        rootFingerprint, issuedAt: new Date(now()).toISOString(), notAfter: leaf.notAfter.toISOString(),
      };
      await store.put(`${ISSUED_PREFIX}${b.namespace}/${b.workload}`, JSON.stringify(record));
      return {
        ok: true,
        spiffeId,
        certificateChain: leaf.certPem.trimEnd() + '\n' + issuerCertPem.trimEnd() + '\n' + (state.intermediate.chainPem ?? ''),
        trustBundle: bundle().pem,
        expiresAt: leaf.notAfter.toISOString(),
      };
    },

    createJoinToken: async (binding, o = {}) => opts.authenticate
      ? { ok: false, code: 'INVALID_ARGUMENT', message: 'join tokens are not used here: sidecars present a projected ServiceAccount token (audience trellis) instead (docs/kubernetes.md)' }
      : mintJoinToken(store, binding, {
        now: now(), caPin: ca.caPin(), ...(o.ttlMs === undefined ? {} : { ttlMs: o.ttlMs }), ...(o.maxUses === undefined ? {} : { maxUses: o.maxUses }),
      }),
    revokeJoinToken: (token) => revokeJoinToken(store, token),
    verifyJoinToken: (token) => verifyJoinToken(store, token, now()),
    listJoinTokens: () => listJoinTokens(store),
    revokeJoinTokenById: (id) => revokeJoinTokenById(store, id),

    verifyWorkloadCertificate(chainPem) {
      const bad = (message: string): WorkloadCertificateResult => ({ ok: false, code: 'UNAUTHENTICATED', message });
      let chain: NodeX509[];
      try {
        chain = splitPem(chainPem).map((p) => new NodeX509(p));
      } catch (err) {
        return bad(`certificate: not PEM certificates (${(err as Error).message})`);
      }
      const [leaf, ...rest] = chain;
      if (!leaf) return bad('certificate: no certificate presented');
      const t = now();
      const valid = (c: NodeX509): boolean => Date.parse(c.validFrom) <= t + 60_000 && Date.parse(c.validTo) > t;
      if (!valid(leaf)) return bad(`certificate: not valid now (valid ${leaf.validFrom} to ${leaf.validTo})`);
      if (leaf.ca) return bad('certificate: a CA certificate is not a workload identity');
      const roots = splitPem(bundle().pem).map((p) => new NodeX509(p));
      // leaf -> one or more CA intermediates from the chain (the Trellis
      // intermediate, then any operator intermediates) -> a bundle root.
      const issuedBy = (c: NodeX509, by: NodeX509): boolean => c.checkIssued(by) && c.verify(by.publicKey);
      const chainsUp = (c: NodeX509, depth: number): boolean =>
        rest.some((inter) => inter !== c && inter.ca && valid(inter) && issuedBy(c, inter)
          && (roots.some((r) => issuedBy(inter, r)) || (depth < rest.length && chainsUp(inter, depth + 1))));
      if (!chainsUp(leaf, 1)) return bad('certificate: does not chain to the mesh trust bundle');
      const uri = (leaf.subjectAltName ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
      const m = uri.length === 1 ? /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(uri[0]!) : null;
      if (!m || m[1] !== opts.trustDomain) return bad(`certificate: not a workload identity of ${opts.trustDomain} (${uri.join(', ') || 'no SPIFFE ID'})`);
      return { ok: true, spiffeId: uri[0]!, namespace: m[2]!, serviceAccount: m[3]!, leaf };
    },

    async stageRoot() {
      await load();
      if (opts.operatorCa) throw new Error('root rotation: the root is operator-supplied; rotate it outside Trellis');
      const staged = await newRoot('staged');
      await save({ ...state, roots: [...state.roots.filter((r) => r.state !== 'staged'), staged] });
      return fingerprint(staged.certPem);
    },
    async activateRoot() {
      await load();
      const staged = state.roots.find((r) => r.state === 'staged');
      if (!staged) throw new Error('root rotation: no staged root (call stageRoot first)');
      const roots = state.roots.map((r): RootRecord => (r === staged ? { ...r, state: 'active' } : r.state === 'active' ? { ...r, state: 'previous' } : r));
      await save({ ...state, roots, intermediate: await newIntermediate(staged) });
    },
    async retireRoot(fp, o = {}) {
      await load();
      const victim = state.roots.find((r) => fingerprint(r.certPem) === fp.toLowerCase());
      if (!victim || victim.state !== 'previous') return { ok: false, code: 'NOT_PREVIOUS', message: `fingerprint: no previous (inactive) root ${fp} in the bundle` };
      if (!o.force) {
        const blocking = (await holders(fp.toLowerCase())).filter(o.blocks ?? (() => true));
        if (blocking.length > 0) {
          const names = blocking.map((r) => `${r.namespace}/${r.workload}`).sort();
          return {
            ok: false, code: 'IN_USE', holders: blocking,
            message: `${blocking.length} workload(s) still hold a certificate under root ${fp}: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', ...' : ''}; renew them (trellis identity renew) or retire with --force`,
          };
        }
      }
      await save({ ...state, roots: state.roots.filter((r) => r !== victim) });
      return { ok: true };
    },
    holders,
    async rotateIntermediate() {
      await load();
      const active = state.roots.find((r) => r.state === 'active')!;
      await save({ ...state, intermediate: await newIntermediate(active) });
    },
    async reload() {
      await load();
    },
    async issueServingCertificate(sans, ttlMs = DEFAULT_SERVING_TTL_MS) {
      const { certPem: issuerCertPem, key } = await signingKey();
      const kp = await generateKeyPair();
      const spiffeId = controlPlaneSpiffeId(opts.trustDomain);
      const leaf = await signServing({ spiffeId, ...sans, publicKey: kp.keys.publicKey, now: new Date(now()), ttlMs, issuerCertPem, issuerKey: key });
      return {
        spiffeId,
        privateKeyPem: kp.privateKeyPem,
        certificateChain: leaf.certPem.trimEnd() + '\n' + issuerCertPem.trimEnd() + '\n' + (state.intermediate.chainPem ?? ''),
        trustBundle: bundle().pem,
        notAfter: leaf.notAfter,
      };
    },
    caPin() {
      const active = state.roots.find((r) => r.state === 'active') ?? state.roots[0]!;
      return spkiPin(active.certPem);
    },
  };
  return { ok: true, ca };
}

