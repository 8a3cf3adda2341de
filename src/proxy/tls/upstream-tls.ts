// TLS origination for clusters: the cluster-manager `tls` hook. A cluster's
// `transportSocketMatches` (first entry whose `match` labels all appear in
// the endpoint's `trellis` metadata; Envoy reads `envoy.transport_socket_match`,
// Trellis reads its own endpoint labels) or its `transportSocket` says whether
// to originate TLS. An UpstreamTlsContext without certificates or trusted CA
// means "the mesh identity": the workload certificate and the trust bundle
// (see docs/identity-and-mtls.md); `matchTypedSubjectAltNames` (URI, exact)
// lists the SPIFFE IDs the server may present.
//
// Pools are shared by TLS options object identity, so one frozen-shape
// object is handed out per (ALPN, expected identities). Its `secureContext`
// is a getter that reads the identity's current credentials, so a rotated
// certificate or trust bundle applies to every new connection at once while
// pools and their open connections stay as they are.
import type { ConnectionOptions } from 'node:tls';
import type { ClusterSpec, EndpointSpec } from '../config/types.ts';
import type { Credentials } from '../identity/workload-identity.ts';
import { spiffeServerCheck } from './spiffe-verify.ts';

export const UPSTREAM_TLS_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
export const DOWNSTREAM_TLS_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

export interface UpstreamTlsSettings {
  readonly sans: readonly string[];
  readonly alpn: readonly string[];
}

/** The TLS settings a transport socket asks for, or undefined for plaintext. */
export function readUpstreamTls(transportSocket: unknown): UpstreamTlsSettings | undefined {
  if (!isObj(transportSocket)) return undefined;
  const tc = transportSocket['typedConfig'];
  if (!isObj(tc) || tc['@type'] !== UPSTREAM_TLS_TYPE) return undefined;
  const common = isObj(tc['commonTlsContext']) ? tc['commonTlsContext'] : {};
  const vc = isObj(common['validationContext'])
    ? common['validationContext']
    : isObj(common['combinedValidationContext']) && isObj(common['combinedValidationContext']['defaultValidationContext'])
      ? common['combinedValidationContext']['defaultValidationContext']
      : {};
  const sans: string[] = [];
  for (const m of Array.isArray(vc['matchTypedSubjectAltNames']) ? vc['matchTypedSubjectAltNames'] : []) {
    if (isObj(m) && m['sanType'] === 'URI' && isObj(m['matcher']) && typeof m['matcher']['exact'] === 'string') sans.push(m['matcher']['exact']);
  }
  const alpn = Array.isArray(common['alpnProtocols']) ? common['alpnProtocols'].filter((p): p is string => typeof p === 'string') : [];
  return { sans: sans.sort(), alpn };
}

/** The transport socket that applies to `endpoint` in `cluster`. */
export function transportSocketFor(cluster: ClusterSpec, endpoint: EndpointSpec): unknown {
  const ext = cluster.extensions ?? {};
  const matches = ext['transportSocketMatches'];
  if (Array.isArray(matches)) {
    const labels = endpoint.labels ?? {};
    for (const m of matches) {
      if (!isObj(m)) continue;
      const want = isObj(m['match']) ? m['match'] : {};
      if (Object.entries(want).every(([k, v]) => labels[k] === v)) return m['transportSocket'];
    }
  }
  return ext['transportSocket'];
}

export interface UpstreamTlsDeps {
  /** The identity's current credentials (undefined before the first certificate). */
  current(): Credentials | undefined;
}

export function createUpstreamTls(deps: UpstreamTlsDeps): (cluster: ClusterSpec, endpoint: EndpointSpec) => ConnectionOptions | undefined {
  const cache = new Map<string, ConnectionOptions>();
  return function upstreamTls(cluster, endpoint) {
    const s = readUpstreamTls(transportSocketFor(cluster, endpoint));
    if (!s) return undefined;
    // ALPN follows the cluster's protocol. A "downstream" cluster shares one
    // options object between its HTTP/1 and HTTP/2 pools: the h2 pool offers
    // h2 itself and the HTTP/1 pool offers nothing (the server then sniffs).
    const alpn = cluster.protocol === 'http2' ? ['h2'] : cluster.protocol === 'http1' ? ['http/1.1'] : [];
    const key = `${alpn.join(',')}|${s.sans.join(',')}`;
    let o = cache.get(key);
    if (!o) {
      o = {
        minVersion: 'TLSv1.3',
        rejectUnauthorized: true,
        checkServerIdentity: spiffeServerCheck(s.sans),
        ...(alpn.length > 0 ? { ALPNProtocols: alpn } : {}),
      };
      Object.defineProperty(o, 'secureContext', { enumerable: true, get: () => deps.current()?.secureContext });
      cache.set(key, o);
    }
    return o;
  };
}
