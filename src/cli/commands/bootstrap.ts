// `trellis bootstrap grpc --service NAME`: prints the xDS bootstrap a
// proxyless gRPC client (grpc-js-xds, gRPC C-core/Java/Go) reads from
// GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG, pointed at this control plane.
// `trellis bootstrap proxy --workload NAME`: prints a Trellis sidecar bootstrap
// (Envoy-shaped) that takes its config from the control plane over ADS.
import { parseArgs } from '../command-args.ts';
import { stringify } from 'yaml';
import { bootstrapForGrpc } from '../../xds/bootstrap.ts';

export const summary = 'print an xDS bootstrap: `grpc` for proxyless gRPC clients, `proxy` for a Trellis sidecar';

const usage = `usage:
  trellis bootstrap grpc --service NAME [-n NS] [--xds HOST:PORT] [--node-id ID] [--region R] [--zone Z]
  trellis bootstrap proxy --workload NAME [-n NS] [--xds HOST:PORT] [--admin-port N] [--outbound-port N] [-o yaml|json]

The gRPC client then dials \`xds:///<service>.<namespace>.svc:<port>\`.`;

export async function run(argv: string[]): Promise<number> {
  const [what, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      service: { type: 'string' },
      workload: { type: 'string' },
      namespace: { type: 'string', short: 'n', default: 'default' },
      xds: { type: 'string', default: process.env.TRELLIS_XDS ?? '127.0.0.1:15010' },
      'node-id': { type: 'string' },
      region: { type: 'string', default: '' },
      zone: { type: 'string', default: '' },
      'admin-port': { type: 'string', default: '15000' },
      'outbound-port': { type: 'string', default: '15001' },
      output: { type: 'string', short: 'o', default: 'json' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || (what !== 'grpc' && what !== 'proxy')) {
    console.log(usage);
    return values.help ? 0 : 2;
  }
  const locality = { region: values.region, zone: values.zone };
  if (what === 'grpc') {
    if (!values.service) {
      console.error('trellis bootstrap grpc: --service is required\n\n' + usage);
      return 2;
    }
    const nodeId = values['node-id'] ?? `${values.namespace}/${values.service}-grpc-${process.pid}`;
    const b = bootstrapForGrpc({
      serverUri: values.xds,
      nodeId,
      cluster: values.service,
      locality,
      metadata: { trellis: { kind: 'proxyless', namespace: values.namespace, workload: values.service } },
    });
    console.log(JSON.stringify(b, null, 2));
    return 0;
  }
  if (!values.workload) {
    console.error('trellis bootstrap proxy: --workload is required\n\n' + usage);
    return 2;
  }
  const adminPort = Number(values['admin-port']);
  const outboundPort = Number(values['outbound-port']);
  for (const [k, v] of [['--admin-port', adminPort], ['--outbound-port', outboundPort]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 65535) {
      console.error(`trellis bootstrap proxy: ${k}: must be a port number (0-65535)`);
      return 2;
    }
  }
  const b = {
    node: {
      id: values['node-id'] ?? `${values.namespace}/${values.workload}`,
      cluster: values.workload,
      locality,
      // `admin` tells the control plane where to scrape metrics and tap
      // (docs/telemetry.md); an ephemeral port (0) cannot be advertised.
      metadata: { trellis: { kind: 'sidecar', namespace: values.namespace, workload: values.workload, outbound: { address: '127.0.0.1', port: outboundPort }, ...(adminPort !== 0 ? { admin: `127.0.0.1:${adminPort}` } : {}) } },
    },
    admin: { address: { socketAddress: { address: '127.0.0.1', portValue: adminPort } } },
    dynamicResources: { ads: { address: values.xds } },
  };
  console.log(values.output === 'yaml' ? stringify(b) : JSON.stringify(b, null, 2));
  return 0;
}
