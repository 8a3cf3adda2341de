// `trellis demo` (what `npm start` runs): a whole mesh on one machine.
//
//   control plane (embedded store in .trellis/demo) -> apply examples/demo/*.yaml
//   -> one process per workload (demo/workload.ts: sidecar + app, the
//      `trellis run` machinery): ratings (gRPC), details (Python),
//      reviews v1/v2/v3, productpage, loadgen
//   -> an ingress gateway (a Trellis proxy in gateway mode) in front of
//      productpage -> banner: where to look, what to try.
//
// Ctrl-C (SIGINT) or SIGTERM: the traffic generator stops first, then every
// workload (its runner stops the app, deregisters, drains the sidecar), then
// the gateway and the control plane. Every child runs in its own process
// group, so a straggler is killed with its whole group (no orphans).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync, createWriteStream, type WriteStream } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from '../command-args.ts';
import { createInterface } from 'node:readline';
import { startControlPlane, type ControlPlane } from '../../control-plane/control-plane.ts';
import { parseYamlDocuments } from '../../api/yaml-documents.ts';
import type { RunOptions } from '../../runner/runner.ts';
import { TRELLIS_BIN } from '../../runner/sidecar.ts';
import { PROXY_NODE_FLAGS, proxyEnv } from '../../proxy/runtime.ts';
import { gatewayBootstrap } from '../../control-plane/translate/gateway.ts';

export const summary = 'run a demo mesh: control plane, ingress gateway, 4 services (JS, Python, gRPC) with sidecars and steady traffic';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
const DEMO_DIR = path.join(ROOT, 'demo');
const EXAMPLES_DIR = path.join(ROOT, 'examples', 'demo');

const usage = `usage: trellis demo [--base-port N] [--data-dir DIR] [--rps N] [--no-mtls]

  --base-port N   move every fixed port: API N, xDS N+1, ingress N+2 (its admin N+3),
                  apps N+10..N+15 (default: API 15080, xDS 15010, ingress 18080 and 18081,
                  apps 19080-19085;
                  also $TRELLIS_DEMO_BASE_PORT)
  --data-dir DIR  the control plane's embedded store (default .trellis/demo)
  --rps N         traffic generator rate, requests per second (default 20, max 200)
  --no-mtls       no workload identities: sidecars talk plaintext

Ctrl-C stops everything.`;

export interface DemoPorts {
  api: number;
  xds: number;
  ingress: number;
  ingressAdmin: number;
  productpage: number;
  details: number;
  reviewsV1: number;
  reviewsV2: number;
  reviewsV3: number;
  ratings: number;
}

export function demoPorts(base?: number): DemoPorts {
  if (base === undefined) {
    return { api: 15080, xds: 15010, ingress: 18080, ingressAdmin: 18081, productpage: 19080, details: 19081, reviewsV1: 19082, reviewsV2: 19083, reviewsV3: 19084, ratings: 19085 };
  }
  return {
    api: base, xds: base + 1, ingress: base + 2, ingressAdmin: base + 3,
    productpage: base + 10, details: base + 11, reviewsV1: base + 12, reviewsV2: base + 13, reviewsV3: base + 14, ratings: base + 15,
  };
}

export type PortCheck = { ok: true } | { ok: false; code: 'PORT_IN_USE'; port: number; role: string; message: string };

/** Every fixed port must be free on 127.0.0.1 before anything starts. */
export async function checkPortsFree(ports: DemoPorts): Promise<PortCheck> {
  for (const [role, port] of Object.entries(ports) as [string, number][]) {
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen({ host: '127.0.0.1', port, exclusive: true }, () => s.close(() => resolve(true)));
    });
    if (!free) {
      return {
        ok: false, code: 'PORT_IN_USE', port, role,
        message: `port ${port} (${role}) on 127.0.0.1 is already in use: stop what holds it (another \`trellis demo\`?) or pick other ports with --base-port N`,
      };
    }
  }
  return { ok: true };
}

interface WorkloadDef {
  name: string;
  service: string;
  port: number;
  protocol: 'http' | 'grpc';
  labels?: Record<string, string>;
  upstreams?: { service: string; port: number }[];
  command: string[];
  env?: Record<string, string>;
}

