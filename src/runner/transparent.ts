// Transparent mode: the app runs in its own network namespace (a "pod")
// and never knows about the proxy. Linux and root only.
//
//   host netns: bridge trellis0 198.18.0.1/24 (RFC 2544 benchmark range,
//               never routed; the host does not forward: ip_forward untouched)
//     └─ veth ── pod netns "trl-<id>": eth0 198.18.0.N/24, lo, default via
//                198.18.0.1 (so VIPs have a route; nothing leaves the host)
//   inside the pod, iptables nat: captureRules() (capture-rules.ts, shared
//     with the Kubernetes injector's init container)
//   the proxy runs as its own uid (setpriv), so its connections (to peers,
//   and to the app on 127.0.0.1) are not captured again: no loops.
//   /etc/netns/<pod>/hosts maps service names to their VIPs (ip netns exec
//   bind-mounts it over /etc/hosts), refreshed from the proxy's own config.
//   The proxy reaches the control plane's xDS through a relay the runner
//   listens on at 198.18.0.1 (the control plane may stay on loopback), and
//   its CA through a second relay that forwards only the two identity calls
//   a sidecar makes (CSR, trust bundle): the control plane sees the runner's
//   loopback address, so forwarding its whole API would hand the pod admin
//   rights. Only the proxy's uid reaches either relay (the app's TCP is
//   redirected to the proxy, whose outbound routes only to services).
//   The proxy's uid runs a copy of Node and of the proxy's code staged where
//   it can read them (staged-runtime.ts; the installation may be in a
//   private directory such as /root), and a trial run as that uid comes
//   before anything is created: what it cannot reach is said up front.
//   Its bootstrap and join token are in /run/trellis/pods/<pod>/ (root,
//   group <proxy uid>, 0750: the proxy reads, cannot write, others see
//   nothing); the token file is the proxy uid's, 0400.
// Everything is removed on close: the netns (with its veth and rules), the
// hosts file, the address lease, and the bridge once no pod uses it.
import { execFile } from 'node:child_process';
import http from 'node:http';
import { chmodSync, chownSync, existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { resolveJoinToken } from '../proxy/identity/ca-client.ts';
import { loadOrigDst } from '../proxy/orig-dst.ts';
import { captureRules } from './capture-rules.ts';
import type { PodNetwork } from './runner.ts';
import type { ProxyRuntime } from './sidecar.ts';
import { proxyUidCannotRun, stageProxyRuntime } from './staged-runtime.ts';

const exec = promisify(execFile);

export const BRIDGE = 'trellis0';
export const SUBNET_PREFIX = '198.18.0.';
export const GATEWAY = `${SUBNET_PREFIX}1`;
export const DEFAULT_PROXY_UID = 1337;
export const LEASE_DIR = '/run/trellis/pod-ips';
/** Per pod, the files its proxy reads (bootstrap, join token). */
export const POD_DIR = '/run/trellis/pods';

export type PodResult = { ok: true; pod: Pod } | { ok: false; code: 'TRANSPARENT_UNSUPPORTED' | 'TRANSPARENT_SETUP_FAILED'; message: string };

export interface PodOptions {
  /** Workload name; the netns is named after it. */
  name: string;
  namespace: string;
  /** Control plane xDS (host:port as the runner reaches it). */
  xdsAddress: string;
  apiUrl?: string;
  proxyUid?: number;
  log?: (event: string, fields?: Record<string, unknown>) => void;
}

async function has(cmd: string): Promise<boolean> {
  try {
    await exec('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

/** Why transparent mode cannot run here, or undefined when it can. */
export async function transparentUnsupported(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'transparent capture needs Linux';
  if (process.getuid?.() !== 0) return 'transparent capture needs root (network namespaces, iptables)';
  for (const c of ['ip', 'iptables', 'setpriv']) if (!(await has(c))) return `\`${c}\` is not installed (apt-get install ${c === 'ip' ? 'iproute2' : c === 'setpriv' ? 'util-linux' : c})`;
  const addon = loadOrigDst();
  if (!addon.ok) return addon.reason;
  return undefined;
}

async function run(args: string[]): Promise<void> {
  const [cmd, ...rest] = args;
  try {
    await exec(cmd!, rest);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

async function tryRun(args: string[]): Promise<boolean> {
  try {
    await run(args);
    return true;
  } catch {
    return false;
  }
}

/** Whether a lease file belongs to a pod: its namespace exists, or it was
 * just created and not yet filled in (10 s); undefined when it is gone. */
function leaseLive(file: string): boolean | undefined {
  let owner: string;
  try {
    owner = readFileSync(file, 'utf8').trim();
    if (owner === '') return Date.now() - statSync(file).mtimeMs < 10_000;
  } catch {
    return undefined;
  }
  return existsSync(`/run/netns/${owner}`);
}

/** Takes a free pod address with an O_EXCL lease file (safe across
 * runners). A lease whose network namespace is gone (its runner was
 * killed) is taken back. */
export function leaseAddress(netns: string): { ip: string; release(): void } {
  mkdirSync(LEASE_DIR, { recursive: true });
  for (let i = 2; i < 255; i++) {
    const ip = `${SUBNET_PREFIX}${i}`;
    const file = path.join(LEASE_DIR, ip);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx');
        writeFileSync(fd, netns);
        closeSync(fd);
        // Only while it is still ours: a lease taken back as stale (our
        // namespace gone first) may belong to another pod by now.
        const release = (): void => {
          try {
            if (readFileSync(file, 'utf8').trim() === netns) rmSync(file, { force: true });
          } catch {
            // already gone
          }
        };
        return { ip, release };
      } catch {
        const live = leaseLive(file);
        if (live === undefined) continue;
        if (live) break;
        rmSync(file, { force: true });
      }
    }
  }
  throw new Error(`no free pod address in ${SUBNET_PREFIX}0/24`);
}

export async function ensureBridge(): Promise<void> {
  if (!(await tryRun(['ip', 'link', 'show', BRIDGE]))) await tryRun(['ip', 'link', 'add', BRIDGE, 'type', 'bridge']);
  await tryRun(['ip', 'addr', 'add', `${GATEWAY}/24`, 'dev', BRIDGE]);
  await run(['ip', 'link', 'set', BRIDGE, 'up']);
}

/** Puts a pod's host-side veth on the bridge, creating the bridge if
 * needed. Once more if the bridge went away in between (another runner's
 * last pod closing in the instant between its checks and the delete). */
async function attachToBridge(vethHost: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    await ensureBridge();
    try {
      await run(['ip', 'link', 'set', vethHost, 'master', BRIDGE, 'up']);
      return;
    } catch (err) {
      if (attempt > 0 || (await tryRun(['ip', 'link', 'show', BRIDGE]))) throw err;
    }
  }
}

/** Removes the bridge when no pod holds an address lease (a pod being set up
 * takes its lease before it needs the bridge) and no veth is attached to it
 * any more. Without the lease check, one runner's last pod closing removed
 * the bridge under another runner's pod being set up. */
export async function maybeRemoveBridge(): Promise<void> {
  let leases: string[] = [];
  try {
    leases = readdirSync(LEASE_DIR);
  } catch {
    // no lease directory: no pods
  }
  if (leases.some((f) => leaseLive(path.join(LEASE_DIR, f)) === true)) return;
  try {
    const { stdout } = await exec('ip', ['-o', 'link', 'show', 'master', BRIDGE]);
    if (stdout.trim() === '') await tryRun(['ip', 'link', 'del', BRIDGE]);
  } catch {
    // no bridge
  }
}

/** /run/trellis/pods, which every user may enter (the proxy's uid does),
 * whatever umask made /run/trellis. */
function makePodDirRoot(): void {
  mkdirSync(POD_DIR, { recursive: true });
  for (const d of [path.dirname(POD_DIR), POD_DIR]) chmodSync(d, 0o755);
}

/** The pod's directory for its proxy: root's, group `uid`, 0750. The proxy
 * reads it and cannot write it, so root writing files there never meets a
 * link the proxy planted. */
function makeProxyDir(netns: string, uid: number): string {
  const dir = path.join(POD_DIR, netns);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, 0, uid);
  chmodSync(dir, 0o750);
  return dir;
}

export class Pod implements PodNetwork {
  readonly netns: string;
  readonly address: string;
  readonly proxyUid: number;
  readonly hostsFile: string;
  readonly proxyDir: string;
  readonly proxyRuntime: ProxyRuntime;
  readonly #release: () => void;
  readonly #relay: net.Server;
  readonly #relayPort: number;
  readonly #identityRelay: http.Server | undefined;
  readonly #log: NonNullable<PodOptions['log']>;
  #closed = false;

  readonly #vethHost: string;

  constructor(netns: string, address: string, vethHost: string, proxyUid: number, proxy: { dir: string; runtime: ProxyRuntime }, release: () => void, relay: net.Server, identityRelay: http.Server | undefined, log: NonNullable<PodOptions['log']>) {
    this.netns = netns;
    this.proxyDir = proxy.dir;
    this.proxyRuntime = proxy.runtime;
    this.#vethHost = vethHost;
    this.address = address;
    this.proxyUid = proxyUid;
    this.hostsFile = `/etc/netns/${netns}/hosts`;
    this.#release = release;
    this.#relay = relay;
    this.#relayPort = (relay.address() as net.AddressInfo).port;
    this.#identityRelay = identityRelay;
    this.#log = log;
  }

  get adminHost(): string {
    return this.address;
  }

  proxyWrap(): string[] {
    // The second setpriv sets the parent-death signal after the uid change
    // (a credential change clears it): the proxy dies with its runner.
    return ['ip', 'netns', 'exec', this.netns, 'setpriv', `--reuid=${this.proxyUid}`, `--regid=${this.proxyUid}`, '--clear-groups', '--', 'setpriv', '--pdeathsig', 'SIGKILL', '--'];
  }

  /** `base` without the join token, which goes into a file only the
   * proxy's uid (and root) can read: TRELLIS_JOIN_TOKEN_FILE. A token file
   * of the runner's own may be where that uid cannot reach. */
  proxyEnv(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
    const env = { ...base };
    let token: string | undefined;
    try {
      token = resolveJoinToken({ env: base });
    } catch {
      return env; // unreadable: the proxy says why
    }
    delete env.TRELLIS_JOIN_TOKEN;
    if (token === undefined) return env;
    const file = path.join(this.proxyDir, 'join-token');
    rmSync(file, { force: true });
    writeFileSync(file, token, { mode: 0o400, flag: 'wx' });
    chownSync(file, this.proxyUid, this.proxyUid);
    chmodSync(file, 0o400);
    env.TRELLIS_JOIN_TOKEN_FILE = file;
    return env;
  }

  appWrap(): string[] {
    return ['ip', 'netns', 'exec', this.netns, 'setpriv', '--pdeathsig', 'SIGTERM', '--'];
  }

  xdsAddress(): string {
    return `${GATEWAY}:${this.#relayPort}`;
  }

  identityUrl(): string | undefined {
    const a = this.#identityRelay?.address() as net.AddressInfo | undefined;
    return a ? `http://${GATEWAY}:${a.port}` : undefined;
  }

  /** Runs a command inside the pod (tests, tooling). */
  async exec(args: string[]): Promise<{ stdout: string; stderr: string }> {
    return exec('ip', ['netns', 'exec', this.netns, ...args]);
  }

  async capture(ports: { outbound: number; inbound: number; admin: number }): Promise<void> {
    const ipt = (...a: string[]): Promise<void> => run(['ip', 'netns', 'exec', this.netns, 'iptables', '-w', '-t', 'nat', ...a]);
    for (const rule of captureRules(ports, this.proxyUid)) await ipt(...rule);
    this.#log('pod_capture_installed', { netns: this.netns, ...ports });
  }

  /** Writes the hosts file (same inode: the bind mount keeps seeing it). */
  writeHosts(entries: ReadonlyMap<string, string>): void {
    const lines = ['127.0.0.1 localhost', `${this.address} ${this.netns}`];
    for (const [name, ip] of [...entries].sort(([a], [b]) => a.localeCompare(b))) lines.push(`${ip} ${name}`);
    writeFileSync(this.hostsFile, `${lines.join('\n')}\n`);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await new Promise<void>((resolve) => this.#relay.close(() => resolve()));
    const ir = this.#identityRelay;
    if (ir) {
      ir.closeAllConnections();
      await new Promise<void>((resolve) => ir.close(() => resolve()));
    }
    // The veth first: a namespace's devices go away asynchronously. With it
    // the address is off the bridge, so the lease can go before the
    // namespace (a lease whose namespace is gone is taken back as stale).
    await tryRun(['ip', 'link', 'del', this.#vethHost]);
    this.#release();
    await tryRun(['ip', 'netns', 'del', this.netns]);
    rmSync(path.dirname(this.hostsFile), { recursive: true, force: true });
    rmSync(this.proxyDir, { recursive: true, force: true });
    await maybeRemoveBridge();
    this.#log('pod_removed', { netns: this.netns });
  }
}

/** The xDS relay: the proxy inside the pod dials GATEWAY:port, the runner forwards to the control plane. */
async function startRelay(target: string): Promise<net.Server> {
  const i = target.lastIndexOf(':');
  const host = target.slice(0, i);
  const port = Number(target.slice(i + 1));
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (c) => {
    const up = net.connect({ host, port, noDelay: true });
    for (const s of [c, up]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      s.on('error', () => {
        c.destroy();
        up.destroy();
      });
    }
    c.pipe(up).pipe(c);
  });
  const close = server.close.bind(server);
  server.close = (cb?: (err?: Error) => void) => {
    for (const s of sockets) s.destroy();
    return close(cb);
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, GATEWAY, () => resolve());
  });
  return server;
}

/** What a sidecar asks of the CA (proxy/identity/ca-client.ts); nothing else passes. */
const IDENTITY_CALLS = new Set(['POST /api/v1/identity/csr', 'GET /api/v1/identity/trust-bundle']);

/** The identity relay: an HTTP server on `host` forwarding the identity
 * calls to the control plane API at `apiUrl`; anything else gets 403. */
export async function startIdentityRelay(apiUrl: string, host: string): Promise<http.Server> {
  const target = new URL(apiUrl);
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (!IDENTITY_CALLS.has(`${req.method} ${path}`)) {
      const body = JSON.stringify({ error: { code: 'PERMISSION_DENIED', message: `the pod's control-plane relay forwards only ${[...IDENTITY_CALLS].join(' and ')}` } });
      res.writeHead(403, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const headers: http.OutgoingHttpHeaders = {};
    for (const h of ['authorization', 'content-type', 'content-length', 'accept']) if (req.headers[h] !== undefined) headers[h] = req.headers[h];
    const up = http.request({ host: target.hostname, port: target.port || 80, method: req.method, path: req.url, headers, timeout: 15_000 }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, { 'content-type': ur.headers['content-type'] ?? 'application/json' });
      ur.pipe(res);
    });
    up.on('timeout', () => up.destroy(new Error('timeout')));
    up.on('error', (err) => {
      if (res.headersSent) return void res.destroy();
      const body = JSON.stringify({ error: { code: 'UNAVAILABLE', message: `control plane ${target.host}: ${err.message}` } });
      res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  return server;
}

export function netnsName(name: string): string {
  const safe = name.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 24);
  return `trl-${safe}`;
}

export async function createPod(opts: PodOptions): Promise<PodResult> {
  const why = await transparentUnsupported();
  if (why) return { ok: false, code: 'TRANSPARENT_UNSUPPORTED', message: why };
  const log = opts.log ?? (() => {});
  const uid = opts.proxyUid ?? DEFAULT_PROXY_UID;
  const staged = stageProxyRuntime({ uid });
  if (!staged.ok) return { ok: false, code: 'TRANSPARENT_UNSUPPORTED', message: staged.message };
  for (const dir of staged.built) log('proxy_runtime_staged', { dir });
  makePodDirRoot();
  const cannot = proxyUidCannotRun(staged.runtime, uid, [POD_DIR]);
  if (cannot) return { ok: false, code: 'TRANSPARENT_UNSUPPORTED', message: cannot };
  const netns = netnsName(opts.name);
  // A namespace left by a runner that was killed: removed if nothing runs in it.
  if (existsSync(`/run/netns/${netns}`)) {
    const pids = await exec('ip', ['netns', 'pids', netns]).then((r) => r.stdout.trim(), () => 'unknown');
    if (pids !== '') return { ok: false, code: 'TRANSPARENT_SETUP_FAILED', message: `network namespace ${netns} exists and is in use (pids ${pids})` };
    await tryRun(['ip', 'netns', 'del', netns]);
    log('stale_pod_removed', { netns });
  }
  const undo: (() => Promise<unknown>)[] = [];
  try {
    // The namespace first: a lease names its namespace, and a lease whose
    // namespace does not exist is taken back by the next runner.
    await run(['ip', 'netns', 'add', netns]);
    undo.push(() => tryRun(['ip', 'netns', 'del', netns]));
    const lease = leaseAddress(netns);
    // Undone last but one: the lease goes, then the bridge if no pod is left.
    undo.push(async () => {
      lease.release();
      await maybeRemoveBridge();
    });
    const id = lease.ip.split('.').pop()!;
    const vethHost = `trlh${id}-${process.pid % 10000}`.slice(0, 15);
    const vethPod = `trlp${id}-${process.pid % 10000}`.slice(0, 15);
    await run(['ip', 'link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethPod]);
    undo.push(() => tryRun(['ip', 'link', 'del', vethHost]));
    await run(['ip', 'link', 'set', vethPod, 'netns', netns]);
    await attachToBridge(vethHost);
    const inNs = (...a: string[]): Promise<void> => run(['ip', 'netns', 'exec', netns, ...a]);
    await inNs('ip', 'link', 'set', 'lo', 'up');
    await inNs('ip', 'link', 'set', vethPod, 'name', 'eth0');
    await inNs('ip', 'addr', 'add', `${lease.ip}/24`, 'dev', 'eth0');
    await inNs('ip', 'link', 'set', 'eth0', 'up');
    await inNs('ip', 'route', 'add', 'default', 'via', GATEWAY);
    mkdirSync(`/etc/netns/${netns}`, { recursive: true });
    undo.push(async () => rmSync(`/etc/netns/${netns}`, { recursive: true, force: true }));
    const proxyDir = makeProxyDir(netns, uid);
    undo.push(async () => rmSync(proxyDir, { recursive: true, force: true }));
    const relay = await startRelay(opts.xdsAddress);
    undo.push(() => new Promise((r) => relay.close(r)));
    const identityRelay = opts.apiUrl ? await startIdentityRelay(opts.apiUrl, GATEWAY) : undefined;
    const pod = new Pod(netns, lease.ip, vethHost, uid, { dir: proxyDir, runtime: staged.runtime }, lease.release, relay, identityRelay, log);
    pod.writeHosts(new Map());
    log('pod_created', { netns, address: lease.ip });
    return { ok: true, pod };
  } catch (err) {
    for (const u of undo.reverse()) await u().catch(() => {});
    return { ok: false, code: 'TRANSPARENT_SETUP_FAILED', message: (err as Error).message };
  }
}

/** The DNS-like names of `name.ns` as seen from `fromNs` (`clusterDomain`: the control plane's, read from the HTTP names it sends). */
function serviceNames(name: string, ns: string, fromNs: string | undefined, clusterDomain: string): string[] {
  const names = [`${name}.${ns}.svc.${clusterDomain}`, `${name}.${ns}.svc`, `${name}.${ns}`];
  if (fromNs === ns) names.push(name);
  return names;
}

/** Service names -> VIP from a proxy's config dump: each outbound virtual
 * host lists the names and the VIP of one HTTP service port; each TCP
 * chain of the transparent outbound listener is named after its service
 * cluster and matches the VIP. */
export function hostsFromConfigDump(dump: unknown, fromNs?: string): Map<string, string> {
  const out = new Map<string, string>();
  const cfg = (dump as { config?: { routeConfigs?: unknown; listeners?: unknown } })?.config;
  const rcs = cfg?.routeConfigs;
  const list: unknown[] = rcs instanceof Array ? rcs : rcs && typeof rcs === 'object' ? Object.values(rcs) : [];
  // The cluster domain, from the first `<name>.<ns>.svc.<domain>` the control plane routes (translate/services.ts).
  let clusterDomain = 'cluster.local';
  find: for (const rc of list) {
    for (const vh of (rc as { virtualHosts?: { domains?: unknown }[] })?.virtualHosts ?? []) {
      for (const d of Array.isArray(vh.domains) ? vh.domains : []) {
        const m = typeof d === 'string' ? /^[a-z0-9-]+\.[a-z0-9-]+\.svc\.([a-z0-9.-]+?)(?::\d+)?$/.exec(d) : null;
        if (m) {
          clusterDomain = m[1]!;
          break find;
        }
      }
    }
  }
  const ls = cfg?.listeners;
  const listeners: unknown[] = ls instanceof Array ? ls : ls && typeof ls === 'object' ? Object.values(ls) : [];
  for (const l of listeners) {
    for (const c of (l as { filterChains?: { name?: unknown; match?: { prefixRanges?: { address?: unknown; prefixLen?: unknown }[] } }[] })?.filterChains ?? []) {
      const m = typeof c.name === 'string' ? /^tcp\|([a-z0-9-]+)\.([a-z0-9-]+)\.svc:\d+$/.exec(c.name) : null;
      const pr = c.match?.prefixRanges?.[0];
      if (!m || !pr || typeof pr.address !== 'string' || pr.prefixLen !== 32) continue;
      for (const n of serviceNames(m[1]!, m[2]!, fromNs, clusterDomain)) out.set(n, pr.address);
    }
  }
  for (const rc of list) {
    const vhosts = (rc as { virtualHosts?: { domains?: unknown }[] })?.virtualHosts ?? [];
    for (const vh of vhosts) {
      const domains = Array.isArray(vh.domains) ? (vh.domains as unknown[]).filter((d): d is string => typeof d === 'string') : [];
      const hosts = domains.map((d) => d.replace(/:\d+$/, ''));
      const vip = hosts.find((h) => net.isIPv4(h));
      if (!vip) continue;
      for (const h of hosts) if (!net.isIP(h) && !h.includes('*')) out.set(h, vip);
    }
  }
  return out;
}
