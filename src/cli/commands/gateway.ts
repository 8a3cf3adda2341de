// `trellis gateway --name NAME`: a Trellis proxy in gateway mode serving one
// Gateway (Gateway API) from the control plane: its listeners, the
// HTTPRoutes attached to it, TLS termination with the operator's
// certificates by SNI; or, for a Gateway of class `trellis-egress`, the
// mesh's egress gateway. With `--register` it enters the workload registry
// (label `trellis.dev/gateway: NAME`, each `--port-map` port as a meshed
// port), heartbeats and deregisters on exit, so sidecars can find it.
// See docs/gateways.md.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from '../command-args.ts';
import { gatewayBootstrap } from '../../control-plane/translate/gateway.ts';
import { GATEWAY_LABEL } from '../../control-plane/translate/egress.ts';
import { keepRegistered, RegistryClient, type WorkloadRegistration } from '../../runner/registration.ts';
import { proveWorkloadIdentity } from '../../runner/workload-proof.ts';
import { freePort } from '../../runner/ports.ts';
import { TLS_MODE_LABEL } from '../../control-plane/translate/services.ts';
import { run as runProxy } from './proxy.ts';
import { LOCALITY_OPTIONS, parseLocality } from '../command-args.ts';
import { CONTROL_PLANE_OPTIONS, controlPlaneTarget, xdsFor, type Target } from '../control-plane-target.ts';

export const summary = 'run an ingress/egress gateway: a proxy serving a Gateway resource (HTTP, HTTPS by SNI) from the control plane';

const usage = `usage: trellis gateway --name NAME [options]

  --name NAME             the Gateway resource to serve (required)
  --namespace, -n NS      its namespace (default "default")
  --server URL            control plane API, asked where xDS is; also the identity and
                          registry API (default $TRELLIS_SERVER, else the current context,
                          else http://127.0.0.1:15080)
  --context NAME          a context from the CLI config (trellis login)
  --xds HOST:PORT         deprecated: the xDS address instead of the API's ($TRELLIS_XDS)
  --listen-address ADDR   address the gateway's listeners bind (default 0.0.0.0)
  --port-map PORT=BOUND   serve the Gateway's listener PORT on BOUND (e.g. 80=8080 to run
                          unprivileged); repeatable
  --cert-dir DIR          where HTTPS certificateRefs resolve: DIR/<namespace>/<name>/tls.crt
                          and tls.key (the Kubernetes TLS Secret layout)
  --admin-port N          admin listener on 127.0.0.1 (default 15000; 0 picks a free port)
  --drain-ms N            drain on SIGTERM (default the proxy's)
  --join-token T          a join token for the gateway's SPIFFE identity, so it calls mesh
                          services over mTLS (or TRELLIS_JOIN_TOKEN)
  --identity-url URL      control plane API for the identity and the registry (default --server)
  --register              enter the workload registry (label trellis.dev/gateway=NAME, each
                          --port-map PORT as a meshed port on BOUND; BOUND 0 picks a free port),
                          so sidecars reach it: needed for an egress gateway (class trellis-egress)
  --service-account SA    the registered service account; must be the join token's
                          (default gateway-NAME)
  --advertise-address A   the registered address (default --listen-address, 127.0.0.1 for 0.0.0.0)
  --region R, --zone Z    the gateway's locality: its proxy's (preferZone, failover toward mesh
                          services) and, with --register, its endpoints'`;

