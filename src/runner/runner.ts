// `trellis run`: one workload and its sidecar, in order.
//
//   allocate ports -> register the workload -> start the sidecar, wait until
//   it is ready (config bound) -> port guard (HTTP_PROXY target, fails over
//   to the node proxy) -> start the app -> heartbeat; forward signals ->
//   app exits -> deregister -> drain the sidecar -> exit with the app's code.
//
// Explicit mode here; transparent mode (the app in its own network
// namespace, iptables capture) supplies a `PodNetwork` that changes where
// things bind and how the proxy and the app are launched.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PortProtocol } from '../control-plane/translate/model.ts';
import { explicitAppEnv } from './app-env.ts';
import { freePorts } from './ports.ts';
import { startPortGuard, type GuardTarget, type PortGuard } from './port-guard.ts';
import { RegistryClient, keepRegistered, type WorkloadRegistration } from './registration.ts';
import { probeReady, Sidecar, type UpstreamDecl } from './sidecar.ts';
import { hostsFromConfigDump } from './transparent.ts';

export type Log = (event: string, fields?: Record<string, unknown>) => void;

export interface AppPort {
  port: number;
  protocol: PortProtocol;
  name?: string;
}

export interface RunOptions {
  service: string;
  namespace: string;
  serviceAccount?: string;
  /** Workload instance name; default `<service>-<pid>`. */
  workload?: string;
  ports: AppPort[];
  upstreams: UpstreamDecl[];
  /** Control plane HTTP API, e.g. http://127.0.0.1:15080. */
  apiUrl: string;
  /** Control plane xDS, host:port. */
  xdsAddress: string;
  /** Address registered for the workload (explicit mode); default 127.0.0.1. */
  address?: string;
  labels?: Record<string, string>;
  locality?: { region?: string; zone?: string; subZone?: string };
  command: string[];
  /** The per-node proxy's outbound port: failover target of the port guard. */
  nodeProxy?: GuardTarget;
  /** Transparent capture: a pod network (see transparent.ts). */
  pod?: PodNetwork;
  drainMs?: number;
  readyTimeoutMs?: number;
  /** Proxy output: 'inherit' (stderr) or a file; default a file in the run dir. */
  proxyLog?: string;
  log?: Log;
  /** Observes lifecycle steps (tests). */
  onStep?: (step: 'registered' | 'sidecar_ready' | 'app_started' | 'app_exited' | 'deregistered' | 'sidecar_stopped', detail?: unknown) => void;
  /** Exposes the running sidecar and guard (tests). */
  onRunning?: (r: { sidecar: Sidecar; guard: PortGuard | undefined }) => void;
}

/** Transparent mode's hooks (implemented by transparent.ts). */
export interface PodNetwork {
  /** The pod's address (registered; EDS dials it on the app ports). */
  readonly address: string;
  /** Where the host side reaches the proxy's admin (the pod address). */
  readonly adminHost: string;
  /** Command prefix for the proxy (netns + its own uid). */
  proxyWrap(): string[];
  /** Command prefix for the app (netns). */
  appWrap(): string[];
  /** The xDS address the proxy uses from inside the pod. */
  xdsAddress(): string;
  /** Installs the capture rules once the proxy's ports are known. */
  capture(ports: { outbound: number; inbound: number; admin: number }): Promise<void>;
  /** Service names -> VIPs for the app's name resolution. */
  writeHosts(entries: ReadonlyMap<string, string>): void;
  close(): Promise<void>;
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** `setpriv --pdeathsig` (util-linux) is there: children die with the runner. */
const PDEATHSIG = process.platform === 'linux' && ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p));

/** A port's name: given, or its protocol when no other port has that protocol
 * (so Services can target `targetPort: http` as in Kubernetes). */
function portName(p: AppPort, all: readonly AppPort[]): string | undefined {
  if (p.name) return p.name;
  return all.filter((q) => q.protocol === p.protocol).length === 1 ? p.protocol : undefined;
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal ? os.constants.signals[signal] : undefined;
  return 128 + (n ?? 1);
}

