// `trellis control-plane` (alias `trellis up`): starts the control plane:
// the resource API and dashboard port, the registry, and xDS for proxies.
import { parseArgs } from 'node:util';
import { startControlPlane } from '../../control-plane/control-plane.ts';

export const summary = 'start the control plane (API on :15080, xDS on :15010); alias: up';

const usage = `usage: trellis control-plane [--data-dir DIR | --etcd URL[,URL...]] [--host ADDR] [--api-port N] [--xds-port N] [--id NAME]

  --data-dir   embedded store directory (default .trellis/data)
  --etcd       share a real etcd with other replicas (highly available control plane)
  --host       address to bind (default 127.0.0.1)
  --api-port   HTTP API and dashboard (default 15080)
  --xds-port   xDS v3 ADS for proxies and proxyless gRPC clients (default 15010)`;

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
      id: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  let apiPort: number;
  let xdsPort: number;
  try {
    apiPort = port('api-port', values['api-port'], 15080);
    xdsPort = port('xds-port', values['xds-port'], 15010);
  } catch (err) {
    console.error(`trellis control-plane: ${(err as Error).message}`);
    return 2;
  }
  const cp = await startControlPlane({
    host: values.host,
    apiPort,
    xdsPort,
    ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
    ...(values.etcd ? { etcdEndpoints: values.etcd.split(',') } : {}),
    ...(values.id ? { id: values.id } : {}),
  });
  // Machine-readable readiness line for scripts and tests.
  console.log(JSON.stringify({ event: 'ready', api: cp.apiUrl, xds: cp.xdsAddress, id: cp.id }));
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await cp.close();
  return 0;
}
