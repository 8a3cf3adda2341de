// Trellis mesh kinds (trellis.dev/v1alpha1): Service and Workload.
//
// Versions/subsets follow the Gateway API mesh profile rather than Istio's
// DestinationRule subsets: a version is its own Service selecting by labels
// (e.g. `reviews-v2` with selector {app: reviews, version: v2}), and an
// HTTPRoute whose parentRef is the `reviews` Service splits traffic with
// backendRefs to `reviews-v1` / `reviews-v2`. Nothing new to learn, and the
// same YAML works on Kubernetes with core Services.
import { Type, type Static } from '@sinclair/typebox';
import { Closed, StringEnum, StringMap, IntOrString, PortNumber, DNS1123_LABEL, DNS1123_SUBDOMAIN } from './schema-common.ts';

export const TRELLIS_GROUP = 'trellis.dev';

export const ServicePort = Closed({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: DNS1123_LABEL })),
  /** The port clients address (the service's port). */
  port: PortNumber,
  /** The workload's port: a number, or the name of a Workload port. Defaults to `port`. */
  targetPort: Type.Optional(IntOrString()),
  protocol: Type.Optional(StringEnum(['http', 'http2', 'grpc', 'tcp'] as const, { default: 'http' })),
});
export type ServicePort = Static<typeof ServicePort>;

export const ServiceSpec = Closed({
  /** Workloads whose metadata.labels contain all of these belong to the service. */
  selector: Type.Optional(StringMap()),
  ports: Type.Array(ServicePort, { minItems: 1, maxItems: 64 }),
});
export type ServiceSpec = Static<typeof ServiceSpec>;

export const WorkloadPort = Closed({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: DNS1123_LABEL })),
  port: PortNumber,
  protocol: Type.Optional(StringEnum(['http', 'http2', 'grpc', 'tcp'] as const)),
});

/** One running instance (a process, a pod): its labels are metadata.labels. */
export const WorkloadSpec = Closed({
  serviceAccount: Type.Optional(Type.String({ minLength: 1, maxLength: 253, pattern: DNS1123_SUBDOMAIN, default: 'default' })),
  /** IP address (or DNS name) where the workload's sidecar accepts inbound traffic. */
  address: Type.String({ minLength: 1, maxLength: 253 }),
  ports: Type.Optional(Type.Array(WorkloadPort, { maxItems: 64 })),
  locality: Type.Optional(Closed({
    region: Type.Optional(Type.String({ maxLength: 128 })),
    zone: Type.Optional(Type.String({ maxLength: 128 })),
  })),
});
export type WorkloadSpec = Static<typeof WorkloadSpec>;
