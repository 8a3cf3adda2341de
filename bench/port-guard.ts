// The explicit-mode front door as `trellis run` sets it up: the runner's port
// guard (src/runner/port-guard.ts), the app's HTTP_PROXY target, relaying
// to the client sidecar. Run as its own process so its CPU and RSS count.
//   node bench/port-guard.ts '{"listen":[p1,p2],"primary":[q1,q2]}'
import { startPortGuard } from '../src/runner/port-guard.ts';

const { listen, primary } = JSON.parse(process.argv[2] ?? '{}') as { listen: number[]; primary: number[] };
const guards = await Promise.all(listen.map((port, i) => startPortGuard({ listen: { host: '127.0.0.1', port }, primary: { host: '127.0.0.1', port: primary[i]! } })));
process.on('SIGTERM', () => void Promise.all(guards.map((g) => g.close())).then(() => process.exit(0)));
