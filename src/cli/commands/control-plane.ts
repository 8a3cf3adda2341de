// `trellis control-plane` (alias `trellis up`): starts the control plane:
// the resource API and dashboard port, the registry, and xDS for proxies.
import { parseArgs } from '../command-args.ts';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { ControlPlaneSettingsError, startControlPlane, type ControlPlaneOptions } from '../../control-plane/control-plane.ts';
import { DEFAULT_KIND_QUOTA } from '../../control-plane/resources/service.ts';
import { DEFAULT_SIDECAR_IMAGE } from '../../control-plane/kubernetes/inject.ts';
import { parseDuration } from '../../api/schema-common.ts';
import type { MeshIdentityOptions } from '../../control-plane/ca/mesh-identity.ts';
import { kubeConfigFor, KubeConfigError } from '../../control-plane/kubernetes/kubeconfig.ts';
import { isHttpUrl } from '../../lib/http-url.ts';

export const summary = 'start the control plane (API on :15080, xDS on :15010); alias: up';

const usage = `usage: trellis control-plane [--data-dir DIR | --etcd URL[,URL...]] [--kubernetes [--kubeconfig PATH]] [--host ADDR] [--api-port N] [--xds-port N] [--id NAME]

  --data-dir   embedded store directory (default .trellis/data)
  --etcd       share a real etcd with other replicas (highly available control plane)
  --host       address to bind (default 127.0.0.1); on any other address the API
               requires credentials (docs/security-model.md)
  --require-auth  require API credentials on loopback too (anonymous loopback
               callers are admin otherwise); the first admin token is written to
               <data-dir>/admin-token
  --api-port   HTTP API and dashboard (default 15080)
  --xds-port   plaintext xDS v3 ADS for proxies and proxyless gRPC clients (default 15010);
               served only on loopback (or with --insecure-plaintext)
  --xds-tls-port  xDS over mutual TLS: proxies present their workload certificate and get
               only their own identity's config (default 15012 when --host is not
               loopback; on loopback only when given)
  --san NAME   an extra DNS name or IP address for the control plane's serving certificate
               (repeatable; the bind address, localhost and the host name are always in it)
  --insecure-plaintext  bound beyond loopback, serve plaintext xDS and a plaintext API anyway
               (NOT recommended: anyone on the network reads configs and API tokens)
  --id         this replica's name (xDS control_plane.identifier, leader election)
  --leader-ttl seconds a dead leader keeps its singleton duties (default 10)
  --cluster-domain D  DNS suffix of service names, <name>.<ns>.svc.D (default
                      cluster.local, as Kubernetes; separate from --trust-domain)
  --prometheus-url URL  answer golden metrics (stat, top, edges, dashboard) from this
                      Prometheus instead of the embedded scraper; point its
                      http_sd_configs at <api>/api/v1/metrics/prometheus-sd
  --max-objects-per-kind N   resources of one kind the API accepts (default 10000)
  --max-bytes-per-kind N     bytes of one kind's stored resources (default 33554432, 32 MiB)

Kubernetes mode (docs/kubernetes.md):
  --kubernetes             serve the cluster's Services, Pods, EndpointSlices and Gateway
                           API routes to the mesh; write route status back
  --kubeconfig PATH        the API server and credentials (default: $KUBECONFIG, then
                           the pod's in-cluster service account, then ~/.kube/config)
  --kube-context NAME      a kubeconfig context other than its current-context
  --injection-port N       serve the sidecar injection webhook (HTTPS, POST /inject) on N
  --injection-hosts H,...  names/IPs the API server dials it at: its certificate's SANs
                           (default trellis.trellis-system.svc)
  --injection-webhook NAME the MutatingWebhookConfiguration whose caBundle is patched at
                           start (default trellis-sidecar-injector)
  --sidecar-image IMG      image of injected sidecars (default ${DEFAULT_SIDECAR_IMAGE})
  --sidecar-xds ADDR       where injected sidecars reach xDS (default trellis.trellis-system.svc:15010)
  --sidecar-api URL        where they reach the CA (default http://trellis.trellis-system.svc:15080)

identity and mTLS (docs/identity-and-mtls.md):
  --trust-domain TD        SPIFFE trust domain (default cluster.local)
  --ca-cert FILE --ca-key FILE
                           an operator CA (PEM, ECDSA P-256, PKCS#8 key) instead of the
                           generated root kept in the store; its key is never stored.
                           An intermediate CA is followed in FILE by its chain up to
                           the root (or give the root with --ca-root): the root's
                           certificate is the trust anchor, its key stays offline
  --ca-root FILE           the offline root (and any CAs between it and --ca-cert), PEM
  --workload-cert-ttl D    workload certificate lifetime (default 24h)
  --no-identity            no CA and no automatic mTLS`;

