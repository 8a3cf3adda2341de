// `trellis run --service NAME --port 9080[:http] ... -- COMMAND...`: run a
// process in the mesh with its own sidecar (see docs/running.md).
import { parseArgs } from '../command-args.ts';
import { CONTROL_PLANE_OPTIONS, controlPlaneTarget, xdsFor, type Target } from '../control-plane-target.ts';
import { readFileSync } from 'node:fs';
import { discoverTrustBundle, resolveJoinToken } from '../../proxy/identity/ca-client.ts';
import { parseJoinToken } from '../../lib/ca-pin.ts';
import type { PortProtocol } from '../../control-plane/translate/model.ts';
import { defaultWorkloadName, runWorkload, type AppPort, type PodNetwork } from '../../runner/runner.ts';
import type { UpstreamDecl } from '../../runner/sidecar.ts';
import { LOCALITY_OPTIONS, parseLocality } from '../command-args.ts';

export const summary = 'run a process in the mesh with its own sidecar (explicit HTTP_PROXY mode, or --transparent in a network namespace)';

const usage = `usage: trellis run --service NAME --port APP_PORT[:PROTOCOL] ... [options] -- COMMAND [ARGS...]

  --service, -s NAME        the service this workload belongs to (label app=NAME)
  --namespace, -n NS        default "default"
  --service-account SA      default: the service name
  --workload NAME           instance name (default <service>[-<version label>]-<5 random chars>)
  --port, -p PORT[:PROTO[:NAME]]
                            an app port (the app listens on 127.0.0.1:PORT); PROTO http|http2|grpc|tcp
                            (default http); NAME is what a Service's targetPort can name
                            (default: the protocol, when it is the only port of it); repeatable
  --upstream SVC[.NS]:PORT[=LOCALPORT]
                            a local port for an upstream service (gRPC, TCP); the app gets
                            TRELLIS_UPSTREAM_<SVC>_<PORT>=127.0.0.1:LOCALPORT; without
                            LOCALPORT (or 0) a free one is picked; repeatable
  --server URL              control plane API (default $TRELLIS_SERVER, else the current
                            context, else http://127.0.0.1:15080); the xDS address is asked of
                            it (mutual TLS with a join token beyond loopback, else plaintext)
  --context NAME            a context from the CLI config (trellis login): its server and token
  --control-plane URL       deprecated spelling of --server ($TRELLIS_CONTROL_PLANE: $TRELLIS_SERVER)
  --xds HOST:PORT[,...]     deprecated: xDS addresses instead of the API's (one per replica; $TRELLIS_XDS)
  --xds-tls                 --xds is the mutual-TLS port
  --ca-file F               the mesh CA (PEM) to trust over HTTPS (or TRELLIS_CA_FILE; default:
                            the context's, else the CA pinned in the join token)
  --address ADDR            address registered for the workload (default 127.0.0.1)
  --label K=V               extra workload label; repeatable
  --region R, --zone Z      the workload's locality: its endpoints' and its sidecar's
                            (LoadBalancerPolicy locality: preferZone, failover)
  --node-proxy PORT         the per-node proxy's outbound port, used when the sidecar is down
  --transparent             run the app in its own network namespace with iptables capture (root, Linux)
  --drain-ms N              sidecar drain on exit (default 5000)
  --proxy-log FILE|inherit  where the sidecar's log goes (default a file in the run directory)

The runner exits with the app's exit code.`;

function fail(msg: string): number {
  console.error(`trellis run: ${msg}\n\n${usage}`);
  return 2;
}

const PROTOCOLS: readonly PortProtocol[] = ['http', 'http2', 'grpc', 'tcp'];

/** PORT[:PROTOCOL[:NAME]]. Without a name, a port that is the only one of
 * its protocol is named after it (runner.ts), so a Service's
 * `targetPort: http` finds it whatever number each instance listens on. */
