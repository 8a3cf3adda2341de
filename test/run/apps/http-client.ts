// A client app that knows nothing of the mesh except HTTP_PROXY: it records
// when it started and when it could first reach http://HOST/ through the
// proxy (and after how many attempts), writes that JSON to OUT and exits
// with EXIT_CODE.
import http from 'node:http';
import { writeFileSync } from 'node:fs';

const started = Date.now();
const target = new URL(process.argv[2] ?? 'http://reviews:9080/');
const proxy = new URL(process.env.HTTP_PROXY ?? 'http://127.0.0.1:1');

function get(): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: proxy.hostname, port: Number(proxy.port), path: target.href, headers: { host: target.host }, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

let attempts = 0;
let first: { status: number; body: string } | undefined;
let reachedAt: number | undefined;
const errors: string[] = [];
while (attempts < 100) {
  attempts++;
  try {
    const r = await get();
    if (r.status === 200) {
      first = r;
      reachedAt = Date.now();
      break;
    }
    errors.push(`status ${r.status} ${r.body.slice(0, 100)}`);
  } catch (err) {
    errors.push((err as Error).message);
  }
  await new Promise((r) => setTimeout(r, 50));
}
writeFileSync(process.env.OUT!, JSON.stringify({ started, reachedAt, attempts, body: first?.body, errors: errors.slice(0, 5), env: { HTTP_PROXY: process.env.HTTP_PROXY, NO_PROXY: process.env.NO_PROXY } }));
process.exit(Number(process.env.EXIT_CODE ?? 0));
