// TLS origination to destinations outside the mesh (ExternalService with
// `tls.mode: ORIGINATE`, translate/egress.ts): a cluster whose
// UpstreamTlsContext names an `sni` is dialled over TLS with that server
// name, verified against `validationContext.trustedCa.filename` (or the
// system roots). Mesh mTLS contexts carry no `sni` (they verify SPIFFE IDs)
// and are left to the mesh's hook: `composeUpstreamTls(egress, mesh)`.
import { readFileSync, statSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { ClusterSpec, EndpointSpec } from './config/types.ts';
import { transportSocketFor, UPSTREAM_TLS_TYPE } from './tls/upstream-tls.ts';

export type UpstreamTlsHook = (cluster: ClusterSpec, endpoint: EndpointSpec) => ConnectionOptions | undefined;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

export interface OriginationSettings {
  readonly sni: string;
  readonly caFile?: string;
  readonly alpn: readonly string[];
}

/** The origination settings of a transport socket, if it is an egress one. */
export function readOrigination(transportSocket: unknown): OriginationSettings | undefined {
  if (!isObj(transportSocket)) return undefined;
  const tc = transportSocket['typedConfig'];
  if (!isObj(tc) || tc['@type'] !== UPSTREAM_TLS_TYPE || typeof tc['sni'] !== 'string' || tc['sni'] === '') return undefined;
  const common = isObj(tc['commonTlsContext']) ? tc['commonTlsContext'] : {};
  const vc = isObj(common['validationContext']) ? common['validationContext'] : {};
  const ca = isObj(vc['trustedCa']) && typeof vc['trustedCa']['filename'] === 'string' ? vc['trustedCa']['filename'] : undefined;
  const alpn = Array.isArray(common['alpnProtocols']) ? common['alpnProtocols'].filter((p): p is string => typeof p === 'string') : [];
  return { sni: tc['sni'], ...(ca ? { caFile: ca } : {}), alpn };
}

export function createEgressTls(log?: (event: string, fields?: Record<string, unknown>) => void): UpstreamTlsHook {
  const cas = new Map<string, { mtime: number; pem: Buffer }>();
  const caFor = (file: string): Buffer | undefined => {
    try {
      const mtime = statSync(file).mtimeMs;
      const hit = cas.get(file);
      if (hit && hit.mtime === mtime) return hit.pem;
      const pem = readFileSync(file);
      cas.set(file, { mtime, pem });
      return pem;
    } catch (err) {
      log?.('egress_ca_unreadable', { file, error: (err as Error).message });
      return cas.get(file)?.pem;
    }
  };
  return function egressTls(cluster, endpoint) {
    const s = readOrigination(transportSocketFor(cluster, endpoint));
    if (!s) return undefined;
    const ca = s.caFile ? caFor(s.caFile) : undefined;
    return {
      servername: s.sni,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      // An unreadable CA file must not fall back to the system roots silently.
      ...(s.caFile ? { ca: ca ?? [] } : {}),
      ...(s.alpn.length > 0 ? { ALPNProtocols: [...s.alpn] } : {}),
    };
  };
}

/** The first hook with an answer wins. */
export function composeUpstreamTls(...hooks: (UpstreamTlsHook | undefined)[]): UpstreamTlsHook {
  const hs = hooks.filter((h): h is UpstreamTlsHook => h !== undefined);
  return (cluster, endpoint) => {
    for (const h of hs) {
      const o = h(cluster, endpoint);
      if (o) return o;
    }
    return undefined;
  };
}
