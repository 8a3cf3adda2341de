// Opaque TCP through the in-process proxy: half-close, server-first
// protocols, detection fallback, connect failures, byte metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { bootstrapDoc, getText, httpBackend, httpListener, portOf, request, routeConfig, runProxy, staticCluster, tcpBackend, tcpListener } from './helpers.ts';

function connect(port: number): net.Socket {
  return net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
}

function readAll(s: net.Socket): Promise<string> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return once(s, 'end').then(() => Buffer.concat(chunks).toString());
}

test('TCP half-close: the client ends its side, the server still replies, then closes', async (t) => {
  // The backend reads until the client's FIN, then answers and closes.
  const backend = await tcpBackend(t, (s) => {
    const got: Buffer[] = [];
    s.on('data', (c: Buffer) => got.push(c));
    s.on('end', () => {
      setTimeout(() => s.end(`got ${Buffer.concat(got).length} bytes: ${Buffer.concat(got).toString().slice(0, 11)}`), 30);
    });
  });
  const p = await runProxy(t, bootstrapDoc({ listeners: [tcpListener('db', 'db')], clusters: [staticCluster('db', [backend])] }));
  const c = connect(portOf(p, 'db'));
  t.after(() => c.destroy());
  const reply = readAll(c);
  c.write('hello world');
  c.end(Buffer.alloc(100_000, 'x')); // FIN after a body large enough to need backpressure
  assert.equal(await reply, 'got 100011 bytes: hello world');
  await once(c, 'close');

  const prom = (await getText(p.adminPort!, '/stats/prometheus')).body;
  assert.match(prom, /^trellis_upstream_bytes_total\{cluster="db",direction="tx"\} 100011$/m);
  assert.match(prom, /^trellis_downstream_bytes_total\{listener="db",direction="rx"\} 100011$/m);
  assert.match(prom, /^trellis_downstream_connections_total\{listener="db",protocol="opaque"\} 1$/m);
});

test('server-first protocol on an opaque port: the banner arrives without the client sending anything', async (t) => {
  const backend = await tcpBackend(t, (s) => {
    s.write('220 smtp.example ESMTP ready\r\n');
    s.on('data', (d: Buffer) => {
      if (String(d).startsWith('QUIT')) s.end('221 bye\r\n');
    });
  });
  // Detection would wait 5 s; an opaque chain must not wait at all.
  const p = await runProxy(t, bootstrapDoc({ listeners: [tcpListener('smtp', 'smtp')], clusters: [staticCluster('smtp', [backend])] }), { detectTimeoutMs: 5000 });
  const c = connect(portOf(p, 'smtp'));
  t.after(() => c.destroy());
  const start = performance.now();
  const [banner] = (await once(c, 'data')) as [Buffer];
  assert.equal(String(banner), '220 smtp.example ESMTP ready\r\n');
  assert.ok(performance.now() - start < 2000);
  const rest = readAll(c);
  c.write('QUIT\r\n');
  assert.equal(await rest, '221 bye\r\n');
});

test('detection fallback: a silent client on an auto port becomes opaque TCP after the timeout; HTTP still detected', async (t) => {
  const backend = await tcpBackend(t, (s) => {
    s.write('BANNER\n');
    s.pipe(s);
  });
  const web = await httpBackend(t, 'web');
  const p = await runProxy(t, bootstrapDoc({
    listeners: [httpListener('mixed', { routeConfigName: 'r', fallbackTcpCluster: 'raw' })],
    clusters: [staticCluster('raw', [backend]), staticCluster('web', [web.port])],
    routes: [routeConfig('r', [{ cluster: 'web' }])],
  }), { detectTimeoutMs: 100 });
  const port = portOf(p, 'mixed');
  const c = connect(port);
  t.after(() => c.destroy());
  const start = performance.now();
  const [banner] = (await once(c, 'data')) as [Buffer];
  const took = performance.now() - start;
  assert.equal(String(banner), 'BANNER\n');
  assert.ok(took >= 90, `fell back after the detection timeout (${took} ms)`);
  c.write('ping\n');
  const [echo] = (await once(c, 'data')) as [Buffer];
  assert.equal(String(echo), 'ping\n');

  const r = await request(port, { agent: false, path: '/via-http' });
  assert.equal(r.body, 'web /via-http');
});

test('TCP to an endpoint that refuses: the downstream is closed and the failure counted', async (t) => {
  const p = await runProxy(t, bootstrapDoc({ listeners: [tcpListener('x', 'gone')], clusters: [staticCluster('gone', [1])] }));
  const c = connect(portOf(p, 'x'));
  t.after(() => c.destroy());
  c.on('error', () => {});
  c.resume();
  await once(c, 'end');
  const prom = (await getText(p.adminPort!, '/stats/prometheus')).body;
  assert.match(prom, /^trellis_upstream_connect_failures_total\{cluster="gone",reason="connect_failed"\} 1$/m);
});

test('TCP: a reset from the upstream resets the downstream', async (t) => {
  const backend = await tcpBackend(t, (s) => {
    s.once('data', () => s.resetAndDestroy());
  });
  const p = await runProxy(t, bootstrapDoc({ listeners: [tcpListener('x', 'b')], clusters: [staticCluster('b', [backend])] }));
  const c = connect(portOf(p, 'x'));
  t.after(() => c.destroy());
  let error: NodeJS.ErrnoException | undefined;
  c.on('error', (e) => (error = e));
  c.resume();
  c.write('boom');
  await new Promise((r) => c.once('close', r)); // events.once would reject on 'error'
  assert.equal(error?.code, 'ECONNRESET');
});