function fail(msg: string): number {
  console.error(`trellis gateway: ${msg}\n\n${usage}`);
  return 2;
}

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        name: { type: 'string' },
        namespace: { type: 'string', short: 'n', default: 'default' },
        ...CONTROL_PLANE_OPTIONS,
        xds: { type: 'string' },
        'listen-address': { type: 'string', default: '0.0.0.0' },
        'port-map': { type: 'string', multiple: true, default: [] },
        'cert-dir': { type: 'string' },
        'admin-port': { type: 'string', default: '15000' },
        'drain-ms': { type: 'string' },
        'join-token': { type: 'string' },
        'identity-url': { type: 'string' },
        register: { type: 'boolean' },
        'service-account': { type: 'string' },
        'advertise-address': { type: 'string' },
        ...LOCALITY_OPTIONS,
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
  if (!values.name) return fail('--name is required');
  let target: Target;
  try {
    target = controlPlaneTarget('gateway', values);
  } catch (err) {
    return fail((err as Error).message);
  }
  const xds = await xdsFor('gateway', values.xds, target, { workloadIdentity: false });
  if (xds instanceof Error) {
    if (/^--xds /.test(xds.message)) return fail(xds.message);
    console.error(`trellis gateway: ${xds.message}`);
    return 1;
  }
  const apiUrl = values['identity-url'] ?? target.conn.server;
  const portMap: Record<number, number> = {};
  for (const m of values['port-map']) {
    const r = /^(\d{1,5})=(\d{1,5})$/.exec(m);
    if (!r || Number(r[1]) < 1 || Number(r[1]) > 65535 || Number(r[2]) > 65535) return fail(`--port-map ${JSON.stringify(m)}: expected PORT=BOUND (1-65535)`);
    portMap[Number(r[1])] = Number(r[2]);
  }
  const adminPort = Number(values['admin-port']);
  if (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65535) return fail('--admin-port: must be a port number');
  const locality = parseLocality(values);
  if (typeof locality === 'string') return fail(locality);
  if (values.register && Object.keys(portMap).length === 0) return fail('--register needs --port-map PORT=BOUND for the listener ports to register');
  if (values.register) {
    for (const [k, v] of Object.entries(portMap)) if (v === 0) portMap[Number(k)] = await freePort(values['listen-address']);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), `trellis-gateway-${values.name}-`));
  const file = path.join(dir, 'gateway-bootstrap.json');
  writeFileSync(file, JSON.stringify(gatewayBootstrap({
    gateway: values.name,
    namespace: values.namespace,
    xdsAddress: xds.address,
    admin: { address: '127.0.0.1', port: adminPort },
    listenAddress: values['listen-address'],
    portMap,
    ...(values['cert-dir'] ? { certDir: path.resolve(values['cert-dir']) } : {}),
    ...(Object.keys(locality).length > 0 ? { locality } : {}),
  }), null, 2));
  const proxyArgs = [
    '--config', file, '--no-watch',
    ...(values['drain-ms'] ? ['--drain-ms', values['drain-ms']] : []),
    ...(values['join-token'] ? ['--join-token', values['join-token']] : []),
    '--identity-url', apiUrl,
  ];
  if (!values.register) return runProxy(proxyArgs);
  const log = (event: string, fields: Record<string, unknown> = {}) => console.error(JSON.stringify({ component: 'gateway', event, ...fields }));
  const listen = values['listen-address'];
  const registration: WorkloadRegistration = {
    name: `gateway-${values.name}-${process.pid}`,
    namespace: values.namespace,
    serviceAccount: values['service-account'] ?? `gateway-${values.name}`,
    address: values['advertise-address'] ?? (listen === '0.0.0.0' || listen === '::' ? '127.0.0.1' : listen),
    ports: Object.entries(portMap).map(([p, bound]) => ({ port: Number(p), protocol: 'http' as const, proxyPort: bound })),
    // As `trellis run` does: callers originate mTLS only to a gateway that has
    // an identity (the control plane decides from the proof below; an admin's
    // label is taken as is).
    labels: { [GATEWAY_LABEL]: values.name, [TLS_MODE_LABEL]: values['join-token'] ?? process.env.TRELLIS_JOIN_TOKEN ? 'mtls' : 'none' },
    locality,
  };
  const joinToken = values['join-token'] ?? process.env.TRELLIS_JOIN_TOKEN;
  let proof: Awaited<ReturnType<typeof proveWorkloadIdentity>> | undefined;
  if (joinToken) {
    proof = await proveWorkloadIdentity({ apiUrl, joinToken });
    if (!proof.ok) {
      console.error(`trellis gateway: ${proof.message}`);
      return 1;
    }
  }
  const registry = new RegistryClient(apiUrl, proof?.ok ? { signer: proof.signer } : {});
  const reg = await registry.register(registration);
  if (!reg.ok) {
    console.error(`trellis gateway: registering ${values.namespace}/${registration.name}: ${reg.message}`);
    return 1;
  }
  log('registered', { workload: `${values.namespace}/${registration.name}`, ports: registration.ports });
  const keeper = keepRegistered(registry, registration, reg.value, log);
  try {
    return await runProxy(proxyArgs);
  } finally {
    keeper.stop();
    const d = await registry.deregister(values.namespace, registration.name);
    if (!d.ok) log('deregister_failed', { error: d.message });
    if (proof?.ok) proof.stop();
  }
}