function workloadDefs(p: DemoPorts): WorkloadDef[] {
  const node = process.execPath;
  const js = (file: string, port: number): string[] => [node, path.join(DEMO_DIR, file), String(port)];
  const reviews = (v: string, port: number): WorkloadDef => ({
    name: `reviews-${v}`, service: 'reviews', port, protocol: 'http', labels: { version: v },
    upstreams: v === 'v1' ? [] : [{ service: 'ratings', port: 9090 }],
    command: js('reviews.ts', port), env: { REVIEWS_VERSION: v },
  });
  return [
    { name: 'ratings-v1', service: 'ratings', port: p.ratings, protocol: 'grpc', labels: { version: 'v1' }, command: js('ratings.ts', p.ratings) },
    { name: 'details-v1', service: 'details', port: p.details, protocol: 'http', labels: { version: 'v1' }, command: ['python3', path.join(DEMO_DIR, 'details.py'), String(p.details)] },
    reviews('v1', p.reviewsV1),
    reviews('v2', p.reviewsV2),
    reviews('v3', p.reviewsV3),
    { name: 'productpage-v1', service: 'productpage', port: p.productpage, protocol: 'http', labels: { version: 'v1' }, command: js('productpage.ts', p.productpage) },
  ];
}

export type DemoLog = (line: string) => void;

export interface DemoOptions {
  ports: DemoPorts;
  dataDir: string;
  rps: number;
  /** Give every proxy a SPIFFE identity, so sidecar-to-sidecar traffic is mTLS (default on). */
  mtls: boolean;
  log: DemoLog;
}

export interface Demo {
  readonly cp: ControlPlane;
  readonly ingressUrl: string;
  /** Stops everything (idempotent). */
  stop(): Promise<void>;
}

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<void>;
}

