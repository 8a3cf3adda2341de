// The control plane's identity part, assembled: the CA, its HTTP routes, the
// MeshTLS policies (watched in the store) and the trust bundle folded into
// the MeshState that translate() reads (`state.meshTls`), so every snapshot
// carries the mTLS transport sockets and the `trellis-trust-bundle` Secret.
import type { Store, Watch } from '../store/types.ts';
import type { MeshState } from '../translate/model.ts';
import type { MeshTLSPolicy, MeshTlsInput, TlsMode } from '../translate/mtls.ts';
import type { ApiRoute } from '../api/server.ts';
import { startCertificateAuthority, type CaOptions, type CertificateAuthority } from './ca.ts';
import { identityRoutes, type IdentityRouteOptions } from './identity-routes.ts';

export const MESH_TLS_PREFIX = '/trellis/resources/MeshTLS/';
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

export interface MeshIdentityOptions extends Partial<Omit<CaOptions, 'store'>> {
  readonly routes?: IdentityRouteOptions;
  /** Mode where no MeshTLS policy applies. Default PERMISSIVE. */
  readonly defaultMode?: TlsMode;
}

export interface MeshIdentity {
  readonly ca: CertificateAuthority;
  readonly routes: ApiRoute[];
  /** `state` with `meshTls` filled in (same object for the same inputs). */
  decorate(state: MeshState): MeshState;
  /** Policies or the trust bundle changed: decorate again. */
  onChange(cb: () => void): void;
  /** After a CA rotation step: re-read the bundle and notify. */
  refreshBundle(): void;
  stop(): void;
}

export async function startMeshIdentity(store: Store, opts: MeshIdentityOptions = {}): Promise<MeshIdentity> {
  const started = await startCertificateAuthority({ ...opts, store, trustDomain: opts.trustDomain ?? DEFAULT_TRUST_DOMAIN });
  if (!started.ok) throw new Error(`CA: ${started.message}`);
  const ca = started.ca;
  const policies = new Map<string, MeshTLSPolicy>();
  const listeners = new Set<() => void>();
  let input: MeshTlsInput | undefined;
  const changed = (): void => {
    input = undefined;
    for (const cb of listeners) cb();
  };
  const parse = (value: string): MeshTLSPolicy | undefined => {
    try {
      const r = JSON.parse(value) as MeshTLSPolicy;
      return r && typeof r === 'object' && r.metadata && r.spec ? r : undefined;
    } catch {
      return undefined;
    }
  };
  const listed = await store.list(MESH_TLS_PREFIX);
  for (const kv of listed.items) {
    const p = parse(kv.value);
    if (p) policies.set(kv.key, p);
  }
  const watch: Watch = store.watch(MESH_TLS_PREFIX, { fromRevision: listed.revision + 1 }, {
    onEvent(ev) {
      if (ev.type === 'put') {
        const p = parse(ev.kv.value);
        if (p) policies.set(ev.kv.key, p);
        else policies.delete(ev.kv.key);
      } else policies.delete(ev.key);
      changed();
    },
  });
  const decorated = new WeakMap<MeshState, { input: MeshTlsInput; state: MeshState }>();
  return {
    ca,
    routes: identityRoutes(ca, { ...opts.routes, onRotate: () => {
      opts.routes?.onRotate?.();
      changed();
    } }),
    decorate(state) {
      input ??= {
        trustDomain: ca.trustDomain,
        trustBundlePem: ca.trustBundle().pem,
        policies: [...policies.values()],
        ...(opts.defaultMode ? { defaultMode: opts.defaultMode } : {}),
      };
      const hit = decorated.get(state);
      if (hit && hit.input === input) return hit.state;
      const out = { ...state, meshTls: input };
      decorated.set(state, { input, state: out });
      return out;
    },
    onChange: (cb) => void listeners.add(cb),
    refreshBundle: changed,
    stop: () => watch.cancel(),
  };
}
