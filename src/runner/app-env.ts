// The environment an app gets in explicit mode. HTTP clients that honour
// HTTP_PROXY (curl, Go, Python requests, Node with NODE_USE_ENV_PROXY=1)
// send every call through the sidecar's outbound listener (via the port
// guard), which routes by Host. Loopback stays direct (NO_PROXY), so the
// app's own listener and local tools are not proxied. gRPC clients that
// tunnel through http_proxy (grpc-js) reach services by name with CONNECT;
// others, and raw TCP clients, dial the per-upstream local ports named in
// TRELLIS_UPSTREAM_<SERVICE>_<PORT>=127.0.0.1:<localPort>. Neither mode
// hands the app a control-plane credential (withoutCredentials).
import type { UpstreamDecl } from './sidecar.ts';

export interface AppEnvInput {
  base: NodeJS.ProcessEnv;
  /** The HTTP_PROXY target (the port guard, or the sidecar's outbound port). */
  proxy: { host: string; port: number };
  upstreams: readonly UpstreamDecl[];
  service: string;
  namespace: string;
  workload: string;
  ports: readonly { port: number }[];
}

/** `reviews-v2` + 9080 -> TRELLIS_UPSTREAM_REVIEWS_V2_9080. */
export function upstreamEnvName(service: string, port: number): string {
  return `TRELLIS_UPSTREAM_${service.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_${port}`;
}

/** A TRELLIS_* variable that is a credential for the control plane (the
 * sidecar's join token or its file, API tokens, keys, passwords). */
const CREDENTIAL = /^TRELLIS_(?:\w*_)?(?:JOIN_TOKEN|TOKEN|SECRET|PASSWORD|PASSPHRASE|CREDENTIALS?|KEY)(?:_\w*)?$/;

/**
 * The runner's environment without control-plane credentials: the sidecar
 * needs the join token (it inherits the runner's environment), the app never
 * does, and anything the app can read, a compromised app can replay. Both
 * modes start the app from this.
 */
export function withoutCredentials(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) if (!CREDENTIAL.test(k.toUpperCase())) env[k] = v;
  return env;
}

export function explicitAppEnv(i: AppEnvInput): NodeJS.ProcessEnv {
  const proxyUrl = `http://${i.proxy.host}:${i.proxy.port}`;
  const noProxy = 'localhost,127.0.0.1,::1';
  const env: NodeJS.ProcessEnv = {
    ...withoutCredentials(i.base),
    HTTP_PROXY: proxyUrl,
    http_proxy: proxyUrl,
    NO_PROXY: noProxy,
    no_proxy: noProxy,
    NODE_USE_ENV_PROXY: '1',
    TRELLIS_SERVICE: i.service,
    TRELLIS_NAMESPACE: i.namespace,
    TRELLIS_WORKLOAD: i.workload,
    TRELLIS_PORTS: i.ports.map((p) => p.port).join(','),
  };
  for (const u of i.upstreams) env[upstreamEnvName(u.service, u.port)] = `${u.localAddress ?? '127.0.0.1'}:${u.localPort}`;
  return env;
}
