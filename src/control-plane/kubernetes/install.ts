// The manifests `trellis install` prints: everything a cluster needs to run
// the control plane in Kubernetes mode with identity and injection.
//   Namespace trellis-system, Trellis's CRDs (api/crd.ts), ServiceAccount,
//   a least-privilege ClusterRole (exactly what kubernetes/source.ts,
//   token-review.ts and webhook.ts call) and its binding, the control plane
//   Deployment (its CA and mirror in a PersistentVolumeClaim: the CA's root
//   must survive a restart), the Service (xDS, API, webhook) and the
//   MutatingWebhookConfiguration (caBundle filled in by the control plane).
import { trellisCrds } from '../../api/crd.ts';
import { DEFAULT_WEBHOOK_CONFIG } from './webhook.ts';
import { DEFAULT_SIDECAR_IMAGE, INJECTION_LABEL } from './inject.ts';

export const INSTALL_NAMESPACE = 'trellis-system';

export interface InstallOptions {
  readonly image?: string;
  readonly namespace?: string;
  readonly storage?: string;
}

/** The ClusterRole's rules: one line per API call the control plane makes. */
export const CONTROL_PLANE_RULES = [
  // The Kubernetes source (list + watch) and identity (the token's Pod).
  { apiGroups: [''], resources: ['services'], verbs: ['list', 'watch'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
  { apiGroups: ['gateway.networking.k8s.io'], resources: ['httproutes', 'grpcroutes', 'tcproutes', 'gateways'], verbs: ['list', 'watch'] },
  { apiGroups: ['gateway.networking.k8s.io'], resources: ['httproutes/status', 'grpcroutes/status', 'tcproutes/status'], verbs: ['update'] },
  // Identity: TokenReview of the sidecars' projected tokens.
  { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
  // Injection: the namespace's label, the webhook configuration's caBundle.
  { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
  { apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], resourceNames: [DEFAULT_WEBHOOK_CONFIG], verbs: ['get', 'patch'] },
];

export function installManifests(opts: InstallOptions = {}): Record<string, unknown>[] {
  const ns = opts.namespace ?? INSTALL_NAMESPACE;
  const image = opts.image ?? DEFAULT_SIDECAR_IMAGE;
  const labels = { 'app.kubernetes.io/name': 'trellis', 'app.kubernetes.io/component': 'control-plane' };
  const svcHost = `trellis.${ns}.svc`;
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { [INJECTION_LABEL]: 'disabled' } } },
    ...trellisCrds(),
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'trellis', namespace: ns, labels } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'trellis-control-plane', labels }, rules: CONTROL_PLANE_RULES },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'trellis-control-plane', labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'trellis-control-plane' },
      subjects: [{ kind: 'ServiceAccount', name: 'trellis', namespace: ns }],
    },
    {
      apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'trellis-data', namespace: ns, labels },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: opts.storage ?? '1Gi' } } },
    },
    {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'trellis', namespace: ns, labels },
      spec: {
        // One replica on its own store (sqlite on the volume); Recreate so two never share it.
        replicas: 1,
        strategy: { type: 'Recreate' },
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: 'trellis',
            securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [{
              name: 'control-plane',
              image,
              args: [
                'control-plane', '--kubernetes', '--host', '0.0.0.0', '--data-dir', '/var/lib/trellis',
                '--injection-port', '15017', '--injection-hosts', `${svcHost},${svcHost}.cluster.local`,
                '--sidecar-image', image, '--sidecar-xds', `${svcHost}:15010`, '--sidecar-api', `http://${svcHost}:15080`,
              ],
              ports: [
                { name: 'grpc-xds', containerPort: 15010 },
                { name: 'http-api', containerPort: 15080 },
                { name: 'https-webhook', containerPort: 15017 },
              ],
              readinessProbe: { httpGet: { path: '/healthz', port: 15080 }, periodSeconds: 5 },
              livenessProbe: { httpGet: { path: '/healthz', port: 15080 }, periodSeconds: 10, failureThreshold: 6 },
              resources: { requests: { cpu: '200m', memory: '256Mi' }, limits: { memory: '1Gi' } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              volumeMounts: [{ name: 'data', mountPath: '/var/lib/trellis' }],
            }],
            volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'trellis-data' } }],
          },
        },
      },
    },
    {
      apiVersion: 'v1', kind: 'Service', metadata: { name: 'trellis', namespace: ns, labels },
      spec: {
        selector: labels,
        ports: [
          { name: 'grpc-xds', port: 15010, targetPort: 15010 },
          { name: 'http-api', port: 15080, targetPort: 15080 },
          { name: 'https-webhook', port: 443, targetPort: 15017 },
        ],
      },
    },
    {
      apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: DEFAULT_WEBHOOK_CONFIG, labels },
      webhooks: [{
        name: 'inject.trellis.dev',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        // Not injected beats not created: a Pod still starts while the control plane is down.
        failurePolicy: 'Ignore',
        reinvocationPolicy: 'Never',
        timeoutSeconds: 10,
        clientConfig: { service: { name: 'trellis', namespace: ns, path: '/inject', port: 443 } },
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
        namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [ns, 'kube-system', 'kube-public'] }] },
      }],
    },
  ];
}
