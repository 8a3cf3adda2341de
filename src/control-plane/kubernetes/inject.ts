// Sidecar injection as one pure function of a Pod spec: the mutating
// admission webhook (webhook.ts) and `trellis inject -f` (offline, like
// `istioctl kube-inject`) both call injectPodSpec(). What it adds:
//   initContainers  trellis-init   the iptables capture (runner/capture-rules.ts, the
//                                  rules `trellis run --transparent` installs), NET_ADMIN
//                   trellis-proxy  the sidecar as a native sidecar (restartPolicy: Always:
//                                  up before the app's containers, and a Job still finishes),
//                                  its own uid (the capture lets its traffic through), resource
//                                  requests, readiness on its admin /ready
//   volumes         trellis-token  projected ServiceAccount token, audience trellis (the CA's
//                                  credential: kubernetes/token-review.ts), rotated by the kubelet
//                   trellis-run    emptyDir for the bootstrap the sidecar writes at start
//   probes          httpGet/tcpSocket probes of the app's containers now ask the sidecar's
//                   admin port (/app-health/<container>/<kind>), which performs the original
//                   check against the app on 127.0.0.1 (TRELLIS_APP_PROBERS), as Istio's
//                   probe rewrite does: the kubelet's own connection would be captured and,
//                   under STRICT mTLS, refused. exec and grpc probes are left alone.
// Whether a Pod is injected: the Pod's `trellis.dev/inject` annotation or
// label ("true"/"false") wins; else its namespace's `trellis-injection: enabled` label.
import { captureScript } from '../../runner/capture-rules.ts';
import type { AppProber } from '../../proxy/app-health.ts';

export const INJECTION_LABEL = 'trellis-injection';
export const INJECT_ANNOTATION = 'trellis.dev/inject';
export const STATUS_ANNOTATION = 'trellis.dev/sidecar-status';
export const PROXY_CONTAINER = 'trellis-proxy';
export const INIT_CONTAINER = 'trellis-init';
export const PROXY_UID = 1337;
export const PORTS = { admin: 15000, outbound: 15001, inbound: 15006 } as const;
export const TOKEN_DIR = '/var/run/secrets/trellis';
export const APP_HEALTH_PREFIX = '/app-health/';
/** Built from the repository's Dockerfile (docs/kubernetes.md). */
export const DEFAULT_SIDECAR_IMAGE = 'ghcr.io/trellis-mesh/trellis:latest';

export interface InjectOptions {
  /** The image with `trellis` and `sh` (and iptables, for the init container). */
  readonly image: string;
  /** The control plane's xDS address (host:port). */
  readonly xdsAddress: string;
  /** The control plane's API (identity: CSR and trust bundle). */
  readonly identityUrl: string;
  readonly resources?: { readonly requests?: Record<string, string>; readonly limits?: Record<string, string> };
  readonly tokenExpirationSeconds?: number;
}

export const DEFAULT_RESOURCES = { requests: { cpu: '100m', memory: '128Mi' } };

type Json = Record<string, unknown>;
interface Probe { httpGet?: { path?: string; port: number | string; scheme?: string; httpHeaders?: unknown[]; host?: string }; tcpSocket?: { port: number | string; host?: string }; [k: string]: unknown }
interface Container { name: string; ports?: { name?: string; containerPort: number; protocol?: string }[]; livenessProbe?: Probe; readinessProbe?: Probe; startupProbe?: Probe; [k: string]: unknown }
export interface PodSpec { containers: Container[]; initContainers?: Container[]; volumes?: Json[]; serviceAccountName?: string; [k: string]: unknown }
export interface PodMeta { name?: string; generateName?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }

/** Does this Pod get a sidecar? */
export function wantsInjection(meta: PodMeta, namespaceLabels: Record<string, string> = {}): boolean {
  const own = meta.annotations?.[INJECT_ANNOTATION] ?? meta.labels?.[INJECT_ANNOTATION];
  if (own === 'true') return true;
  if (own === 'false') return false;
  return namespaceLabels[INJECTION_LABEL] === 'enabled';
}

export function isInjected(spec: PodSpec): boolean {
  return [...(spec.initContainers ?? []), ...spec.containers].some((c) => c.name === PROXY_CONTAINER);
}

