// Hosts for tests: a private bridge and N "hosts", each a network namespace
// with its own address on it, so nothing that crosses hosts can go over
// 127.0.0.1. Linux and root only; `hostsUnsupported()` says why not.
//
//   root netns: bridge trh<id> 198.19.<n>.1/24 (RFC 2544 benchmark range,
//               never routed; nothing is forwarded off the machine)
//     ├─ veth ── netns trh<id>-a: eth0 198.19.<n>.11/24, lo
//     └─ veth ── netns trh<id>-b: eth0 198.19.<n>.12/24, lo
//
// Names carry a random id per kit, so parallel test files (and other
// helpers' trellis0 pods) never collide; the subnet <n> is one no interface
// uses yet. close() removes every namespace (their veths go with them) and
// the bridge.
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const exec = promisify(execFile);

async function sh(args: string[]): Promise<string> {
  const [cmd, ...rest] = args;
  try {
    return (await exec(cmd!, rest)).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

export async function hostsUnsupported(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'test hosts need Linux network namespaces';
  if (process.getuid?.() !== 0) return 'test hosts need root (ip netns, veth, bridge)';
  try {
    await exec('ip', ['-V']);
  } catch {
    return '`ip` is not installed (apt-get install iproute2)';
  }
  return undefined;
}

export interface TestHost {
  readonly name: string;
  readonly netns: string;
  readonly address: string;
  /** `ip netns exec <netns>` + args, as a spawned child. */
  spawn(cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Runs a command inside the host and returns its stdout. */
  exec(args: readonly string[]): Promise<string>;
  /** Cuts the host off the bridge (its veth down) or reconnects it. */
  setLink(up: boolean): Promise<void>;
}

export interface TestNetwork {
  /** The bridge's address in the root namespace (where the test process sits). */
  readonly gateway: string;
  readonly bridge: string;
  addHost(name: string): Promise<TestHost>;
  close(): Promise<void>;
}

async function freeSubnet(): Promise<number> {
  const used = await sh(['ip', '-o', '-4', 'addr', 'show']);
  const taken = new Set([...used.matchAll(/198\.19\.(\d+)\./g)].map((m) => Number(m[1])));
  const start = 1 + (randomBytes(1)[0]! % 250);
  for (let i = 0; i < 250; i++) {
    const n = 1 + ((start + i) % 250);
    if (!taken.has(n)) return n;
  }
  throw new Error('no free 198.19.<n>.0/24 subnet for test hosts');
}

export async function createTestNetwork(): Promise<TestNetwork> {
  const id = randomBytes(3).toString('hex');
  const bridge = `trh${id}`;
  const n = await freeSubnet();
  const prefix = `198.19.${n}.`;
  const gateway = `${prefix}1`;
  const hosts: TestHost[] = [];
  await sh(['ip', 'link', 'add', bridge, 'type', 'bridge']);
  try {
    await sh(['ip', 'addr', 'add', `${gateway}/24`, 'dev', bridge]);
    await sh(['ip', 'link', 'set', bridge, 'up']);
  } catch (err) {
    await sh(['ip', 'link', 'del', bridge]).catch(() => {});
    throw err;
  }
  let closed = false;
  return {
    gateway,
    bridge,
    async addHost(name) {
      if (!/^[a-z][a-z0-9]{0,5}$/.test(name)) throw new Error(`host name ${JSON.stringify(name)}: 1-6 lowercase letters/digits`);
      const netns = `trh${id}-${name}`;
      const address = `${prefix}${11 + hosts.length}`;
      const vethHost = `trv${id}${hosts.length}`;
      const vethPeer = `trp${id}${hosts.length}`;
      await sh(['ip', 'netns', 'add', netns]);
      const host: TestHost = {
        name,
        netns,
        address,
        spawn: (cmd, args, opts = {}) => spawn('ip', ['netns', 'exec', netns, cmd, ...args], opts),
        exec: (args) => sh(['ip', 'netns', 'exec', netns, ...args]),
        setLink: async (up) => void (await sh(['ip', 'link', 'set', vethHost, up ? 'up' : 'down'])),
      };
      hosts.push(host);
      await sh(['ip', 'link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethPeer]);
      await sh(['ip', 'link', 'set', vethPeer, 'netns', netns]);
      await sh(['ip', 'link', 'set', vethHost, 'master', bridge, 'up']);
      const inNs = (args: string[]) => sh(['ip', 'netns', 'exec', netns, ...args]);
      await inNs(['ip', 'link', 'set', 'lo', 'up']);
      await inNs(['ip', 'link', 'set', vethPeer, 'name', 'eth0']);
      await inNs(['ip', 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      await inNs(['ip', 'link', 'set', 'eth0', 'up']);
      return host;
    },
    async close() {
      if (closed) return;
      closed = true;
      // The veth first (both ends go): a namespace outlives its name while
      // anything still holds it, and its veth would linger on the host.
      for (const [i, h] of hosts.entries()) {
        await sh(['ip', 'link', 'del', `trv${id}${i}`]).catch(() => {});
        await sh(['ip', 'netns', 'del', h.netns]).catch(() => {});
      }
      await sh(['ip', 'link', 'del', bridge]).catch(() => {});
    },
  };
}
