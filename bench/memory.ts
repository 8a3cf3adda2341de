// `npm run bench -- --only memory`: what one Trellis proxy holds with 10,
// 100 and 1,000 services in its config. Each service is what a sidecar's
// outbound config has for it: a virtual host (two domains) on the HTTP/1.1
// listener and one on the HTTP/2 listener, and a cluster behind each (the
// NGINX backend). RSS idle (3 s after the listeners answer) and peak under
// the throughput phases' loads (wrk, then h2load HTTP/2 and gRPC) through
// the first service.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PROXY_NODE_FLAGS, proxyEnv } from '../src/proxy/runtime.ts';
import { freePort, rssBytes, startBackend, waitForPort, warmCompileCache } from './peers.ts';

export interface MemoryRow {
  services: number;
  idleRssBytes: number;
  peakRssBytes: number;
}

const repoRoot = path.resolve(import.meta.dirname, '..');

export function manyServicesBootstrap(n: number, ports: { admin: number; h1: number; h2: number; upstreamH1: number; upstreamH2: number }): object {
  const cluster = (name: string, port: number, h2: boolean) => ({
    name,
    type: 'STATIC',
    connectTimeout: '1s',
    lbPolicy: 'ROUND_ROBIN',
    ...(h2
      ? { typedExtensionProtocolOptions: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions', explicitHttpConfig: { http2ProtocolOptions: {} } } } }
      : {}),
    loadAssignment: { clusterName: name, endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '127.0.0.1', portValue: port } } } }] }] },
  });
  const hcm = (name: string, codecType: string, suffix: string) => ({
    name: `${name}-chain`,
    filters: [{
      name: 'envoy.filters.network.http_connection_manager',
      typedConfig: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
        statPrefix: name,
        codecType,
        routeConfig: {
          name: `${name}-routes`,
          virtualHosts: Array.from({ length: n }, (_, i) => ({
            name: `svc-${i}`,
            domains: i === 0 ? ['*'] : [`svc-${i}`, `svc-${i}.bench.svc.cluster.local`],
            routes: [{ match: { prefix: '/' }, route: { cluster: `svc-${i}-${suffix}` } }],
          })),
        },
        httpFilters: [{ name: 'envoy.filters.http.router' }],
      },
    }],
  });
  const listener = (name: string, port: number, codecType: string) => ({
    name,
    address: { socketAddress: { address: '127.0.0.1', portValue: port } },
    trafficDirection: 'OUTBOUND',
    filterChains: [hcm(name, codecType, name)],
  });
  return {
    node: { id: 'bench-memory', cluster: 'bench' },
    admin: { address: { socketAddress: { address: '127.0.0.1', portValue: ports.admin } } },
    staticResources: {
      listeners: [listener('h1', ports.h1, 'HTTP1'), listener('h2', ports.h2, 'HTTP2')],
      clusters: Array.from({ length: n }, (_, i) => [cluster(`svc-${i}-h1`, ports.upstreamH1, false), cluster(`svc-${i}-h2`, ports.upstreamH2, true)]).flat(),
    },
  };
}

function runPinned(cpu: string, cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn('taskset', ['-c', cpu, cmd, ...args], { stdio: 'ignore' });
    c.on('error', reject);
    c.on('exit', () => resolve());
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(t);
}

export async function measureMemory(dir: string, phaseSec: number, proxyCpu: string, loadCpu: string, grpcFile: string, counts: readonly number[] = [10, 100, 1000]): Promise<MemoryRow[]> {
  warmCompileCache();
  const be = await startBackend(path.join(dir, 'backend'), loadCpu);
  const rows: MemoryRow[] = [];
  try {
    for (const n of counts) {
      const ports = { admin: await freePort(), h1: await freePort(), h2: await freePort(), upstreamH1: be.h1Port, upstreamH2: be.h2Port };
      const sub = path.join(dir, `services-${n}`);
      mkdirSync(sub, { recursive: true });
      const file = path.join(sub, 'bootstrap.json');
      writeFileSync(file, JSON.stringify(manyServicesBootstrap(n, ports)));
      const child = spawn('taskset', ['-c', proxyCpu, process.execPath, ...PROXY_NODE_FLAGS, path.join(repoRoot, 'bin/trellis.ts'), 'proxy', '--config', file], { stdio: 'ignore', env: proxyEnv() });
      try {
        await waitForPort(ports.h1, 60_000);
        await waitForPort(ports.h2, 60_000);
        await sleep(3000);
        const pid = child.pid ?? -1;
        const idle = rssBytes(pid);
        let peak = idle;
        const timer = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 200);
        const secs = String(phaseSec);
        await runPinned(loadCpu, 'wrk', ['-t1', '-c32', `-d${secs}s`, `http://127.0.0.1:${ports.h1}/`]);
        await runPinned(loadCpu, 'h2load', ['-t1', '-c16', '-m10', '-D', secs, `http://127.0.0.1:${ports.h2}/`]);
        await runPinned(loadCpu, 'h2load', ['-t1', '-c16', '-m10', '-D', secs, '-d', grpcFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers', `http://127.0.0.1:${ports.h2}/bench.Echo/Unary`]);
        clearInterval(timer);
        peak = Math.max(peak, rssBytes(pid));
        rows.push({ services: n, idleRssBytes: idle, peakRssBytes: peak });
        console.log(`  ${String(n).padStart(5)} services: idle ${(idle / 1048576).toFixed(0)} MB, peak ${(peak / 1048576).toFixed(0)} MB`);
      } finally {
        await stop(child);
      }
    }
  } finally {
    await be.stop();
  }
  return rows;
}
