// `trellis gateway --name NAME`: a Trellis proxy in gateway mode serving one
// Gateway (Gateway API) from the control plane: its listeners, the
// HTTPRoutes attached to it, TLS termination with the operator's
// certificates by SNI. See docs/gateways.md.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { gatewayBootstrap } from '../../control-plane/translate/gateway.ts';
import { run as runProxy } from './proxy.ts';

export const summary = 'run an ingress/egress gateway: a proxy serving a Gateway resource (HTTP, HTTPS by SNI) from the control plane';

const usage = `usage: trellis gateway --name NAME [options]

  --name NAME             the Gateway resource to serve (required)
  --namespace, -n NS      its namespace (default "default")
  --xds HOST:PORT         control plane xDS (default $TRELLIS_XDS or 127.0.0.1:15010)
  --listen-address ADDR   address the gateway's listeners bind (default 0.0.0.0)
  --port-map PORT=BOUND   serve the Gateway's listener PORT on BOUND (e.g. 80=8080 to run
                          unprivileged); repeatable
  --cert-dir DIR          where HTTPS certificateRefs resolve: DIR/<namespace>/<name>/tls.crt
                          and tls.key (the Kubernetes TLS Secret layout)
  --admin-port N          admin listener on 127.0.0.1 (default 15000; 0 picks a free port)
  --drain-ms N            drain on SIGTERM (default the proxy's)
  --join-token T          a join token for the gateway's SPIFFE identity, so it calls mesh
                          services over mTLS (or TRELLIS_JOIN_TOKEN)
  --identity-url URL      control plane API for the identity (default: the xDS host, port 15080)`;

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
        xds: { type: 'string', default: process.env.TRELLIS_XDS ?? '127.0.0.1:15010' },
        'listen-address': { type: 'string', default: '0.0.0.0' },
        'port-map': { type: 'string', multiple: true, default: [] },
        'cert-dir': { type: 'string' },
        'admin-port': { type: 'string', default: '15000' },
        'drain-ms': { type: 'string' },
        'join-token': { type: 'string' },
        'identity-url': { type: 'string' },
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
  if (!/^[^:]+:\d{1,5}$/.test(values.xds)) return fail(`--xds ${JSON.stringify(values.xds)}: expected HOST:PORT`);
  const portMap: Record<number, number> = {};
  for (const m of values['port-map']) {
    const r = /^(\d{1,5})=(\d{1,5})$/.exec(m);
    if (!r || Number(r[1]) < 1 || Number(r[1]) > 65535 || Number(r[2]) > 65535) return fail(`--port-map ${JSON.stringify(m)}: expected PORT=BOUND (1-65535)`);
    portMap[Number(r[1])] = Number(r[2]);
  }
  const adminPort = Number(values['admin-port']);
  if (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65535) return fail('--admin-port: must be a port number');
  const dir = mkdtempSync(path.join(os.tmpdir(), `trellis-gateway-${values.name}-`));
  const file = path.join(dir, 'gateway-bootstrap.json');
  writeFileSync(file, JSON.stringify(gatewayBootstrap({
    gateway: values.name,
    namespace: values.namespace,
    xdsAddress: values.xds,
    admin: { address: '127.0.0.1', port: adminPort },
    listenAddress: values['listen-address'],
    portMap,
    ...(values['cert-dir'] ? { certDir: path.resolve(values['cert-dir']) } : {}),
  }), null, 2));
  return runProxy([
    '--config', file, '--no-watch',
    ...(values['drain-ms'] ? ['--drain-ms', values['drain-ms']] : []),
    ...(values['join-token'] ? ['--join-token', values['join-token']] : []),
    ...(values['identity-url'] ? ['--identity-url', values['identity-url']] : []),
  ]);
}
