// Shapes shared by the control plane, the CLI and the dashboard: every
// resource is Kubernetes-shaped (`apiVersion`, `kind`, `metadata`, `spec`,
// server-computed `status`), so the same YAML works as a CRD on Kubernetes
// and through `trellis apply -f` anywhere else.

export interface ObjectMeta {
  name: string;
  /** Defaults to "default". */
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  // Set by the server; ignored (resourceVersion: used as a precondition) on input.
  uid?: string;
  /** The store's modRevision of the object, as a decimal string (Kubernetes style). */
  resourceVersion?: string;
  /** Increments whenever `spec` changes. */
  generation?: number;
  creationTimestamp?: string;
}

/** A Kubernetes/Gateway API status condition. */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

export interface ResourceStatus {
  conditions?: Condition[];
  /** Human-readable warnings (dangling references and the like). */
  warnings?: string[];
}

export interface Resource<Spec = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: Spec;
  status?: ResourceStatus;
}

/** One validation failure: where (a JSON path like `spec.rules[1].weight`) and why. */
export interface FieldError {
  path: string;
  message: string;
  /** The full one-line report: `[file: ]Kind ns/name: path: message`. */
  text: string;
}

/** Kind + namespace + name: enough to find one resource. */
export interface ResourceKey {
  kind: string;
  namespace: string;
  name: string;
}

export const DEFAULT_NAMESPACE = 'default';
