// Local micro-benchmark (not a test): serveHttp1 + createHttp1Pool in this
// process, pinned to one core when `taskset` is available, in front of a
// tiny raw-socket "return 200" upstream in a child process; `wrk` drives it.
//   node src/proxy/http1/bench-local.ts [--seconds 10] [--connections 32] [--upstream-port N]
// With --upstream-port, an existing backend (e.g. NGINX) is used instead.
// Prints req/s for the upstream directly and through the proxy.
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { parseArgs } from 'node:util';
import type { ConnectionContext } from '../connection.ts';
import { DEFAULT_POOL_OPTIONS } from '../upstream/types.ts';
import { createHttp1Pool } from './pool.ts';
import { serveHttp1 } from './server.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    'upstream-port': { type: 'string' },
    'proxy-only': { type: 'boolean', default: false },
    serve: { type: 'string' },
  },
});

const UPSTREAM = `
const net = require('node:net');
const res = Buffer.from('HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\ncontent-type: text/plain\\r\\n\\r\\nok');
const srv = net.createServer((s) => {
  s.setNoDelay(true);
  let pending = '';
  s.on('data', (d) => {
    pending += d.toString('latin1');
    let n = 0, i;
    while ((i = pending.indexOf('\\r\\n\\r\\n')) !== -1) { n++; pending = pending.slice(i + 4); }
    if (n === 1) s.write(res); else if (n > 1) s.write(Buffer.concat(Array(n).fill(res)));
  });
  s.on('error', () => {});
});
srv.listen(0, '127.0.0.1', () => process.stdout.write(String(srv.address().port) + '\\n'));
`;

function wrk(port: number): number {
  const r = spawnSync('taskset', ['-c', '0', 'wrk', '-t1', `-c${values.connections}`, `-d${values.seconds}s`, `http://127.0.0.1:${port}/`], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`wrk failed: ${r.error?.message ?? r.stderr}`);
  const m = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
  if (!m) throw new Error(`unexpected wrk output:\n${r.stdout}`);
  return Number(m[1]);
}

function startProxy(upstreamPort: number): Promise<number> {
  const pool = createHttp1Pool({ ...DEFAULT_POOL_OPTIONS, host: '127.0.0.1', port: upstreamPort });
  const srv = net.createServer((socket) => {
    const ctx: ConnectionContext = {
      listener: 'bench', direction: 'outbound',
      downstream: { remoteAddress: '', remotePort: 0, localAddress: '', localPort: 0 },
      dispatch: pool.dispatch, track: () => () => {},
    };
    serveHttp1(socket, Buffer.alloc(0), ctx);
  });
  return new Promise((r) => srv.listen(0, '127.0.0.1', () => r((srv.address() as net.AddressInfo).port)));
}

if (values.serve !== undefined) {
  // Child mode: serve the proxy only (so it can be pinned to its own core).
  const port = await startProxy(Number(values.serve));
  process.stdout.write(`${port}\n`);
} else {
  const children: Array<ReturnType<typeof spawn>> = [];
  const firstLine = (c: ReturnType<typeof spawn>): Promise<number> => new Promise((resolve, reject) => {
    let out = '';
    c.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const i = out.indexOf('\n');
      if (i !== -1) resolve(Number(out.slice(0, i)));
    });
    c.on('exit', (code) => reject(new Error(`child exited with ${code}`)));
  });
  try {
    let upstreamPort: number;
    if (values['upstream-port'] !== undefined) {
      upstreamPort = Number(values['upstream-port']);
    } else {
      const up = spawn('taskset', ['-c', '0', process.execPath, '-e', UPSTREAM], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(up);
      upstreamPort = await firstLine(up);
    }
    const proxy = spawn('taskset', ['-c', '1', process.execPath, import.meta.filename, '--serve', String(upstreamPort)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(proxy);
    const proxyPort = await firstLine(proxy);
    if (!values['proxy-only']) console.log(`direct: ${wrk(upstreamPort).toFixed(0)} req/s`);
    wrk(proxyPort); // warm-up (JIT)
    console.log(`trellis http1 proxy: ${wrk(proxyPort).toFixed(0)} req/s (wrk -t1 -c${values.connections}, proxy pinned to core 1)`);
  } finally {
    for (const c of children) c.kill();
  }
}
