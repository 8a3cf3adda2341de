// Identity from Kubernetes: in Kubernetes mode the CA's credential is the
// sidecar's projected ServiceAccount token (audience `trellis`), not a join
// token. The token is checked by the API server that issued it (a
// TokenReview, the way every in-cluster webhook authenticates a caller),
// then the Pod it is bound to is looked up: it must still exist with the
// token's UID and run as the token's service account. The certificate's
// identity comes from the review, never from the CSR:
//   spiffe://<trust domain>/ns/<namespace>/sa/<service account>
// and the issuance is recorded under the Pod's name (the workload).
// The control plane's credentials need `create` on
// authentication.k8s.io/tokenreviews and `get` on pods.
import { KubeApiError, type KubeClient } from './client.ts';
import type { KubePod } from './mapping.ts';
import type { JoinTokenBinding } from '../ca/join-tokens.ts';

export const TRELLIS_AUDIENCE = 'trellis';

const POD_NAME = 'authentication.kubernetes.io/pod-name';
const POD_UID = 'authentication.kubernetes.io/pod-uid';
const SA_USER = /^system:serviceaccount:([a-z0-9][-a-z0-9]*):([a-z0-9][-a-z0-9.]*)$/;
/** A JWT: three base64url parts. Anything else is refused before calling the API server. */
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export type ReviewResult =
  | { ok: true; binding: JoinTokenBinding }
  | { ok: false; code: 'UNAUTHENTICATED'; message: string }
  | { ok: false; code: 'UNAVAILABLE'; message: string };

interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  audiences?: string[];
  user?: { username?: string; extra?: Record<string, string[]> };
}

/** A CA credential check that asks the API server (TokenReview) and reads the bound Pod. */
export function tokenReviewAuthenticator(client: Pick<KubeClient, 'request'>, opts: { audience?: string } = {}): (token: string | undefined) => Promise<ReviewResult> {
  const audience = opts.audience ?? TRELLIS_AUDIENCE;
  const refuse = (message: string): ReviewResult => ({ ok: false, code: 'UNAUTHENTICATED', message });
  return async (token) => {
    if (!token || token.length > 16_384 || !JWT.test(token)) {
      return refuse(`a projected ServiceAccount token with audience "${audience}" is required (Authorization: Bearer <token>); join tokens are not used in Kubernetes mode`);
    }
    let status: TokenReviewStatus;
    try {
      const r = await client.request<{ status?: TokenReviewStatus }>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [audience] },
      });
      status = r?.status ?? {};
    } catch (err) {
      return { ok: false, code: 'UNAVAILABLE', message: `TokenReview at the API server failed: ${(err as Error).message}` };
    }
    if (status.authenticated !== true) return refuse(`the API server did not accept the token for audience "${audience}"${status.error ? `: ${status.error}` : ''}`);
    if (!(status.audiences ?? []).includes(audience)) return refuse(`the token is not for audience "${audience}"`);
    const user = status.user?.username ?? '';
    const m = SA_USER.exec(user);
    if (!m) return refuse(`the token is not a ServiceAccount's (user ${JSON.stringify(user)})`);
    const [, namespace, serviceAccount] = m as unknown as [string, string, string];
    const podName = status.user?.extra?.[POD_NAME]?.[0];
    const podUid = status.user?.extra?.[POD_UID]?.[0];
    if (!podName || !podUid) return refuse('the token is not bound to a Pod (use a projected ServiceAccount token volume, or kubectl create token --bound-object-kind Pod)');
    let pod: KubePod;
    try {
      pod = await client.request<KubePod>('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(podName)}`);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return refuse(`the token's Pod ${namespace}/${podName} no longer exists`);
      return { ok: false, code: 'UNAVAILABLE', message: `reading Pod ${namespace}/${podName}: ${(err as Error).message}` };
    }
    if (pod.metadata.uid !== podUid) return refuse(`the token's Pod ${namespace}/${podName} (uid ${podUid}) no longer exists: a Pod of that name has uid ${pod.metadata.uid ?? '?'}`);
    if ((pod.spec?.serviceAccountName || 'default') !== serviceAccount) {
      return refuse(`Pod ${namespace}/${podName} runs as service account ${pod.spec?.serviceAccountName || 'default'}, not ${serviceAccount}`);
    }
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return refuse(`Pod ${namespace}/${podName} has finished (${phase})`);
    return { ok: true, binding: { namespace, serviceAccount, workload: podName } };
  };
}
