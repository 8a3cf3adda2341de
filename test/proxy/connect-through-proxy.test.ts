// HTTP CONNECT through the proxy (what HTTPS_PROXY and grpc_proxy clients
// send): a connectMatcher route opens a TCP tunnel to an endpoint of its
// cluster, the client gets 200 and then talks to the backend directly
// (bytes both ways, half-close included); CONNECT to a host without such a
// route is refused, and ordinary routes never match a CONNECT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { bootstrapDoc, freePort, httpBackend, httpListener, portOf, runProxy, staticCluster, tcpBackend } from './helpers.ts';

/** Sends `head`; on a 200 sends `payload` and half-closes, resolving with
 * all that came back before the close; otherwise resolves with the answer. */
function connectExchange(port: number, head: string, payload: string | null): Promise<{ answer: string; rest: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(head));
    let buf = '';
    let answered = false;
    s.setEncoding('latin1').on('data', (d: string) => {
      buf += d;
      if (!answered && buf.includes('\r\n\r\n')) {
        answered = true;
        if (payload !== null && buf.startsWith('HTTP/1.1 200')) s.end(payload);
        else s.destroy(); // a refusal: its head is all we look at (the connection may stay open)
      }
    });
    s.on('close', () => {
      const i = buf.indexOf('\r\n\r\n');
      resolve({ answer: i < 0 ? buf : buf.slice(0, i), rest: i < 0 ? '' : buf.slice(i + 4) });
    });
    s.on('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
  });
}

test('CONNECT host:port through a connectMatcher route: 200, then a tunnel to the cluster; no route, no tunnel', async (t) => {
  // The backend echoes what it got once the client half-closes.
  const echo = await tcpBackend(t, (s) => {
    let got = '';
    s.setEncoding('latin1').on('data', (d: string) => (got += d)).on('end', () => s.end(`echo:${got}`));
  });
  const web = await httpBackend(t, 'web');
  const proxy = await runProxy(t, bootstrapDoc({
    listeners: [httpListener('out', { routeConfigName: 'out' })],
    clusters: [staticCluster('echo', [echo]), staticCluster('web', [web.port]), staticCluster('nowhere', [await freePort()], { connectTimeout: '1s' })],
    routes: [{
      name: 'out',
      virtualHosts: [
        { name: 'echo', domains: ['echo.internal:7000'], routes: [{ match: { connectMatcher: {} }, route: { cluster: 'echo', upgradeConfigs: [{ upgradeType: 'CONNECT' }] } }] },
        { name: 'dead', domains: ['dead.internal:7000'], routes: [{ match: { connectMatcher: {} }, route: { cluster: 'nowhere' } }] },
        { name: 'denied', domains: ['denied.example:443'], routes: [{ match: { connectMatcher: {} }, directResponse: { status: 403, body: { inlineString: 'egress denied\n' } } }] },
        // Ordinary routes only: a CONNECT finds nothing here.
        { name: 'web', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'web' } }] },
      ],
    }],
  }));
  const port = portOf(proxy, 'out');

  const ok = await connectExchange(port, 'CONNECT echo.internal:7000 HTTP/1.1\r\nHost: echo.internal:7000\r\n\r\n', 'hello through the tunnel');
  assert.match(ok.answer, /^HTTP\/1\.1 200 /);
  assert.equal(ok.rest, 'echo:hello through the tunnel');

  const none = await connectExchange(port, 'CONNECT elsewhere.example:443 HTTP/1.1\r\nHost: elsewhere.example:443\r\n\r\n', null);
  assert.match(none.answer, /^HTTP\/1\.1 404 /, 'no connectMatcher route: refused');
  assert.equal(web.hits(), 0, 'the ordinary route did not take the CONNECT');

  const denied = await connectExchange(port, 'CONNECT denied.example:443 HTTP/1.1\r\nHost: denied.example:443\r\n\r\n', null);
  assert.match(denied.answer, /^HTTP\/1\.1 403 /, 'a connectMatcher route with a direct response answers it');

  const refused = await connectExchange(port, 'CONNECT dead.internal:7000 HTTP/1.1\r\nHost: dead.internal:7000\r\n\r\n', null);
  assert.match(refused.answer, /^HTTP\/1\.1 50[23] /, 'the endpoint refuses: an error answer, no tunnel');

  const bad = await connectExchange(port, 'CONNECT /not-authority HTTP/1.1\r\nHost: x\r\n\r\n', null);
  assert.match(bad.answer, /^HTTP\/1\.1 400 /);
});
