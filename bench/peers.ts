// The things `npm run bench` measures, each started as a real process on
// loopback: the NGINX backend, HAProxy and NGINX as peer proxies, one Trellis
// proxy, and a Trellis sidecar pair (client proxy -> server proxy), also with
// mutual TLS between the two (`trellis-mtls`). Configs
// are generated into a temporary directory; nothing listens beyond the run.
import { testWasm } from '../scripts/build-test-wasm.ts';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import http from 'node:http';
import { startCertificateAuthority } from '../src/control-plane/ca/ca.ts';
import { fakeCaStore } from '../src/control-plane/ca/fake-store.ts';
import { identityRoutes } from '../src/control-plane/ca/identity-routes.ts';
import { Router } from '../src/control-plane/api/router.ts';
import { downstreamTlsSocket, upstreamTlsSocket } from '../src/control-plane/translate/mtls.ts';
import { PROXY_NODE_FLAGS, proxyEnv } from '../src/proxy/runtime.ts';

export const BODY_1K = 'x'.repeat(1024);
/** One gRPC message frame (5-byte prefix + a 5-byte protobuf message). */
export const GRPC_FRAME = Buffer.from([0, 0, 0, 0, 5, 0x0a, 0x03, 0x61, 0x62, 0x63]);

export interface Peer {
  name: string;
  /** Processes whose CPU and RSS count as "the proxy". */
  pids: number[];
  /** Where clients connect: HTTP/1.1 and HTTP/2 (h2c prior knowledge, gRPC). */
  h1Port: number;
  h2Port: number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

function launch(cmd: string, args: string[], cpu: string, logFile: string, env?: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn('taskset', ['-c', cpu, cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'], ...(env ? { env } : {}) });
  const chunks: Buffer[] = [];
  child.stderr?.on('data', (c: Buffer) => chunks.push(c));
  child.on('exit', () => writeFileSync(logFile, Buffer.concat(chunks)));
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(t);
}

/** taskset wraps the real program: the pid we measure is the child's. */
function pidOf(child: ChildProcess): number {
  return child.pid ?? -1;
}

const ngxTemps = (dir: string): string =>
  ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir};`).join(' ');

export async function startBackend(dir: string, cpu: string): Promise<{ h1Port: number; h2Port: number; stop(): Promise<void> }> {
  mkdirSync(dir, { recursive: true });
  const h1Port = await freePort();
  const h2Port = await freePort();
  writeFileSync(path.join(dir, 'grpc.bin'), GRPC_FRAME);
  writeFileSync(path.join(dir, 'body.txt'), BODY_1K);
  const conf = `worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off; keepalive_requests 10000000; keepalive_timeout 300s; http2_max_requests 10000000; ${ngxTemps(dir)}
  server { listen 127.0.0.1:${h1Port};
    location / { default_type text/plain; return 200 "${BODY_1K}"; } }
  server { listen 127.0.0.1:${h2Port} http2;
    location / { default_type text/plain; return 200 "${BODY_1K}"; }
    location = /bench.Echo/Unary { default_type application/grpc; add_trailer grpc-status 0; add_trailer grpc-message ""; error_page 405 =200 $uri; alias ${dir}/grpc.bin; } }
}`;
  writeFileSync(path.join(dir, 'backend.conf'), conf);
  const child = launch('nginx', ['-c', path.join(dir, 'backend.conf'), '-p', dir], cpu, path.join(dir, 'backend.log'));
  await waitForPort(h1Port);
  await waitForPort(h2Port);
  return { h1Port, h2Port, stop: () => stopChild(child) };
}

export async function startHaproxy(dir: string, cpu: string, be: { h1Port: number; h2Port: number }): Promise<Peer> {
  const h1Port = await freePort();
  const h2Port = await freePort();
  const conf = `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend fe_h1
  bind 127.0.0.1:${h1Port}
  default_backend be_h1
frontend fe_h2
  bind 127.0.0.1:${h2Port} proto h2
  default_backend be_h2
backend be_h1
  server s1 127.0.0.1:${be.h1Port}
backend be_h2
  server s1 127.0.0.1:${be.h2Port} proto h2
`;
  const file = path.join(dir, 'haproxy.cfg');
  writeFileSync(file, conf);
  const child = launch('haproxy', ['-db', '-f', file], cpu, path.join(dir, 'haproxy.log'));
  await waitForPort(h1Port);
  await waitForPort(h2Port);
  return { name: 'haproxy', pids: [pidOf(child)], h1Port, h2Port, stop: () => stopChild(child) };
}

export async function startNginxProxy(dir: string, cpu: string, be: { h1Port: number; h2Port: number }): Promise<Peer> {
  const h1Port = await freePort();
  const h2Port = await freePort();
  const conf = `worker_processes 1; daemon off; pid ${dir}/nginx-proxy.pid; error_log ${dir}/nginx-proxy-error.log warn;
events { worker_connections 8192; }
http {
  access_log off; keepalive_requests 10000000; keepalive_timeout 300s; http2_max_requests 10000000; ${ngxTemps(dir)}
  upstream be_h1 { server 127.0.0.1:${be.h1Port}; keepalive 128; keepalive_requests 10000000; }
  server { listen 127.0.0.1:${h1Port};
    location / { proxy_pass http://be_h1; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; } }
  server { listen 127.0.0.1:${h2Port} http2;
    location /bench.Echo/ { grpc_pass grpc://127.0.0.1:${be.h2Port}; }
    location / { proxy_pass http://be_h1; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}`;
  const file = path.join(dir, 'nginx-proxy.conf');
  writeFileSync(file, conf);
  const child = launch('nginx', ['-c', file, '-p', dir], cpu, path.join(dir, 'nginx-proxy.log'));
  await waitForPort(h1Port);
  await waitForPort(h2Port);
  return { name: 'nginx', pids: [pidOf(child)], h1Port, h2Port, stop: () => stopChild(child) };
}

/** An Envoy-shaped Trellis bootstrap: one listener per protocol family,
 * HTTP/1.1 to the backend's h1 port, HTTP/2 and gRPC to its h2 port. */
export function trellisBootstrap(opts: {
  adminPort: number; h1Port: number; h2Port: number; upstreamH1: number; upstreamH2: number;
  /** mTLS: `server` terminates it on the listeners; `client` originates it to the clusters, expecting `sans`. */
  mtls?: { role: 'server' } | { role: 'client'; sans: string[] };
  /** HTTP filters before the router (the plugin rows). */
  httpFilters?: object[];
}): object {
  const serverTls = opts.mtls?.role === 'server';
  const hcm = (name: string, cluster: string, codecType: string) => ({
    name: `${name}-chain`,
    ...(serverTls ? { filterChainMatch: { transportProtocol: 'tls' }, transportSocket: downstreamTlsSocket() } : {}),
    filters: [
      {
        name: 'envoy.filters.network.http_connection_manager',
        typedConfig: {
          '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
          statPrefix: name,
          codecType: serverTls ? 'AUTO' : codecType,
          routeConfig: {
            name: `${name}-routes`,
            virtualHosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster } }] }],
          },
          httpFilters: [...(opts.httpFilters ?? []), { name: 'envoy.filters.http.router' }],
        },
      },
    ],
  });
  const cluster = (name: string, port: number, h2: boolean) => ({
    name,
    type: 'STATIC',
    connectTimeout: '1s',
    lbPolicy: 'ROUND_ROBIN',
    ...(h2
      ? {
          typedExtensionProtocolOptions: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicitHttpConfig: { http2ProtocolOptions: {} },
            },
          },
        }
      : {}),
    ...(opts.mtls?.role === 'client' ? { transportSocket: upstreamTlsSocket(opts.mtls.sans, h2 ? ['h2'] : ['http/1.1']) } : {}),
    loadAssignment: {
      clusterName: name,
      endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '127.0.0.1', portValue: port } } } }] }],
    },
  });
  return {
    node: { id: 'bench', cluster: 'bench' },
    admin: { address: { socketAddress: { address: '127.0.0.1', portValue: opts.adminPort } } },
    staticResources: {
      listeners: [
        {
          name: 'bench-h1',
          address: { socketAddress: { address: '127.0.0.1', portValue: opts.h1Port } },
          trafficDirection: 'OUTBOUND',
          filterChains: [hcm('bench-h1', 'backend-h1', 'HTTP1')],
        },
        {
          name: 'bench-h2',
          address: { socketAddress: { address: '127.0.0.1', portValue: opts.h2Port } },
          trafficDirection: 'OUTBOUND',
          filterChains: [hcm('bench-h2', 'backend-h2', 'HTTP2')],
        },
      ],
      clusters: [cluster('backend-h1', opts.upstreamH1, false), cluster('backend-h2', opts.upstreamH2, true)],
    },
  };
}