const PROBES = [['livenessProbe', 'livez'], ['readinessProbe', 'readyz'], ['startupProbe', 'startupz']] as const;

function resolvePort(c: Container, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return c.ports?.find((p) => p.name === port)?.containerPort;
}


/** The Pod spec with the sidecar; a spec already injected comes back unchanged. */
export function injectPodSpec(spec: PodSpec, meta: PodMeta, opts: InjectOptions): PodSpec {
  if (isInjected(spec)) return spec;
  const probers: Record<string, AppProber> = {};
  const containers = spec.containers.map((c) => {
    const out: Container = { ...c };
    for (const [field, kind] of PROBES) {
      const p = c[field];
      if (!p) continue;
      const path = `${APP_HEALTH_PREFIX}${c.name}/${kind}`;
      // Kubernetes' default when unset (the API server fills it in before webhooks run; `trellis inject` sees it unset).
      const timeout = { timeoutSeconds: typeof p['timeoutSeconds'] === 'number' ? p['timeoutSeconds'] : 1 };
      if (p.httpGet) {
        const port = resolvePort(c, p.httpGet.port);
        if (port === undefined || p.httpGet.host) continue; // a named port it lacks, or another host: the kubelet's own check
        probers[path] = { httpGet: { path: p.httpGet.path ?? '/', port, scheme: (p.httpGet.scheme ?? 'HTTP').toUpperCase(), ...(p.httpGet.httpHeaders ? { httpHeaders: p.httpGet.httpHeaders as { name: string; value: string }[] } : {}) }, ...timeout };
      } else if (p.tcpSocket) {
        const port = resolvePort(c, p.tcpSocket.port);
        if (port === undefined || p.tcpSocket.host) continue;
        probers[path] = { tcpSocket: { port }, ...timeout };
      } else continue;
      const { httpGet: _h, tcpSocket: _t, ...rest } = p;
      out[field] = { ...rest, httpGet: { path, port: PORTS.admin, scheme: 'HTTP' } };
    }
    return out;
  });
  const service = meta.labels?.['app.kubernetes.io/name'] ?? meta.labels?.['app'] ?? spec.serviceAccountName ?? 'default';
  // The kubelet expands $(POD_NAME)/$(POD_NAMESPACE) from the env above it.
  const bootstrap = {
    node: {
      id: '$(POD_NAME).$(POD_NAMESPACE)', cluster: service,
      metadata: { trellis: {
        kind: 'sidecar', namespace: '$(POD_NAMESPACE)', workload: '$(POD_NAME)', service,
        outbound: { address: '127.0.0.1', port: PORTS.outbound }, capture: 'transparent', inboundPort: PORTS.inbound,
        admin: `$(POD_IP):${PORTS.admin}`,
      } },
    },
    admin: { address: { socketAddress: { address: '0.0.0.0', portValue: PORTS.admin } } },
    dynamicResources: { ads: { address: opts.xdsAddress } },
  };
  const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });
  const init: Container = {
    name: INIT_CONTAINER,
    image: opts.image,
    command: ['sh', '-c', captureScript(PORTS, PROXY_UID)],
    securityContext: { runAsUser: 0, runAsNonRoot: false, allowPrivilegeEscalation: false, capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] } },
    resources: { requests: { cpu: '10m', memory: '16Mi' } },
  };
  const proxy: Container = {
    name: PROXY_CONTAINER,
    image: opts.image,
    restartPolicy: 'Always',
    command: ['sh', '-c', 'printf %s "$TRELLIS_BOOTSTRAP" > /var/run/trellis/bootstrap.json && exec trellis proxy --config /var/run/trellis/bootstrap.json'],
    env: [
      fieldEnv('POD_NAME', 'metadata.name'),
      fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
      fieldEnv('POD_IP', 'status.podIP'),
      { name: 'TRELLIS_BOOTSTRAP', value: JSON.stringify(bootstrap) },
      { name: 'TRELLIS_SA_TOKEN_FILE', value: `${TOKEN_DIR}/token` },
      { name: 'TRELLIS_IDENTITY_URL', value: opts.identityUrl },
      ...(Object.keys(probers).length > 0 ? [{ name: 'TRELLIS_APP_PROBERS', value: JSON.stringify(probers) }] : []),
    ],
    ports: [{ name: 'trellis-admin', containerPort: PORTS.admin, protocol: 'TCP' }],
    readinessProbe: { httpGet: { path: '/ready', port: PORTS.admin }, periodSeconds: 2, failureThreshold: 30 },
    resources: opts.resources ?? DEFAULT_RESOURCES,
    securityContext: { runAsUser: PROXY_UID, runAsGroup: PROXY_UID, runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
    volumeMounts: [{ name: 'trellis-token', mountPath: TOKEN_DIR, readOnly: true }, { name: 'trellis-run', mountPath: '/var/run/trellis' }],
  };
  return {
    ...spec,
    initContainers: [init, proxy, ...(spec.initContainers ?? [])],
    containers,
    volumes: [
      ...(spec.volumes ?? []),
      { name: 'trellis-token', projected: { sources: [{ serviceAccountToken: { audience: 'trellis', expirationSeconds: opts.tokenExpirationSeconds ?? 3600, path: 'token' } }] } },
      { name: 'trellis-run', emptyDir: { medium: 'Memory' } },
    ],
  };
}

