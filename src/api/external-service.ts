// ExternalService (trellis.dev/v1alpha1): a destination outside the mesh that
// workloads may call (Istio's ServiceEntry in Trellis form; docs/gateways.md).
// Sidecars route only to Services and declared ExternalServices: any other
// host gets 403 with `x-trellis-proxy-error: EGRESS_DENIED`.
//
//   hosts      the names apps use (Host header / HTTP_PROXY target)
//   ports      the ports apps call; `targetPort` is the port dialled (e.g. the
//              app calls http://api.example.com:80, the sidecar dials 443)
//   endpoints  where to dial; absent: the host itself, resolved by DNS
//   tls        TLS origination: the app speaks plain HTTP, its sidecar speaks
//              TLS to the destination (SNI, verified against `caFile` or the
//              system roots)
//   egressGateway  send this destination's traffic through a dedicated
//              egress gateway (a Gateway of class `trellis-egress` served by
//              `trellis gateway --name NAME`): sidecars dial the gateway over
//              mTLS and the gateway originates; unknown gateway: denied
import { Type, type Static } from '@sinclair/typebox';
import { Closed, StringEnum, PortNumber, HOSTNAME } from './schema-common.ts';

export const ExternalServiceSpec = Closed({
  hosts: Type.Array(Type.String({ minLength: 1, maxLength: 253, pattern: HOSTNAME }), { minItems: 1, maxItems: 16 }),
  ports: Type.Array(Closed({
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
    port: PortNumber,
    targetPort: Type.Optional(PortNumber),
    protocol: Type.Optional(StringEnum(['http', 'tcp'] as const, { default: 'http' })),
  }), { minItems: 1, maxItems: 16 }),
  endpoints: Type.Optional(Type.Array(Closed({
    address: Type.String({ minLength: 1, maxLength: 253 }),
    port: Type.Optional(PortNumber),
  }), { minItems: 1, maxItems: 64 })),
  tls: Type.Optional(Closed({
    mode: StringEnum(['ORIGINATE'] as const),
    /** Server name sent and verified; default the first host. */
    sni: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
    /** PEM file on the proxy's host with the CAs to trust; default the system roots. */
    caFile: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  })),
  /** Route through this egress Gateway instead of originating from each sidecar. */
  egressGateway: Type.Optional(Closed({
    name: Type.String({ minLength: 1, maxLength: 253 }),
    /** Default: the ExternalService's namespace. */
    namespace: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
  })),
});
export type ExternalServiceSpec = Static<typeof ExternalServiceSpec>;