export function parsePort(s: string): AppPort | string {
  const m = /^(\d{1,5})(?::([a-z0-9]+))?(?::([a-z0-9]([-a-z0-9]*[a-z0-9])?))?$/.exec(s);
  if (!m) return `--port ${JSON.stringify(s)}: expected PORT, PORT:PROTOCOL or PORT:PROTOCOL:NAME`;
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return `--port ${s}: port must be 1-65535`;
  const proto = (m[2] ?? 'http') as PortProtocol;
  if (!PROTOCOLS.includes(proto)) return `--port ${s}: protocol must be one of ${PROTOCOLS.join(', ')}`;
  if (m[3] !== undefined && m[3].length > 15) return `--port ${s}: name must be at most 15 characters (a Kubernetes port name)`;
  return { port, protocol: proto, ...(m[3] !== undefined ? { name: m[3] } : {}) };
}

export function parseUpstream(s: string): UpstreamDecl | string {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)(?:\.([a-z0-9]([-a-z0-9]*[a-z0-9])?))?:(\d{1,5})(?:=(\d{1,5}))?$/.exec(s);
  if (!m) return `--upstream ${JSON.stringify(s)}: expected SERVICE[.NAMESPACE]:PORT[=LOCALPORT]`;
  const port = Number(m[5]);
  // 0 or none: the runner picks a free local port (runner.ts).
  const localPort = Number(m[6] ?? 0);
  if (port < 1 || port > 65535 || localPort > 65535) return `--upstream ${s}: ports must be 1-65535 (LOCALPORT 0 picks one)`;
  return { service: m[1]!, ...(m[3] ? { namespace: m[3] } : {}), port, localPort };
}

