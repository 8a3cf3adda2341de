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
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { PortProtocol } from '../control-plane/translate/model.ts';
import { MESHED_LABEL, TLS_MODE_LABEL } from '../control-plane/translate/services.ts';
import { resolveJoinToken, saTokenFile } from '../proxy/identity/ca-client.ts';
import { proveWorkloadIdentity } from './workload-proof.ts';
import { explicitAppEnv, withoutCredentials } from './app-env.ts';
import { freePorts } from './ports.ts';
import { startPortGuard, type GuardTarget, type PortGuard } from './port-guard.ts';
import { RegistryClient, keepRegistered, type WorkloadRegistration, type WorkloadSigner } from './registration.ts';
import { probeReady, Sidecar, type ProxyRuntime, type UpstreamDecl } from './sidecar.ts';
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
  /** An API token (registrar for this identity, or admin) for the registry. */
  apiToken?: string;
  /** Control plane xDS, host:port. */
  xdsAddress: string;
  /** xDS over mutual TLS (the sidecar needs a join token). */
  xdsTls?: boolean;
  /** The mesh CA bundle to trust when the API is HTTPS. */
  caBundle?: string;
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
  /** Picks free ports (tests hand out taken ones); default ports.ts. */
  freePorts?: (n: number, host: string) => Promise<number[]>;
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
  /** What the proxy runs from: a copy its uid can reach (staged-runtime.ts). */
  readonly proxyRuntime: ProxyRuntime;
  /** Where its bootstrap goes: readable by its uid, writable only by root. */
  readonly proxyDir: string;
  /** The proxy's environment from `base`, its join token handed over so
   * that only its uid can read it. */
  proxyEnv(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  /** Command prefix for the app (netns). */
  appWrap(): string[];
  /** The xDS address the proxy uses from inside the pod. */
  xdsAddress(): string;
  /** Where the proxy inside the pod reaches the CA (identity calls only). */
  identityUrl(): string | undefined;
  /** Installs the capture rules once the proxy's ports are known. */
  capture(ports: { outbound: number; inbound: number; admin: number }): Promise<void>;
  /** Service names -> VIPs for the app's name resolution. */
  writeHosts(entries: ReadonlyMap<string, string>): void;
  close(): Promise<void>;
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function hasJoinToken(): boolean {
  try {
    return resolveJoinToken() !== undefined || saTokenFile() !== undefined;
  } catch {
    return true; // an unreadable token file: the sidecar fails and says why
  }
}

/** Tries at a free set of sidecar ports when another process takes one. */
const PORT_ATTEMPTS = 3;

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

/** A readable instance name, as Kubernetes names pods: the service, its
 * `version` label when it has one, and a short random suffix
 * (`reviews-v1-x7k2p`), never the process id. DNS-1123: lower case, digits
 * and '-', at most 63 characters. */
export function defaultWorkloadName(service: string, labels: Readonly<Record<string, string>> = {}): string {
  const clean = (s: string): string => s.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  const suffix = randomBytes(4).readUInt32BE(0).toString(36).padStart(5, '0').slice(-5);
  const version = labels['version'] !== undefined ? clean(labels['version']) : '';
  const base = [clean(service), version].filter(Boolean).join('-').slice(0, 63 - suffix.length - 1).replace(/-+$/, '');
  return `${base}-${suffix}`;
}

export async function runWorkload(opts: RunOptions): Promise<number> {
  const log: Log = opts.log ?? (() => {});
  const workload = opts.workload ?? defaultWorkloadName(opts.service, opts.labels);
  const dir = mkdtempSync(path.join(os.tmpdir(), `trellis-run-${opts.service}-`));
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
    // Outside a pod the app's ports are on this host's loopback: one already
    // taken means the sidecar would forward the workload's traffic to
    // whatever holds it, not to the app. Refuse before registering.
    if (!pod) {
      for (const p of opts.ports) {
        const holder = await appPortTaken(p.port);
        if (holder) {
          console.error(`trellis run: the app port 127.0.0.1:${p.port} is already in use (${holder}): the workload's endpoint would reach that process, not this app. Stop it, or give the app another port with --port`);
          await cleanup();
          return 1;
        }
      }
    }
    // Inbound proxy ports: loopback unless the workload registers another
    // address peers dial (then every interface), always so in a pod.
    const bindHost = pod || (opts.address !== undefined && opts.address !== '127.0.0.1') ? '0.0.0.0' : '127.0.0.1';
    // Ports: admin, outbound, one inbound proxy port per app port (explicit)
    // or one shared inbound capture port (transparent), and a local port for
    // each upstream declared with localPort 0. In a pod, every port is free
    // (a fresh network namespace); still take distinct free ones. Outside a
    // pod another process may take a picked port before the proxy binds it:
    // the proxy then exits EXIT_PORT_IN_USE and we pick again (bounded).
    // A workload on its own address with an identity also serves its
    // metrics to the control plane over mTLS there (proxy/metrics-listener.ts),
    // since the admin port stays on loopback (xDS over TLS: it has an identity).
    const metricsHost = !pod && opts.address !== undefined && opts.address !== '127.0.0.1' && opts.xdsTls ? opts.address : undefined;
    const pickPorts = async (): Promise<{ admin: number; outbound: number; inbound: number[]; upstreams: UpstreamDecl[]; metrics?: number }> => {
      const inboundCount = pod ? 1 : opts.ports.length;
      const wanted = opts.upstreams.filter((u) => u.localPort === 0).length;
      const extra = metricsHost === undefined ? 0 : 1;
      const [admin, outbound, ...rest] = await (opts.freePorts ?? freePorts)(2 + extra + inboundCount + wanted, bindHost);
      const metrics = extra ? rest.pop()! : undefined;
      const locals = rest.slice(inboundCount);
      return {
        ...(metrics === undefined ? {} : { metrics }),
        admin: admin!, outbound: outbound!, inbound: rest.slice(0, inboundCount),
        upstreams: opts.upstreams.map((u) => (u.localPort === 0 ? { ...u, localPort: locals.shift()! } : u)),
      };
    };
    let picked = await pickPorts();
    const appPorts = (inbound: readonly number[]): WorkloadRegistration['ports'] => opts.ports.map((p, i) => ({
      port: p.port,
      protocol: p.protocol,
      ...(portName(p, opts.ports) ? { name: portName(p, opts.ports)! } : {}),
      ...(pod ? {} : { proxyPort: inbound[i]! }),
    }));
    const registration: WorkloadRegistration = {
      name: workload,
      namespace: opts.namespace,
      serviceAccount: opts.serviceAccount ?? opts.service,
      address: pod?.address ?? opts.address ?? '127.0.0.1',
      ports: appPorts(picked.inbound),
      // In a pod every port is captured: peers dial the app port with mTLS (translate/mtls.ts).
      labels: {
        app: opts.service,
        ...(opts.labels ?? {}),
        ...(pod ? { [MESHED_LABEL]: 'true' } : {}),
        // The sidecar starts only once it holds a certificate when it has a
        // join token (it inherits ours): callers may dial it with mTLS. Without
        // one they must not, or its PERMISSIVE port could never answer them.
        [TLS_MODE_LABEL]: hasJoinToken() ? 'mtls' : 'none',
      },
      locality: opts.locality ?? {},
    };
    // With a join token the runner proves the workload's identity itself
    // (workload-proof.ts): the control plane then knows it speaks mTLS.
    let joinToken: string | undefined;
    try {
      joinToken = resolveJoinToken();
    } catch (err) {
      console.error(`trellis run: TRELLIS_JOIN_TOKEN_FILE: ${(err as Error).message}`);
      return 1;
    }
    let signer: WorkloadSigner | undefined;
    if (joinToken) {
      const proof = await proveWorkloadIdentity({ apiUrl: opts.apiUrl, joinToken, ...(opts.caBundle ? { caBundle: opts.caBundle } : {}), timeoutMs: opts.readyTimeoutMs ?? 30_000 });
      if (!proof.ok) {
        console.error(`trellis run: ${proof.message}`);
        return 1;
      }
      cleanups.push(() => proof.stop());
      signer = proof.signer;
    }
    const registry = new RegistryClient(opts.apiUrl, { ...(opts.apiToken ? { token: opts.apiToken } : {}), ...(signer ? { signer } : {}), ...(opts.caBundle ? { ca: opts.caBundle } : {}) });
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

    const admin = { address: pod ? pod.adminHost : '127.0.0.1', port: picked.admin };
    let caFile: string | undefined;
    if (opts.caBundle) {
      caFile = path.join(dir, 'ca.pem');
      writeFileSync(caFile, opts.caBundle, { mode: 0o644 });
    }
    const sidecarFor = (ports: typeof picked): Sidecar => new Sidecar(
      {
        kind: 'sidecar',
        nodeId: `${opts.namespace}/${workload}`,
        cluster: opts.service,
        namespace: opts.namespace,
        workload,
        xdsAddress: pod ? pod.xdsAddress() : opts.xdsAddress,
        ...(opts.xdsTls && !pod ? { xdsTls: true } : {}),
        ...(caFile ? { caFile } : {}),
        ...(pod ? (pod.identityUrl() ? { identityUrl: pod.identityUrl()! } : {}) : { identityUrl: opts.apiUrl }),
        admin: { address: admin.address, port: ports.admin },
        ...(metricsHost !== undefined && ports.metrics !== undefined ? { metrics: { address: metricsHost, port: ports.metrics } } : {}),
        outbound: { address: '127.0.0.1', port: ports.outbound },
        inboundAddress: bindHost,
        upstreams: ports.upstreams,
        ...(pod ? { capture: 'transparent' as const, inboundPort: ports.inbound[0]! } : {}),
        ...(opts.locality ? { locality: opts.locality } : {}),
        requiredListeners: pod
          ? ['outbound', 'inbound']
          : [...opts.ports.map((p) => `inbound|${p.port}`), ...ports.upstreams.map((u) => `upstream|${u.localPort}`)],
        drainMs: opts.drainMs ?? 5000,
        // The sidecar dies with its runner, even a SIGKILLed one.
        ...(pod ? { wrap: pod.proxyWrap(), runtime: pod.proxyRuntime, env: pod.proxyEnv(process.env) } : PDEATHSIG ? { wrap: ['setpriv', '--pdeathsig', 'SIGKILL', '--'] } : {}),
        // In a pod the proxy runs as its own uid: its bootstrap goes where it can read it.
        dir: pod ? pod.proxyDir : dir,
        logTo: opts.proxyLog ?? path.join(dir, 'proxy.log'),
      },
      log,
    );
    if (pod) await pod.capture({ outbound: picked.outbound, inbound: picked.inbound[0]!, admin: picked.admin });
    let sidecar = sidecarFor(picked);
    let ready = await sidecar.start(opts.readyTimeoutMs ?? 30_000);
    for (let attempt = 2; !ready.ok && ready.code === 'SIDECAR_PORT_IN_USE' && !pod && attempt <= PORT_ATTEMPTS; attempt++) {
      log('sidecar_port_in_use', { attempt, error: ready.message });
      await sidecar.stop();
      picked = await pickPorts();
      admin.port = picked.admin;
      registration.ports = appPorts(picked.inbound);
      const again = await registry.register(registration);
      if (!again.ok) log('register_failed', { code: again.code, error: again.message });
      sidecar = sidecarFor(picked);
      ready = await sidecar.start(opts.readyTimeoutMs ?? 30_000);
    }
    const started = sidecar;
    cleanups.push(async () => {
      await started.stop();
      opts.onStep?.('sidecar_stopped');
    });
    if (!ready.ok) {
      log('sidecar_not_ready', { code: ready.code, error: ready.message });
      console.error(`trellis run: ${ready.message}`);
      return 1;
    }
    const adminPort = picked.admin;
    const outboundPort = picked.outbound;
    const upstreams = picked.upstreams;
    opts.onStep?.('sidecar_ready');
    log('sidecar_ready', { admin: adminPort, outbound: outboundPort, upstreams: Object.fromEntries(upstreams.map((u) => [`${u.service}:${u.port}`, u.localPort])) });

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
      ? { ...withoutCredentials(process.env), TRELLIS_SERVICE: opts.service, TRELLIS_NAMESPACE: opts.namespace, TRELLIS_WORKLOAD: workload }
      : explicitAppEnv({
          base: process.env,
          proxy: { host: '127.0.0.1', port: guard!.port },
          upstreams,
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

/** Why 127.0.0.1:port cannot be bound (another process listens there), or
 * undefined when it is free for the app. */
function appPortTaken(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE' ? 'another process is listening there' : (err.code ?? err.message)));
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => srv.close(() => resolve(undefined)));
  });
}
