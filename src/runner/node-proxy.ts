// The per-node fallback proxy (`trellis node-proxy`): one shared proxy per
// host with the outbound view of the mesh (node kind 'node-proxy': the
// explicit-mode outbound listener routing by Host to every service, no
// inbound). Workloads' port guards fail over to it while their own sidecar
// is down — Istio ambient's ztunnel is the model: a per-node proxy carries
// the traffic, per-workload proxies add what needs them.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Sidecar, type ReadyResult } from './sidecar.ts';

export const DEFAULT_NODE_PROXY_PORT = 15101;
export const DEFAULT_NODE_PROXY_ADMIN_PORT = 15100;

export interface NodeProxyOptions {
  xdsAddress: string;
  /** The outbound port workloads fail over to. */
  outboundPort?: number;
  adminPort?: number;
  /** Namespace whose short service names the node proxy resolves. */
  namespace?: string;
  nodeName?: string;
  /** The node's locality (the proxy's xDS node). */
  locality?: { region?: string; zone?: string };
  drainMs?: number;
  proxyLog?: string;
  log?: (event: string, fields?: Record<string, unknown>) => void;
}

export interface NodeProxy {
  readonly outboundPort: number;
  readonly adminPort: number;
  readonly sidecar: Sidecar;
  stop(): Promise<void>;
}

export async function startNodeProxy(opts: NodeProxyOptions, readyTimeoutMs = 30_000): Promise<{ ok: true; proxy: NodeProxy } | (ReadyResult & { ok: false })> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'trellis-node-proxy-'));
  const outboundPort = opts.outboundPort ?? DEFAULT_NODE_PROXY_PORT;
  const adminPort = opts.adminPort ?? DEFAULT_NODE_PROXY_ADMIN_PORT;
  const node = opts.nodeName ?? os.hostname();
  const namespace = opts.namespace ?? 'default';
  const sidecar = new Sidecar(
    {
      kind: 'node-proxy',
      nodeId: `node-proxy/${node}`,
      cluster: 'node-proxy',
      namespace,
      xdsAddress: opts.xdsAddress,
      admin: { address: '127.0.0.1', port: adminPort },
      outbound: { address: '127.0.0.1', port: outboundPort },
      requiredListeners: ['outbound'],
      ...(opts.locality ? { locality: opts.locality } : {}),
      ...(existsSync('/usr/bin/setpriv') ? { wrap: ['setpriv', '--pdeathsig', 'SIGKILL', '--'] } : {}),
      drainMs: opts.drainMs ?? 5000,
      dir,
      logTo: opts.proxyLog ?? path.join(dir, 'proxy.log'),
    },
    opts.log ?? (() => {}),
  );
  const stop = async (): Promise<void> => {
    await sidecar.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  const ready = await sidecar.start(readyTimeoutMs);
  if (!ready.ok) {
    await stop();
    return ready;
  }
  return { ok: true, proxy: { outboundPort, adminPort, sidecar, stop } };
}
