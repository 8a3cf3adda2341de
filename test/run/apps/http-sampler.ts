// A client app that knows nothing of the mesh except HTTP_PROXY: COUNT
// (default 40) GETs of URL, recording per answer the status, which app
// answered (x-app), which caller identity that app was told (x-peer) and
// how long it took (ms, over one kept-alive connection); writes the list to
// OUT. INTERVAL_MS (default 0) spaces the requests out.
import http from 'node:http';
import { writeFileSync } from 'node:fs';

const target = new URL(process.argv[2] ?? 'http://reviews:9080/');
const proxy = new URL(process.env.HTTP_PROXY ?? 'http://127.0.0.1:1');
const count = Number(process.env.COUNT ?? 40);
const interval = Number(process.env.INTERVAL_MS ?? 0);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function get(): Promise<{ status: number; ms: number; app?: string; peer?: string; error?: string }> {
  const t0 = performance.now();
  const ms = (): number => performance.now() - t0;
  return new Promise((resolve) => {
    const req = http.request({ host: proxy.hostname, port: Number(proxy.port), path: target.href, headers: { host: target.host }, agent, timeout: 3000 }, (res) => {
      res.resume().on('end', () => resolve({
        status: res.statusCode ?? 0,
        ms: ms(),
        ...(typeof res.headers['x-app'] === 'string' ? { app: res.headers['x-app'] } : {}),
        ...(typeof res.headers['x-peer'] === 'string' ? { peer: res.headers['x-peer'] } : {}),
      }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, ms: ms(), error: err.message }));
    req.end();
  });
}

const answers = [];
for (let i = 0; i < count; i++) {
  answers.push(await get());
  if (interval > 0) await new Promise((r) => setTimeout(r, interval));
}
agent.destroy();
writeFileSync(process.env.OUT!, JSON.stringify(answers));