function spawnChild(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, log: DemoLog, file: WriteStream | undefined): Child {
  // detached: its own process group (Ctrl-C reaches only the demo, which
  // stops children in order; the group is the kill fallback).
  const proc = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.once('error', (err) => log(`[${name}] cannot start: ${err.message}`));
  for (const stream of [proc.stdout, proc.stderr]) {
    if (!stream) continue;
    const rl = createInterface({ input: stream });
    rl.on('line', (line) => {
      if (file) file.write(`${name} ${line}\n`);
      else log(`[${name}] ${line}`);
    });
  }
  return { name, proc, exited };
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is gone
  }
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL the whole process group. */
async function stopChild(c: Child, graceMs: number): Promise<void> {
  if (c.proc.exitCode === null && c.proc.signalCode === null) {
    c.proc.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([c.exited, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
  }
  // Whatever is left of the group (a sidecar, an app) goes too.
  killGroup(c.proc.pid, 'SIGKILL');
  if (c.proc.exitCode === null && c.proc.signalCode === null) await c.exited;
}

async function waitPort(port: number, deadline: number, gone: () => string | undefined): Promise<boolean> {
  while (Date.now() < deadline) {
    const g = gone();
    if (g) throw new Error(`${g} exited during start-up (see its output above and the logs directory)`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** A join token so the workload's sidecar gets a SPIFFE identity (mTLS);
 * undefined when the control plane runs without its CA. */
async function joinToken(cp: ControlPlane, serviceAccount: string, workload: string): Promise<string | undefined> {
  if (!cp.identity) return undefined;
  const res = await fetch(`${cp.apiUrl}/api/v1/identity/join-tokens`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ namespace: 'default', serviceAccount, workload, ttl: '24h' }),
  });
  if (!res.ok) throw new Error(`cannot mint a join token for ${workload}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

/** Applies every examples/demo/*.yaml; returns an error message or undefined. */
async function applyExamples(cp: ControlPlane, dir: string): Promise<string | undefined> {
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
  for (const f of files) {
    const parsed = parseYamlDocuments(readFileSync(path.join(dir, f), 'utf8'), f);
    if (!parsed.ok) return parsed.error;
    for (const doc of parsed.documents) {
      const r = await cp.resources.apply(doc.value);
      if (!r.ok) return `${f}:${doc.line}: ${r.message}`;
    }
  }
  return undefined;
}

export async function startDemo(opts: DemoOptions): Promise<Demo> {
  const { ports, log } = opts;
  mkdirSync(path.join(opts.dataDir, 'logs'), { recursive: true });
  const cpLog = createWriteStream(path.join(opts.dataDir, 'logs', 'control-plane.log'), { flags: 'a' });
  const cp = await startControlPlane({
    dataDir: path.join(opts.dataDir, 'store'), host: '127.0.0.1', apiPort: ports.api, xdsPort: ports.xds,
    id: 'trellis-demo', log: (m) => cpLog.write(`${new Date().toISOString()} ${m}\n`),
  });
  const children: Child[] = [];
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      // Traffic first, then the edge, then the services (front to back).
      const order = ['loadgen', 'ingress', 'productpage-v1', 'reviews-v1', 'reviews-v2', 'reviews-v3', 'details-v1', 'ratings-v1'];
      const sorted = [...children].sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
      const front = sorted.filter((c) => c.name === 'loadgen' || c.name === 'ingress');
      await Promise.all(front.map((c) => stopChild(c, 3000)));
      await Promise.all(sorted.filter((c) => !front.includes(c)).map((c) => stopChild(c, 8000)));
      await cp.close();
      await new Promise<void>((r) => cpLog.end(r));
    })();
    return stopped;
  };
  try {
    const applyError = await applyExamples(cp, EXAMPLES_DIR);
    if (applyError) throw new Error(`cannot apply the demo resources: ${applyError}`);
    log(`control plane: ${cp.apiUrl} (xDS ${cp.xdsAddress}), resources from examples/demo applied`);

    const logsDir = path.join(opts.dataDir, 'logs');
    const xdsAddress = cp.xdsAddress;
    for (const w of workloadDefs(ports)) {
      const spec: Omit<RunOptions, 'log'> = {
        service: w.service,
        namespace: 'default',
        workload: w.name,
        ports: [{ port: w.port, protocol: w.protocol, name: w.protocol === 'grpc' ? 'grpc' : 'http' }],
        upstreams: [],
        apiUrl: cp.apiUrl,
        xdsAddress,
        labels: w.labels ?? {},
        command: w.command,
        drainMs: 500,
        proxyLog: path.join(logsDir, `${w.name}-proxy.log`),
      };
      // Local upstream ports for gRPC clients (TRELLIS_UPSTREAM_<SVC>_<PORT>), picked by the runner.
      spec.upstreams = (w.upstreams ?? []).map((u) => ({ ...u, localPort: 0 }));
      // The sidecar inherits the runner's environment: TRELLIS_JOIN_TOKEN gives it its identity.
      const token = opts.mtls ? await joinToken(cp, w.service, w.name) : undefined;
      const env = { ...process.env, ...(w.env ?? {}), NODE_NO_WARNINGS: '1', ...(token ? { TRELLIS_JOIN_TOKEN: token, TRELLIS_IDENTITY_URL: cp.apiUrl } : {}) };
      children.push(spawnChild(w.name, process.execPath, [path.join(DEMO_DIR, 'workload.ts'), JSON.stringify(spec)], env, log, undefined));
    }

    // The ingress gateway: a Trellis proxy in gateway mode for the demo's
    // Gateway (examples/demo/gateway.yaml), on the ingress port.
    const bootstrapPath = path.join(opts.dataDir, 'ingress-bootstrap.json');
    writeFileSync(bootstrapPath, JSON.stringify(gatewayBootstrap({
      gateway: 'demo-ingress', namespace: 'default', xdsAddress, admin: { address: '127.0.0.1', port: ports.ingressAdmin },
      listenAddress: '127.0.0.1', portMap: { 80: ports.ingress },
    }), null, 2));
    const ingressLog = createWriteStream(path.join(logsDir, 'ingress-proxy.log'), { flags: 'a' });
    const ingressToken = opts.mtls ? await joinToken(cp, 'demo-ingress', 'demo-ingress') : undefined;
    children.push(spawnChild('ingress', process.execPath, [...PROXY_NODE_FLAGS, TRELLIS_BIN, 'proxy', '--config', bootstrapPath, '--no-watch', '--drain-ms', '500'], proxyEnv({
      ...process.env, NODE_NO_WARNINGS: '1', ...(ingressToken ? { TRELLIS_JOIN_TOKEN: ingressToken, TRELLIS_IDENTITY_URL: cp.apiUrl } : {}),
    }), log, ingressLog));
    children.at(-1)!.exited.then(() => ingressLog.end());

    const deadline = Date.now() + 45_000;
    const exitedEarly = (): string | undefined => children.find((c) => c.proc.exitCode !== null || c.proc.signalCode !== null)?.name;
    for (const [role, port] of [['productpage', ports.productpage], ['ingress', ports.ingress]] as const) {
      if (!(await waitPort(port, deadline, exitedEarly))) throw new Error(`${role} did not start listening on 127.0.0.1:${port} (logs in ${logsDir})`);
    }
    const ingressUrl = `http://127.0.0.1:${ports.ingress}/`;
    children.push(spawnChild('loadgen', process.execPath, [path.join(DEMO_DIR, 'loadgen.ts')], {
      ...process.env, NODE_NO_WARNINGS: '1', TRELLIS_DEMO_TARGET: ingressUrl, TRELLIS_DEMO_RPS: String(opts.rps),
    }, log, undefined));
    return { cp, ingressUrl, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export function banner(ports: DemoPorts, ingressUrl: string): string {
  const api = `http://127.0.0.1:${ports.api}`;
  const cpFlag = ports.api === 15080 ? '' : ` --control-plane ${api}`;
  return [
    '',
    'Trellis demo is running: loadgen -> ingress gateway -> productpage -> details (Python) + reviews v1/v2/v3 -> ratings (gRPC)',
    '',
    `  dashboard        ${api}/`,
    `  the app          curl ${ingressUrl}   (add -H 'x-user-group: beta' to be steered to reviews v3)`,
    '',
    'Things to try (in another terminal):',
    `  trellis stat services${cpFlag}             golden metrics per service`,
    `  trellis apply -f examples/canary/reviews-90-10.yaml${cpFlag}   then 50-50, then 0-100`,
    `  trellis apply -f examples/resilience/timeouts.yaml${cpFlag}    cut reviews v2's slow tail (504s)`,
    `  trellis apply -f examples/policies/retries.yaml${cpFlag}       hide reviews v3's 503s`,
    `  trellis apply -f examples/routing/mirror.yaml${cpFlag}         shadow traffic to reviews v3`,
    `  trellis apply -f examples/demo/reviews-route.yaml${cpFlag}     back to the start`,
    '  More in examples/ (README.md lists every feature).',
    `  trellis get httproutes${cpFlag}`,
    '',
    'Logs: .trellis/demo/logs/.  Ctrl-C stops everything.',
    '',
  ].join('\n');
}

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'base-port': { type: 'string', ...(process.env.TRELLIS_DEMO_BASE_PORT ? { default: process.env.TRELLIS_DEMO_BASE_PORT } : {}) },
        'data-dir': { type: 'string', default: '.trellis/demo' },
        rps: { type: 'string', default: '20' },
        'no-mtls': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    console.error(`trellis demo: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) {
    console.log(usage);
    return 0;
  }
  let base: number | undefined;
  if (values['base-port'] !== undefined) {
    base = Number(values['base-port']);
    if (!Number.isInteger(base) || base < 1024 || base > 65535 - 20) {
      console.error(`trellis demo: --base-port ${JSON.stringify(values['base-port'])}: must be an integer from 1024 to ${65535 - 20}`);
      return 2;
    }
  }
  const rps = Number(values.rps);
  if (!Number.isFinite(rps) || rps <= 0 || rps > 200) {
    console.error(`trellis demo: --rps ${JSON.stringify(values.rps)}: must be a number in (0, 200]`);
    return 2;
  }
  const ports = demoPorts(base);
  const free = await checkPortsFree(ports);
  if (!free.ok) {
    console.error(`trellis demo: ${free.message}`);
    return 1;
  }
  const log: DemoLog = (line) => console.log(line);

  // Signals during start-up are remembered and honoured once it returns.
  let signalled = false;
  let wake: (() => void) | undefined;
  const onSignal = (): void => {
    if (signalled) return;
    signalled = true;
    log('\ntrellis demo: stopping (the traffic generator, the gateway, each workload and its sidecar, the control plane)...');
    wake?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let demo: Demo;
  try {
    demo = await startDemo({ ports, dataDir: path.resolve(values['data-dir']), rps, mtls: !values['no-mtls'], log });
  } catch (err) {
    console.error(`trellis demo: ${(err as Error).message}`);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    return 1;
  }
  if (!signalled) {
    log(banner(ports, demo.ingressUrl));
    log(JSON.stringify({ event: 'ready', api: demo.cp.apiUrl, ingress: demo.ingressUrl }));
    await new Promise<void>((resolve) => (wake = resolve));
  }
  await demo.stop();
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  log('trellis demo: stopped');
  return 0;
}