/** JSON Patch (RFC 6902) turning `spec` into the injected one, for an AdmissionReview response. */
export function injectionPatch(spec: PodSpec, meta: PodMeta, opts: InjectOptions): object[] {
  const next = injectPodSpec(spec, meta, opts);
  if (next === spec) return [];
  return [
    { op: spec.initContainers ? 'replace' : 'add', path: '/spec/initContainers', value: next.initContainers },
    { op: 'replace', path: '/spec/containers', value: next.containers },
    { op: spec.volumes ? 'replace' : 'add', path: '/spec/volumes', value: next.volumes },
    ...(meta.annotations
      ? [{ op: 'add', path: `/metadata/annotations/${STATUS_ANNOTATION.replaceAll('~', '~0').replaceAll('/', '~1')}`, value: 'injected' }]
      : [{ op: 'add', path: '/metadata/annotations', value: { [STATUS_ANNOTATION]: 'injected' } }]),
  ];
}

const TEMPLATE_KINDS: Record<string, (o: Json) => Json | undefined> = {
  Pod: (o) => o,
  Deployment: (o) => (o['spec'] as Json | undefined)?.['template'] as Json | undefined,
  StatefulSet: (o) => (o['spec'] as Json | undefined)?.['template'] as Json | undefined,
  DaemonSet: (o) => (o['spec'] as Json | undefined)?.['template'] as Json | undefined,
  ReplicaSet: (o) => (o['spec'] as Json | undefined)?.['template'] as Json | undefined,
  Job: (o) => (o['spec'] as Json | undefined)?.['template'] as Json | undefined,
  CronJob: (o) => (((o['spec'] as Json | undefined)?.['jobTemplate'] as Json | undefined)?.['spec'] as Json | undefined)?.['template'] as Json | undefined,
};

/** `trellis inject`: every Pod (or workload's Pod template) in `docs` injected,
 * unless it opts out with `trellis.dev/inject: "false"`; other objects unchanged. */
export function injectManifests(docs: unknown[], opts: InjectOptions): unknown[] {
  return docs.map((d) => {
    if (!d || typeof d !== 'object') return d;
    const obj = structuredClone(d) as Json;
    if (obj['kind'] === 'List' && Array.isArray(obj['items'])) return { ...obj, items: injectManifests(obj['items'], opts) };
    const template = TEMPLATE_KINDS[String(obj['kind'])]?.(obj);
    const spec = template?.['spec'] as PodSpec | undefined;
    if (!template || !spec || !Array.isArray(spec.containers)) return obj;
    const meta = (template['metadata'] ?? {}) as PodMeta;
    if (!wantsInjection(meta, { [INJECTION_LABEL]: 'enabled' })) return obj;
    const next = injectPodSpec(spec, meta, opts);
    if (next === spec) return obj;
    template['spec'] = next;
    template['metadata'] = { ...meta, annotations: { ...(meta.annotations ?? {}), [STATUS_ANNOTATION]: 'injected' } };
    return obj;
  });
}