const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

let compileCacheWarm = false;

/** A sidecar starts from Node's compile cache once its modules have been
 * compiled on the machine (src/proxy/runtime.ts); fill it first, so the
 * first proxy measured is not the one that did. */
export function warmCompileCache(): void {
  if (compileCacheWarm) return;
  compileCacheWarm = true;
  execFileSync(process.execPath, [...PROXY_NODE_FLAGS, path.join(repoRoot, 'bin/trellis.ts'), 'proxy', '--help'], { env: proxyEnv(), stdio: 'ignore' });
}

async function startTrellisProcess(
  dir: string, cpu: string, name: string, upstream: { h1Port: number; h2Port: number },
  mtls?: { bootstrap: NonNullable<Parameters<typeof trellisBootstrap>[0]['mtls']>; identityUrl: string; joinToken: string },
  httpFilters?: object[],
): Promise<{ child: ChildProcess; h1Port: number; h2Port: number }> {
  warmCompileCache();
  const h1Port = await freePort();
  const h2Port = await freePort();
  const adminPort = await freePort();
  const file = path.join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(trellisBootstrap({ adminPort, h1Port, h2Port, upstreamH1: upstream.h1Port, upstreamH2: upstream.h2Port, ...(mtls ? { mtls: mtls.bootstrap } : {}), ...(httpFilters ? { httpFilters } : {}) }), null, 2));
  const identityArgs = mtls ? ['--identity-url', mtls.identityUrl, '--join-token', mtls.joinToken] : [];
  const child = launch(process.execPath, [...PROXY_NODE_FLAGS, path.join(repoRoot, 'bin/trellis.ts'), 'proxy', '--config', file, ...identityArgs], cpu, path.join(dir, `${name}.log`), proxyEnv());
  await waitForPort(h1Port);
  await waitForPort(h2Port);
  return { child, h1Port, h2Port };
}