function port(name: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--${name}: must be a port number (0-65535), got "${v}"`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'data-dir': { type: 'string' },
      etcd: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      'api-port': { type: 'string' },
      'xds-port': { type: 'string' },
      'xds-tls-port': { type: 'string' },
      san: { type: 'string', multiple: true },
      'insecure-plaintext': { type: 'boolean' },
      id: { type: 'string' },
      'leader-ttl': { type: 'string' },
      'cluster-domain': { type: 'string' },
      'prometheus-url': { type: 'string' },
      'trust-domain': { type: 'string' },
      'ca-cert': { type: 'string' },
      'ca-root': { type: 'string' },
      'ca-key': { type: 'string' },
      'workload-cert-ttl': { type: 'string' },
      'no-identity': { type: 'boolean' },
      kubernetes: { type: 'boolean' },
      kubeconfig: { type: 'string' },
      'kube-context': { type: 'string' },
      'max-objects-per-kind': { type: 'string' },
      'max-bytes-per-kind': { type: 'string' },
      'injection-port': { type: 'string' },
      'injection-hosts': { type: 'string' },
      'injection-webhook': { type: 'string' },
      'sidecar-image': { type: 'string' },
      'sidecar-xds': { type: 'string' },
      'sidecar-api': { type: 'string' },
      'require-auth': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  let apiPort: number;
  let xdsPort: number;
  let xdsTlsPort: number | undefined;
  try {
    apiPort = port('api-port', values['api-port'], 15080);
    xdsPort = port('xds-port', values['xds-port'], 15010);
    // Default: 15012 when bound beyond loopback (startControlPlane); on loopback only when asked.
    xdsTlsPort = values['xds-tls-port'] === undefined ? undefined : port('xds-tls-port', values['xds-tls-port'], 15012);
  } catch (err) {
    console.error(`trellis control-plane: ${(err as Error).message}`);
    return 2;
  }
  const quota = { ...DEFAULT_KIND_QUOTA };
  for (const [flag, field] of [['max-objects-per-kind', 'maxObjects'], ['max-bytes-per-kind', 'maxBytes']] as const) {
    const text = values[flag];
    if (text === undefined) continue;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) {
      console.error(`trellis control-plane: --${flag}: must be a whole number >= 1, got "${text}"`);
      return 2;
    }
    quota[field] = n;
  }
  const leaderTtl = values['leader-ttl'] === undefined ? undefined : Number(values['leader-ttl']);
  if (leaderTtl !== undefined && (!Number.isInteger(leaderTtl) || leaderTtl < 1)) {
    console.error(`trellis control-plane: --leader-ttl: must be a whole number of seconds >= 1, got "${values['leader-ttl']}"`);
    return 2;
  }
  const clusterDomain = values['cluster-domain'];
  if (clusterDomain !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(clusterDomain)) {
    console.error(`trellis control-plane: --cluster-domain: must be a lowercase DNS name such as cluster.local, got "${clusterDomain}"`);
    return 2;
  }
  const prometheusUrl = values['prometheus-url'];
  if (prometheusUrl !== undefined && !isHttpUrl(prometheusUrl)) {
    console.error(`trellis control-plane: --prometheus-url: must be an http:// or https:// URL such as http://127.0.0.1:9090, got "${prometheusUrl}"`);
    return 2;
  }
  let identity: MeshIdentityOptions | false | undefined;
  try {
    identity = identityOptions(values);
  } catch (err) {
    console.error(`trellis control-plane: ${(err as Error).message}`);
    return 2;
  }
  if (!values.kubernetes && (values.kubeconfig !== undefined || values['kube-context'] !== undefined)) {
    console.error('trellis control-plane: --kubeconfig and --kube-context need --kubernetes');
    return 2;
  }
  const injectionFlags = ['injection-port', 'injection-hosts', 'injection-webhook', 'sidecar-image', 'sidecar-xds', 'sidecar-api'] as const;
  const setInjection = injectionFlags.filter((f) => values[f] !== undefined);
  if (setInjection.length > 0 && (!values.kubernetes || values['injection-port'] === undefined)) {
    console.error(`trellis control-plane: --${setInjection[0]} needs --kubernetes and --injection-port`);
    return 2;
  }
  let injection: ControlPlaneOptions['injection'];
  if (values['injection-port'] !== undefined) {
    let injectionPort: number;
    try {
      injectionPort = port('injection-port', values['injection-port'], 15017);
    } catch (err) {
      console.error(`trellis control-plane: ${(err as Error).message}`);
      return 2;
    }
    const hosts = (values['injection-hosts'] ?? 'trellis.trellis-system.svc').split(',').map((h) => h.trim()).filter((h) => h !== '');
    injection = {
      host: values.host ?? '127.0.0.1', port: injectionPort, hosts,
      ...(values['injection-webhook'] ? { webhookConfig: values['injection-webhook'] } : {}),
      inject: {
        image: values['sidecar-image'] ?? DEFAULT_SIDECAR_IMAGE,
        xdsAddress: values['sidecar-xds'] ?? 'trellis.trellis-system.svc:15010',
        identityUrl: values['sidecar-api'] ?? 'http://trellis.trellis-system.svc:15080',
      },
    };
  }
  let kubernetes;
  try {
    kubernetes = values.kubernetes ? kubeConfigFor({ kubeconfig: values.kubeconfig, context: values['kube-context'] }) : undefined;
  } catch (err) {
    console.error(`trellis control-plane: ${(err as Error).message}`);
    return 2;
  }
  const host = values.host;
  for (const [flag, p] of [['api-port', apiPort], ['xds-port', xdsPort]] as const) {
    const busy = await portInUse(host, p);
    if (busy) {
      console.error(`trellis control-plane: ${portInUseMessage(flag, host, p, busy)}`);
      return 1;
    }
  }
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  try {
    cp = await startControlPlane({
      host,
      apiPort,
      xdsPort,
      ...(identity === false || xdsTlsPort === undefined ? {} : { xdsTlsPort }),
      ...(values.san ? { sans: values.san } : {}),
      ...(values['insecure-plaintext'] ? { insecurePlaintext: true } : {}),
      ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
      ...(values.etcd ? { etcdEndpoints: values.etcd.split(',') } : {}),
      ...(values.id ? { id: values.id } : {}),
      ...(leaderTtl === undefined ? {} : { leaderTtlSeconds: leaderTtl }),
      ...(identity === undefined ? {} : { identity }),
      ...(clusterDomain === undefined ? {} : { clusterDomain }),
      ...(prometheusUrl === undefined ? {} : { prometheusUrl }),
      ...(kubernetes ? { kubernetes } : {}),
      ...(injection ? { injection } : {}),
      quota,
      ...(values['require-auth'] ? { requireAuth: true } : {}),
    });
  } catch (err) {
    // The cluster refused us (credentials, RBAC), or settings that cannot
    // work together (a TLS bind without a CA): the reason, no stack.
    if (err instanceof KubeConfigError || err instanceof ControlPlaneSettingsError) {
      console.error(`trellis control-plane: ${err.message}`);
      return 1;
    }
    // A CA the flags describe but that cannot be used (not a CA, no path to a root, pathLen): the reason, no stack.
    if (err instanceof Error && err.message.startsWith('CA: ')) {
      console.error(`trellis control-plane: ${err.message}`);
      return 2;
    }
    const why = startFailure(err, host, apiPort, xdsPort, values['data-dir']);
    if (why === undefined) throw err; // a bug: keep the stack
    console.error(`trellis control-plane: ${why}`);
    return 1;
  }
  // Machine-readable readiness line for scripts and tests.
  console.log(JSON.stringify({ event: 'ready', api: cp.apiUrl, xds: cp.xdsAddress, ...(cp.xdsTlsAddress ? { xdsTls: cp.xdsTlsAddress } : {}), id: cp.id, ...(cp.identity ? { caPin: cp.identity.ca.caPin() } : {}) }));
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await cp.close();
  return 0;
}