export async function run(argv: string[]): Promise<number> {
  const dd = argv.indexOf('--');
  const own = dd >= 0 ? argv.slice(0, dd) : argv;
  const command = dd >= 0 ? argv.slice(dd + 1) : [];
  let values;
  try {
    ({ values } = parseArgs({
      args: own,
      options: {
        service: { type: 'string', short: 's' },
        namespace: { type: 'string', short: 'n', default: 'default' },
        'service-account': { type: 'string' },
        workload: { type: 'string' },
        port: { type: 'string', short: 'p', multiple: true, default: [] },
        upstream: { type: 'string', multiple: true, default: [] },
        ...CONTROL_PLANE_OPTIONS,
        xds: { type: 'string' },
        'xds-tls': { type: 'boolean' },
        'ca-file': { type: 'string' },
        address: { type: 'string' },
        label: { type: 'string', multiple: true, default: [] },
        ...LOCALITY_OPTIONS,
        'node-proxy': { type: 'string' },
        transparent: { type: 'boolean' },
        'drain-ms': { type: 'string', default: '5000' },
        'proxy-log': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    return fail((err as Error).message);
  }
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (!values.service) return fail('--service is required');
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(values.service)) return fail(`--service ${JSON.stringify(values.service)}: must be a DNS label`);
  if (command.length === 0) return fail('a command is required after --');
  const ports: AppPort[] = [];
  for (const p of values.port) {
    const r = parsePort(p);
    if (typeof r === 'string') return fail(r);
    ports.push(r);
  }
  const upstreams: UpstreamDecl[] = [];
  for (const u of values.upstream) {
    const r = parseUpstream(u);
    if (typeof r === 'string') return fail(r);
    upstreams.push(r);
  }
  const labels: Record<string, string> = {};
  for (const l of values.label) {
    const i = l.indexOf('=');
    if (i <= 0) return fail(`--label ${JSON.stringify(l)}: expected KEY=VALUE`);
    labels[l.slice(0, i)] = l.slice(i + 1);
  }
  const locality = parseLocality(values);
  if (typeof locality === 'string') return fail(locality);
  // The API and its token, chosen as for every command (control-plane-target.ts).
  let target: Target;
  try {
    target = controlPlaneTarget('run', values);
  } catch (err) {
    return fail((err as Error).message);
  }
  const conn = target.conn;
  const api = new URL(conn.server);
  // With a join token the sidecar holds a workload certificate: xDS over mutual TLS.
  let joinToken: string | undefined;
  try {
    joinToken = resolveJoinToken();
  } catch (err) {
    return fail(`TRELLIS_JOIN_TOKEN_FILE: ${(err as Error).message}`);
  }
  if (values['xds-tls'] === true && values.xds === undefined && !process.env.TRELLIS_XDS) return fail('--xds-tls: only with --xds (without it the control plane\'s API says which xDS port is mutual TLS)');
  if (values['xds-tls'] === true && !joinToken) return fail('--xds-tls: xDS over mutual TLS needs a workload identity: set TRELLIS_JOIN_TOKEN (trellis identity token ...)');
  // Over HTTPS: the CA to trust, from --ca-file, the context, or the join token's pin.
  let caBundle: string | undefined = conn.ca;
  const caFile = values['ca-file'] ?? process.env.TRELLIS_CA_FILE;
  if (caFile) {
    try {
      caBundle = readFileSync(caFile, 'utf8');
    } catch (err) {
      return fail(`--ca-file: ${(err as Error).message}`);
    }
  }
  if (api.protocol === 'https:' && caBundle === undefined) {
    const found = await discoverTrustBundle(conn.server, joinToken ? parseJoinToken(joinToken).caPin : undefined);
    if (!found.ok) return fail(found.message);
    caBundle = found.value;
  }
  // Where xDS is: the API says (its ports, on the API's host); --xds only as
  // the deprecated override (several replicas: HOST:PORT,HOST:PORT).
  const found = await xdsFor('run', values.xds, target, { workloadIdentity: joinToken !== undefined, ca: caBundle, list: true });
  if (found instanceof Error) {
    console.error(`trellis run: ${found.message}`);
    return /^--xds /.test(found.message) ? 2 : 1;
  }
  const xdsAddress = found.address;
  const xdsTls = found.tls || values['xds-tls'] === true;
  const drainMs = Number(values['drain-ms']);
  if (!Number.isInteger(drainMs) || drainMs < 0) return fail('--drain-ms: must be a non-negative integer');
  let nodeProxy: { host: string; port: number } | undefined;
  if (values['node-proxy'] !== undefined) {
    const n = Number(values['node-proxy']);
    if (!Number.isInteger(n) || n < 1 || n > 65535) return fail('--node-proxy: must be a port number');
    nodeProxy = { host: '127.0.0.1', port: n };
  }

  const log = (event: string, fields: Record<string, unknown> = {}): void => {
    process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), component: 'trellis-run', event, ...fields })}\n`);
  };

  log('control_plane', { api: conn.server, from: target.source, xds: xdsAddress, xdsTls });
  const workload = values.workload ?? defaultWorkloadName(values.service, labels);
  let pod: PodNetwork | undefined;
  if (values.transparent) {
    const { createPod } = await import('../../runner/transparent.ts');
    const made = await createPod({ name: workload, namespace: values.namespace, xdsAddress, apiUrl: api.toString(), log });
    if (!made.ok) {
      console.error(`trellis run: --transparent: ${made.message}`);
      return 1;
    }
    pod = made.pod;
  }
  return runWorkload({
    service: values.service,
    namespace: values.namespace,
    ...(values['service-account'] ? { serviceAccount: values['service-account'] } : {}),
    workload,
    ports,
    upstreams,
    apiUrl: api.toString(),
    ...(conn.token ? { apiToken: conn.token } : {}),
    ...(caBundle ? { caBundle } : {}),
    xdsAddress,
    ...(xdsTls ? { xdsTls: true } : {}),
    ...(values.address ? { address: values.address } : {}),
    labels,
    ...(Object.keys(locality).length > 0 ? { locality } : {}),
    command,
    ...(nodeProxy ? { nodeProxy } : {}),
    ...(pod ? { pod } : {}),
    drainMs,
    ...(values['proxy-log'] ? { proxyLog: values['proxy-log'] } : {}),
    log,
  });
}
