import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { appHealthHandler, parseAppProbers } from './app-health.ts';

const listen = (s: net.Server): Promise<number> => new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));

test('app-health: the admin runs the app\'s original httpGet and tcpSocket probes against 127.0.0.1', async (t) => {
  let healthy = true;
  const app = http.createServer((req, res) => {
    res.writeHead(healthy && req.url === '/healthz' && req.headers['x-probe'] === 'k' ? 200 : 500);
    res.end();
  });
  const appPort = await listen(app);
  t.after(() => app.close());
  const closed = net.createServer();
  const closedPort = await listen(closed);
  await new Promise((r) => closed.close(r));

  const probers = parseAppProbers(JSON.stringify({
    '/app-health/web/readyz': { httpGet: { path: '/healthz', port: appPort, scheme: 'HTTP', httpHeaders: [{ name: 'x-probe', value: 'k' }] }, timeoutSeconds: 2 },
    '/app-health/web/livez': { tcpSocket: { port: appPort }, timeoutSeconds: 1 },
    '/app-health/db/livez': { tcpSocket: { port: closedPort }, timeoutSeconds: 1 },
  }));
  const handle = appHealthHandler(probers);
  const admin = http.createServer((req, res) => {
    if (!handle(req, res)) {
      res.writeHead(418);
      res.end();
    }
  });
  const adminPort = await listen(admin);
  t.after(() => admin.close());
  const status = async (path: string) => (await fetch(`http://127.0.0.1:${adminPort}${path}`)).status;

  assert.equal(await status('/app-health/web/readyz'), 200);
  assert.equal(await status('/app-health/web/livez'), 200);
  assert.equal(await status('/app-health/db/livez'), 503);
  assert.equal(await status('/app-health/nope/readyz'), 404);
  assert.equal(await status('/ready'), 418, 'other admin paths are not this handler\'s');
  healthy = false;
  assert.equal(await status('/app-health/web/readyz'), 503);
  assert.throws(() => parseAppProbers('{"/x":{"tcpSocket":{"port":1},"timeoutSeconds":1}}'), /\/x: paths start with \/app-health\//);
  assert.throws(() => parseAppProbers('{"/app-health/a/b":{"tcpSocket":{"port":0},"timeoutSeconds":1}}'), /a port 1-65535 is required/);
});
