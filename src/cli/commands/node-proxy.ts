// `trellis node-proxy`: the per-node shared proxy that workloads fail over
// to when their own sidecar is down (see docs/running.md).
import { parseArgs } from '../command-args.ts';
import { DEFAULT_NODE_PROXY_ADMIN_PORT, DEFAULT_NODE_PROXY_PORT, startNodeProxy } from '../../runner/node-proxy.ts';
import { LOCALITY_OPTIONS, parseLocality } from '../command-args.ts';
import { CONTROL_PLANE_OPTIONS, controlPlaneTarget, xdsFor, type Target } from '../control-plane-target.ts';

export const summary = 'run the per-node shared proxy (fallback for workloads whose sidecar is down)';

const usage = `usage: trellis node-proxy [--server URL] [--port N] [--admin-port N] [-n NS] [--region R] [--zone Z] [--proxy-log FILE|inherit]

  --server URL        control plane API, asked where xDS is (default $TRELLIS_SERVER, else the
                      current context, else http://127.0.0.1:15080)
  --context NAME      a context from the CLI config (trellis login)
  --xds HOST:PORT     deprecated: the xDS address instead of the API's ($TRELLIS_XDS)
  --port N            outbound port workloads fail over to (default ${DEFAULT_NODE_PROXY_PORT}); pass it to \`trellis run --node-proxy N\`
  --admin-port N      admin port (default ${DEFAULT_NODE_PROXY_ADMIN_PORT})
  --namespace, -n NS  namespace for short service names (default "default")
  --region R, --zone Z
                      the node's locality (LoadBalancerPolicy locality: preferZone, failover)`;

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        ...CONTROL_PLANE_OPTIONS,
        xds: { type: 'string' },
        port: { type: 'string', default: String(DEFAULT_NODE_PROXY_PORT) },
        'admin-port': { type: 'string', default: String(DEFAULT_NODE_PROXY_ADMIN_PORT) },
        namespace: { type: 'string', short: 'n', default: 'default' },
        ...LOCALITY_OPTIONS,
        'proxy-log': { type: 'string', default: 'inherit' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    console.error(`trellis node-proxy: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const port = Number(values.port);
  const adminPort = Number(values['admin-port']);
  for (const [k, v] of [['--port', port], ['--admin-port', adminPort]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 65535) {
      console.error(`trellis node-proxy: ${k}: must be a port number (1-65535)`);
      return 2;
    }
  }
  const locality = parseLocality(values);
  if (typeof locality === 'string') {
    console.error(`trellis node-proxy: ${locality}`);
    return 2;
  }
  const log = (event: string, fields: Record<string, unknown> = {}): void => {
    process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), component: 'trellis-node-proxy', event, ...fields })}\n`);
  };
  let target: Target;
  try {
    target = controlPlaneTarget('node-proxy', values);
  } catch (err) {
    console.error(`trellis node-proxy: ${(err as Error).message}`);
    return 2;
  }
  const xds = await xdsFor('node-proxy', values.xds, target, { workloadIdentity: false });
  if (xds instanceof Error) {
    console.error(`trellis node-proxy: ${xds.message}`);
    return /^--xds /.test(xds.message) ? 2 : 1;
  }
  log('control_plane', { api: target.conn.server, from: target.source, xds: xds.address });
  const started = await startNodeProxy({ xdsAddress: xds.address, outboundPort: port, adminPort, namespace: values.namespace, locality, proxyLog: values['proxy-log'], log });
  if (!started.ok) {
    console.error(`trellis node-proxy: ${started.message}`);
    return 1;
  }
  log('ready', { outbound: port, admin: adminPort });
  await new Promise<void>((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve());
  });
  await started.proxy.stop();
  return 0;
}
