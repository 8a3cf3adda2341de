// The identity API, mounted on the control plane's HTTP port:
//   POST /api/v1/identity/csr            public, Bearer <join token, or in Kubernetes mode a ServiceAccount token>; {csr} -> {certificateChain, trustBundle, expiresAt, spiffeId}
//                                        or (renewal, no token) {csr, renewal: {certificateChain, signature}}
//   GET  /api/v1/identity/trust-bundle   public; -> {trustDomain, trustBundle, roots: [{fingerprint, state, notAfter}]}
//   POST /api/v1/identity/join-tokens    admin; {namespace, serviceAccount, workload, ttl?, uses?} -> {token, expiresAt, id}
//   GET  /api/v1/identity/join-tokens    admin; the records (id, identity, uses, expiry; never a secret)
//   DELETE /api/v1/identity/join-tokens/:id  admin; revoke
//   GET  /api/v1/identity/ca             viewer; CA status (bundle, intermediate) and `holders`:
//                                        each workload's last unexpired certificate, its root, and
//                                        whether the workload is live (connected or registered)
//   POST /api/v1/identity/ca/rotate      admin; {step: stage|activate|retire|intermediate, fingerprint?, force?}
//                                        retire: 409 IN_USE (with `holders`) while a live workload's
//                                        certificate chains to that root, unless force
// Who is admin or viewer is the API's business (api/auth.ts, each route's `access`).
import type { ServerResponse } from 'node:http';
import type { ApiRoute } from '../api/server.ts';
import { readStructuredBody, sendJson } from '../api/server.ts';
import type { CertificateAuthority } from './ca.ts';
import { parseDuration } from '../../api/schema-common.ts';
import { bearerToken } from '../api/auth.ts';

export interface IdentityRouteOptions {
  /** Called after a CA rotation step (re-push the trust bundle). */
  onRotate?: () => void;
  /** Is this workload live (its proxy connected, or registered)? Its
   * certificate then blocks retiring its root. Default: every holder is live. */
  isLive?: (namespace: string, workload: string) => boolean;
}

function fail(res: ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { error: { code, message } });
}

const STATUS: Record<string, number> = { UNAUTHENTICATED: 401, UNAVAILABLE: 503, INVALID_CSR: 400, IDENTITY_MISMATCH: 403, INVALID_ARGUMENT: 400 };

/** CA status with who holds what: each holder marked live or not. */
async function statusWithHolders(ca: CertificateAuthority, isLive: (namespace: string, workload: string) => boolean): Promise<object> {
  const holders = (await ca.holders()).map((h) => ({ ...h, live: isLive(h.namespace, h.workload) }));
  holders.sort((a, b) => `${a.namespace}/${a.workload}`.localeCompare(`${b.namespace}/${b.workload}`));
  return { ...ca.status(), holders };
}