export async function startTrellis(dir: string, cpu: string, be: { h1Port: number; h2Port: number }): Promise<Peer> {
  const p = await startTrellisProcess(dir, cpu, 'trellis', be);
  return { name: 'trellis', pids: [pidOf(p.child)], h1Port: p.h1Port, h2Port: p.h2Port, stop: () => stopChild(p.child) };
}

/** One proxy with an empty TypeScript plugin (a request-headers hook that
 * does nothing): the per-request cost of the plugin round trip. */
export async function startTrellisTsPlugin(dir: string, cpu: string, be: { h1Port: number; h2Port: number }): Promise<Peer> {
  const plugin = {
    name: 'envoy.filters.http.wasm',
    typedConfig: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
      config: {
        name: 'empty',
        vmConfig: { runtime: 'trellis.plugin.runtime.typescript', code: { local: { inlineString: 'definePlugin(() => ({ onRequestHeaders() {} }));' } } },
      },
    },
  };
  const p = await startTrellisProcess(dir, cpu, 'trellis-ts-plugin', be, undefined, [plugin]);
  return { name: 'trellis-ts-plugin', pids: [pidOf(p.child)], h1Port: p.h1Port, h2Port: p.h2Port, stop: () => stopChild(p.child) };
}

/** One proxy with an empty proxy-wasm filter (AssemblyScript SDK, built by
 * scripts/build-test-wasm.ts): the per-request cost of the wasm host. */
export async function startTrellisWasmPlugin(dir: string, cpu: string, be: { h1Port: number; h2Port: number }): Promise<Peer> {
  const built = testWasm('assemblyscript-empty');
  if (!built.ok) throw new Error(built.reason);
  const plugin = {
    name: 'envoy.filters.http.wasm',
    typedConfig: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
      config: { name: 'empty', rootId: 'empty', vmConfig: { runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: built.path } } } },
    },
  };
  const p = await startTrellisProcess(dir, cpu, 'trellis-wasm-plugin', be, undefined, [plugin]);
  return { name: 'trellis-wasm-plugin', pids: [pidOf(p.child)], h1Port: p.h1Port, h2Port: p.h2Port, stop: () => stopChild(p.child) };
}