export async function runWorkload(opts: RunOptions): Promise<number> {
  const log: Log = opts.log ?? (() => {});
  const workload = opts.workload ?? `${opts.service}-${process.pid}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), `trellis-run-${opts.service}-`));
  // In a pod the proxy runs as its own uid and must read its bootstrap.
  if (opts.pod) chmodSync(dir, 0o755);
  const cleanups: (() => Promise<unknown> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch (err) {
        log('cleanup_failed', { error: (err as Error).message });
      }
    }
  };

  // Signals before the app runs abort the start; after, they go to the app.
  let pendingSignal: NodeJS.Signals | undefined;
  let forward: ((s: NodeJS.Signals) => void) | undefined;
  const onSignal = (s: NodeJS.Signals): void => {
    if (forward) forward(s);
    else pendingSignal ??= s;
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  cleanups.push(() => {
    for (const s of SIGNALS) process.removeListener(s, onSignal);
  });

  try {
    const pod = opts.pod;
    if (pod) cleanups.push(() => pod.close());
    // Inbound proxy ports: loopback unless the workload registers another
    // address peers dial (then every interface), always so in a pod.
    const bindHost = pod || (opts.address !== undefined && opts.address !== '127.0.0.1') ? '0.0.0.0' : '127.0.0.1';
    // Ports: admin, outbound, one inbound proxy port per app port (explicit)
    // or one shared inbound capture port (transparent). In a pod, every port
    // is free (a fresh network namespace); still take distinct free ones.
    const [adminPort, outboundPort, ...inbound] = await freePorts(2 + (pod ? 1 : opts.ports.length), bindHost);
    const registration: WorkloadRegistration = {
      name: workload,
      namespace: opts.namespace,
      serviceAccount: opts.serviceAccount ?? opts.service,
      address: pod?.address ?? opts.address ?? '127.0.0.1',
      ports: opts.ports.map((p, i) => ({
        port: p.port,
        protocol: p.protocol,
        ...(portName(p, opts.ports) ? { name: portName(p, opts.ports)! } : {}),
        ...(pod ? {} : { proxyPort: inbound[i]! }),
      })),
      labels: { app: opts.service, ...(opts.labels ?? {}) },
      locality: opts.locality ?? {},
    };
    const registry = new RegistryClient(opts.apiUrl);
    const reg = await registry.register(registration);
    if (!reg.ok) {
      log('register_failed', { code: reg.code, error: reg.message });
      console.error(`trellis run: cannot register ${opts.namespace}/${workload}: ${reg.message}`);
      return 1;
    }
    const keeper = keepRegistered(registry, registration, reg.value, log);
    let deregistered = false;
    const deregister = async (): Promise<void> => {
      if (deregistered) return;
      deregistered = true;
      keeper.stop();
      const r = await registry.deregister(opts.namespace, workload);
      if (!r.ok) log('deregister_failed', { error: r.message });
      opts.onStep?.('deregistered');
    };
    cleanups.push(deregister);
    opts.onStep?.('registered', registration);
    log('registered', { workload, lease: reg.value.leaseId });

    const required = pod
      ? ['outbound', 'inbound']
      : [...opts.ports.map((p) => `inbound|${p.port}`), ...opts.upstreams.map((u) => `upstream|${u.localPort}`)];
    const admin = { address: pod ? pod.adminHost : '127.0.0.1', port: adminPort! };
    const sidecar = new Sidecar(
      {
        kind: 'sidecar',
        nodeId: `${opts.namespace}/${workload}`,
        cluster: opts.service,
        namespace: opts.namespace,
        workload,
        xdsAddress: pod ? pod.xdsAddress() : opts.xdsAddress,
        ...(pod ? {} : { identityUrl: opts.apiUrl }),
        admin,
        outbound: { address: pod ? '127.0.0.1' : '127.0.0.1', port: outboundPort! },
        inboundAddress: bindHost,
        upstreams: opts.upstreams,
        ...(pod ? { capture: 'transparent' as const, inboundPort: inbound[0]! } : {}),
        ...(opts.locality ? { locality: opts.locality } : {}),
        requiredListeners: required,
        drainMs: opts.drainMs ?? 5000,
        // The sidecar dies with its runner, even a SIGKILLed one.
        ...(pod ? { wrap: pod.proxyWrap() } : PDEATHSIG ? { wrap: ['setpriv', '--pdeathsig', 'SIGKILL', '--'] } : {}),
        dir,
        logTo: opts.proxyLog ?? path.join(dir, 'proxy.log'),
      },
      log,
    );
    if (pod) await pod.capture({ outbound: outboundPort!, inbound: inbound[0]!, admin: adminPort! });
    const ready = await sidecar.start(opts.readyTimeoutMs ?? 30_000);
    cleanups.push(async () => {
      await sidecar.stop();
      opts.onStep?.('sidecar_stopped');
    });
    if (!ready.ok) {
      log('sidecar_not_ready', { code: ready.code, error: ready.message });
      console.error(`trellis run: ${ready.message}`);
      return 1;
    }
    opts.onStep?.('sidecar_ready');
    log('sidecar_ready', { admin: adminPort, outbound: outboundPort });

    // Transparent mode: service names resolve to VIPs inside the pod, kept
    // current from the sidecar's own routes.
    if (pod) {
      const refresh = async (): Promise<void> => {
        try {
          const res = await fetch(`http://${admin.address}:${admin.port}/config_dump`, { signal: AbortSignal.timeout(2000) });
          if (res.ok) pod.writeHosts(hostsFromConfigDump(await res.json(), opts.namespace));
        } catch {
          // the sidecar may be restarting; keep the last hosts file
        }
      };
      await refresh();
      const t = setInterval(() => void refresh(), 1000);
      cleanups.push(() => clearInterval(t));
    }

    // Explicit mode: the app's HTTP_PROXY is the port guard.
    let guard: PortGuard | undefined;
    if (!pod) {
      const g = await startPortGuard({
        listen: { host: '127.0.0.1', port: 0 },
        primary: { host: '127.0.0.1', port: outboundPort! },
        ...(opts.nodeProxy ? { fallback: opts.nodeProxy } : {}),
        // Ready with its outbound listener bound (a restarted proxy's first
        // config may not have it yet).
        check: () => probeReady(admin, ['outbound']),
        log,
      });
      guard = g;
      cleanups.push(() => g.close());
    }
    opts.onRunning?.({ sidecar, guard });
    if (pendingSignal) {
      log('aborted', { signal: pendingSignal });
      return exitCodeOf(null, pendingSignal);
    }

    const env = pod
      ? { ...process.env, TRELLIS_SERVICE: opts.service, TRELLIS_NAMESPACE: opts.namespace, TRELLIS_WORKLOAD: workload }
      : explicitAppEnv({
          base: process.env,
          proxy: { host: '127.0.0.1', port: guard!.port },
          upstreams: opts.upstreams,
          service: opts.service,
          namespace: opts.namespace,
          workload,
          ports: opts.ports,
        });
    const [cmd, ...args] = [...(pod ? pod.appWrap() : PDEATHSIG ? ['setpriv', '--pdeathsig', 'SIGTERM', '--'] : []), ...opts.command];
    const app = spawn(cmd!, args, { stdio: 'inherit', env });
    const exited = new Promise<number>((resolve) => {
      app.once('error', (err) => {
        console.error(`trellis run: cannot start ${opts.command[0]}: ${err.message}`);
        resolve(127);
      });
      app.once('exit', (code, signal) => resolve(exitCodeOf(code, signal)));
    });
    forward = (s) => {
      log('signal_forwarded', { signal: s });
      app.kill(s);
    };
    opts.onStep?.('app_started', app.pid);
    log('app_started', { pid: app.pid, command: opts.command });
    const code = await exited;
    forward = undefined;
    opts.onStep?.('app_exited', code);
    log('app_exited', { code });
    // Peers stop being sent here first; then the sidecar drains (cleanup).
    await deregister();
    return code;
  } finally {
    await cleanup();
  }
}