function identityOptions(v: Record<string, string | string[] | boolean | undefined>): MeshIdentityOptions | false | undefined {
  if (v['no-identity']) return false as const;
  const certFile = v['ca-cert'] as string | undefined;
  const keyFile = v['ca-key'] as string | undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new Error('--ca-cert and --ca-key go together');
  const rootFile = v['ca-root'] as string | undefined;
  if (rootFile !== undefined && certFile === undefined) throw new Error('--ca-root: needs --ca-cert and --ca-key (the CA under that root)');
  const ttlText = v['workload-cert-ttl'] as string | undefined;
  const ttl = ttlText === undefined ? undefined : parseDuration(ttlText);
  if (ttlText !== undefined && (ttl === undefined || ttl < 1000)) throw new Error(`--workload-cert-ttl: must be a duration of at least 1s such as 24h or 30m (got "${ttlText}")`);
  const td = v['trust-domain'] as string | undefined;
  if (!certFile && ttl === undefined && td === undefined) return undefined;
  return {
    ...(td === undefined ? {} : { trustDomain: td }),
    ...(ttl === undefined ? {} : { workloadTtlMs: ttl }),
    ...(certFile && keyFile ? { operatorCa: {
      certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8'),
      ...(rootFile ? { rootPem: readFileSync(rootFile, 'utf8') } : {}),
    } } : {}),
  };
}