/** Client sidecar -> server sidecar -> backend, both proxies on the same core. */
export async function startTrellisPair(dir: string, cpu: string, be: { h1Port: number; h2Port: number }): Promise<Peer> {
  const server = await startTrellisProcess(dir, cpu, 'trellis-server', be);
  const client = await startTrellisProcess(dir, cpu, 'trellis-client', { h1Port: server.h1Port, h2Port: server.h2Port });
  return {
    name: 'trellis-pair',
    pids: [pidOf(client.child), pidOf(server.child)],
    h1Port: client.h1Port,
    h2Port: client.h2Port,
    stop: async () => {
      await stopChild(client.child);
      await stopChild(server.child);
    },
  };
}

/** Explicit mode with kept-alive connections: the runner's port guard (the
 * app's HTTP_PROXY) -> client sidecar -> server sidecar -> backend, all on
 * the proxy's core. Every load generator keeps its connections alive, so a
 * relay without TCP_NODELAY shows here as ~40 ms at p50. */
export async function startTrellisExplicit(dir: string, cpu: string, be: { h1Port: number; h2Port: number }): Promise<Peer> {
  const pair = await startTrellisPair(dir, cpu, be);
  const h1Port = await freePort();
  const h2Port = await freePort();
  const guard = launch(process.execPath, [path.join(repoRoot, 'bench/port-guard.ts'), JSON.stringify({ listen: [h1Port, h2Port], primary: [pair.h1Port, pair.h2Port] })], cpu, path.join(dir, 'port-guard.log'));
  try {
    await waitForPort(h1Port);
    await waitForPort(h2Port);
  } catch (err) {
    await stopChild(guard);
    await pair.stop();
    throw err;
  }
  return {
    name: 'trellis-explicit',
    pids: [pidOf(guard), ...pair.pids],
    h1Port,
    h2Port,
    stop: async () => {
      await stopChild(guard);
      await pair.stop();
    },
  };
}

/** The sidecar pair with mutual TLS between the proxies: an in-process CA
 * (the control plane's, on loopback) issues both workload certificates. */
export async function startTrellisMtlsPair(dir: string, cpu: string, be: { h1Port: number; h2Port: number }): Promise<Peer> {
  const started = await startCertificateAuthority({ store: fakeCaStore(), trustDomain: 'bench.local' });
  if (!started.ok) throw new Error(started.message);
  const ca = started.ca;
  const router = new Router();
  router.add(identityRoutes(ca));
  const caServer = http.createServer((req, res) => void router.dispatch(req, res));
  await new Promise<void>((r) => caServer.listen(0, '127.0.0.1', r));
  const identityUrl = `http://127.0.0.1:${(caServer.address() as net.AddressInfo).port}`;
  const token = async (sa: string): Promise<string> => {
    const t = await ca.createJoinToken({ namespace: 'bench', serviceAccount: sa, workload: `${sa}-1` });
    if (!t.ok) throw new Error(t.message);
    return t.token;
  };
  const server = await startTrellisProcess(dir, cpu, 'trellis-mtls-server', be, { bootstrap: { role: 'server' }, identityUrl, joinToken: await token('server') });
  const client = await startTrellisProcess(dir, cpu, 'trellis-mtls-client', { h1Port: server.h1Port, h2Port: server.h2Port }, {
    bootstrap: { role: 'client', sans: ['spiffe://bench.local/ns/bench/sa/server'] }, identityUrl, joinToken: await token('client'),
  });
  return {
    name: 'trellis-mtls',
    pids: [pidOf(client.child), pidOf(server.child)],
    h1Port: client.h1Port,
    h2Port: client.h2Port,
    stop: async () => {
      await stopChild(client.child);
      await stopChild(server.child);
      caServer.closeAllConnections();
      caServer.close();
    },
  };
}

/** The pid and all its descendants (NGINX does its work in a worker child). */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i]!;
    const dir = `/proc/${p}/task`;
    if (!existsSync(dir)) continue;
    for (const tid of readdirSync(dir)) {
      const f = `${dir}/${tid}/children`;
      if (!existsSync(f)) continue;
      for (const c of readFileSync(f, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
    }
  }
  return out;
}

/** Resident set size in bytes (VmRSS), 0 when the process is gone. */
export function rssBytes(pid: number): number {
  const f = `/proc/${pid}/status`;
  if (!existsSync(f)) return 0;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(f, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** user+system CPU seconds consumed so far. */
export function cpuSeconds(pid: number): number {
  const f = `/proc/${pid}/stat`;
  if (!existsSync(f)) return 0;
  const stat = readFileSync(f, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[11], fields[12] are utime, stime (fields 14 and 15 of proc(5)); 100 ticks/s on Linux.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