export function identityRoutes(ca: CertificateAuthority, opts: IdentityRouteOptions = {}): ApiRoute[] {
  const isLive = opts.isLive ?? (() => true);
  return [
    {
      method: 'POST',
      pattern: '/api/v1/identity/csr',
      access: 'public',
      async handle(req, res) {
        const body = await readStructuredBody(req);
        if (!body.ok) return fail(res, 400, 'INVALID_ARGUMENT', body.error.message);
        const v = (body.value ?? {}) as { csr?: unknown; renewal?: { certificateChain?: unknown; signature?: unknown } };
        const csr = v.csr;
        if (typeof csr !== 'string') return fail(res, 400, 'INVALID_ARGUMENT', 'csr: required, a PEM "CERTIFICATE REQUEST"');
        const token = bearerToken(req);
        let renewal: { certificateChain: string; signature: string } | undefined;
        if (v.renewal !== undefined) {
          if (typeof v.renewal?.certificateChain !== 'string' || typeof v.renewal.signature !== 'string') {
            return fail(res, 400, 'INVALID_ARGUMENT', 'renewal: {certificateChain, signature} (the current chain, and a base64 signature over the CSR with its key)');
          }
          renewal = { certificateChain: v.renewal.certificateChain, signature: v.renewal.signature };
        }
        const r = await ca.signCsr(csr, { credentials: { ...(token === undefined ? {} : { joinToken: token }), ...(renewal ? { renewal } : {}) } });
        if (!r.ok) return fail(res, STATUS[r.code] ?? 400, r.code, r.message);
        sendJson(res, 200, { spiffeId: r.spiffeId, certificateChain: r.certificateChain, trustBundle: r.trustBundle, expiresAt: r.expiresAt });
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/identity/trust-bundle',
      access: 'public',
      handle(_req, res) {
        const b = ca.trustBundle();
        sendJson(res, 200, { trustDomain: ca.trustDomain, trustBundle: b.pem, roots: b.roots, caPin: ca.caPin() });
      },
    },
    {
      method: 'POST',
      pattern: '/api/v1/identity/join-tokens',
      async handle(req, res) {
        const body = await readStructuredBody(req);
        if (!body.ok) return fail(res, 400, 'INVALID_ARGUMENT', body.error.message);
        const v = (body.value ?? {}) as Record<string, unknown>;
        let ttlMs: number | undefined;
        if (v['ttl'] !== undefined) {
          ttlMs = typeof v['ttl'] === 'string' ? parseDuration(v['ttl']) : undefined;
          if (ttlMs === undefined || ttlMs <= 0) return fail(res, 400, 'INVALID_ARGUMENT', 'ttl: must be a duration such as 1h or 30m');
        }
        const r = await ca.createJoinToken(
          { namespace: v['namespace'] as string, serviceAccount: (v['serviceAccount'] ?? 'default') as string, workload: v['workload'] as string },
          { ...(ttlMs === undefined ? {} : { ttlMs }), ...(v['uses'] === undefined ? {} : { maxUses: v['uses'] as number }) },
        );
        if (!r.ok) return fail(res, 400, r.code, r.message);
        sendJson(res, 201, { token: r.token, expiresAt: r.expiresAt, id: r.id });
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/identity/join-tokens',
      access: 'write',
      async handle(_req, res) {
        sendJson(res, 200, { items: await ca.listJoinTokens() });
      },
    },
    {
      method: 'DELETE',
      pattern: '/api/v1/identity/join-tokens/:id',
      async handle(_req, res, p) {
        const gone = await ca.revokeJoinTokenById((p.id ?? '').toLowerCase());
        if (!gone) return fail(res, 404, 'NOT_FOUND', `no join token with id ${p.id} (see \`trellis identity token list\`)`);
        sendJson(res, 200, { revoked: gone });
      },
    },
    {
      method: 'POST',
      pattern: '/api/v1/identity/ca/rotate',
      async handle(req, res) {
        const body = await readStructuredBody(req);
        if (!body.ok) return fail(res, 400, 'INVALID_ARGUMENT', body.error.message);
        const v = (body.value ?? {}) as { step?: unknown; fingerprint?: unknown; force?: unknown };
        if (v.force !== undefined && typeof v.force !== 'boolean') return fail(res, 400, 'INVALID_ARGUMENT', 'force: must be true or false');
        try {
          if (v.step === 'stage') await ca.stageRoot();
          else if (v.step === 'activate') await ca.activateRoot();
          else if (v.step === 'intermediate') await ca.rotateIntermediate();
          else if (v.step === 'retire') {
            if (typeof v.fingerprint !== 'string') return fail(res, 400, 'INVALID_ARGUMENT', 'fingerprint: required for step "retire"');
            const r = await ca.retireRoot(v.fingerprint, { force: v.force === true, blocks: (h) => isLive(h.namespace, h.workload) });
            if (!r.ok && r.code === 'IN_USE') {
              sendJson(res, 409, { error: { code: 'IN_USE', message: r.message }, holders: r.holders });
              return;
            }
            if (!r.ok) return fail(res, 409, 'FAILED_PRECONDITION', r.message);
          } else return fail(res, 400, 'INVALID_ARGUMENT', 'step: must be stage, activate, retire or intermediate');
        } catch (err) {
          return fail(res, 409, 'FAILED_PRECONDITION', (err as Error).message);
        }
        opts.onRotate?.();
        sendJson(res, 200, ca.status());
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/identity/ca',
      async handle(_req, res) {
        sendJson(res, 200, await statusWithHolders(ca, isLive));
      },
    },
  ];
}