/** The socket error code when `host:port` cannot be bound (EADDRINUSE,
 * EACCES...), else undefined. Port 0 always binds. */
function portInUse(host: string, port: number): Promise<string | undefined> {
  if (port === 0) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(undefined)));
  });
}

function portInUseMessage(flag: 'api-port' | 'xds-port', host: string, port: number, code: string): string {
  const what = flag === 'api-port' ? 'the API and dashboard port' : 'the xDS port';
  const reason = code === 'EADDRINUSE' ? 'is already in use (another control plane, or `trellis demo`?)' : code === 'EACCES' ? 'may not be bound by this user' : `cannot be bound (${code})`;
  return `${what} ${host}:${port} ${reason}; choose another with --${flag} N (0 picks a free port)`;
}

/** What went wrong starting, in the operator's terms, for mistakes the
 * operator can fix; undefined for anything else. */
function startFailure(err: unknown, host: string, apiPort: number, xdsPort: number, dataDir: string | undefined): string | undefined {
  const e = err as { name?: string; code?: string; message?: string; port?: number };
  const message = e.message ?? '';
  if (e.code === 'EADDRINUSE' || /EADDRINUSE/.test(message)) {
    const port = e.port ?? Number(/:(\d+)\b(?!.*:\d)/.exec(message)?.[1]);
    const flag = port === xdsPort || /No address added/.test(message) ? 'xds-port' : 'api-port';
    return portInUseMessage(flag, host, flag === 'xds-port' ? xdsPort : apiPort, 'EADDRINUSE');
  }
  if (e.name === 'StoreError' && /is locked by running process/.test(message)) {
    return `${message}. Stop that control plane, or give this one its own store with --data-dir DIR (now ${dataDir ?? '.trellis/data'})`;
  }
  return undefined;
}
