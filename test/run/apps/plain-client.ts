// An unmodified client: plain http.get to a service name (no proxy
// settings). Retries a few times (bounded), writes what it saw to OUT.
import http from 'node:http';
import net from 'node:net';
import { writeFileSync } from 'node:fs';

const url = process.argv[2] ?? 'http://reviews:9080/';
function get(): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
const errors: string[] = [];
let result: { status: number; body: string; headers: http.IncomingHttpHeaders } | undefined;
for (let i = 0; i < 50 && !result; i++) {
  try {
    const r = await get();
    if (r.status === 200) result = r;
    else errors.push(`status ${r.status}: ${r.body.slice(0, 200)}`);
  } catch (err) {
    errors.push((err as Error).message);
  }
  if (!result) await new Promise((r) => setTimeout(r, 200));
}
// Optionally a raw TCP exchange with HOST:PORT (argv[3]). A reply-less
// close means the app behind the sidecar is not listening yet (it starts
// after its sidecar is ready): retried, bounded, as for HTTP.
let tcp: string | undefined;
if (process.argv[3]) {
  const [host, port] = process.argv[3].split(':') as [string, string];
  const ping = (): Promise<string> => new Promise<string>((resolve) => {
    const sock = net.connect(Number(port), host, () => sock.end('ping'));
    let got = '';
    sock.setEncoding('utf8').on('data', (d: string) => (got += d));
    sock.on('close', () => resolve(got));
    sock.on('error', (e) => resolve(`error: ${e.message}`));
    sock.setTimeout(5000, () => sock.destroy());
  });
  for (let i = 0; i < 25; i++) {
    tcp = await ping();
    if (tcp !== '' && !tcp.startsWith('error:')) break;
    errors.push(`tcp: ${tcp || 'closed without a reply'}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
writeFileSync(process.env.OUT!, JSON.stringify({ result, tcp, errors: errors.slice(0, 5) }));
process.exit(result ? 0 : 1);
