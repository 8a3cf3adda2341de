// Filter chain selection through the real proxy: original destination
// (the transparent-capture hook), TLS passthrough by transport protocol,
// TLS on an HTTP-only chain, a listener moved to another address on the
// same port, and HTTP/2 drain on shutdown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http2 from 'node:http2';
import { once } from 'node:events';
import { bootstrapDoc, config, freePort, httpBackend, httpListener, portOf, request, routeConfig, runProxy, sockAddr, staticCluster, tcpBackend } from './helpers.ts';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
const hcmFilter = { name: 'envoy.filters.network.http_connection_manager', typedConfig: { '@type': HCM, statPrefix: 'h', rds: { routeConfigName: 'r' }, httpFilters: [{ name: 'envoy.filters.http.router' }] } };
const tcpFilter = (cluster: string) => ({ name: 'envoy.filters.network.tcp_proxy', typedConfig: { '@type': TCP, statPrefix: cluster, cluster } });
// A TLS 1.2 ClientHello's first bytes are enough for detection.
const CLIENT_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03]);

test('useOriginalDst: chains match on the original destination port from the capture hook', async (t) => {
  const pg = await tcpBackend(t, (s) => s.end('pg-banner'));
  const web = await httpBackend(t, 'web');
  let accepted = 0;
  const p = await runProxy(t, bootstrapDoc({
    listeners: [{
      name: 'capture', address: sockAddr(0), useOriginalDst: true,
      filterChains: [
        { name: 'pg', filterChainMatch: { destinationPort: 5432 }, filters: [tcpFilter('pg')] },
        { name: 'http', filters: [hcmFilter] },
      ],
    }],
    clusters: [staticCluster('pg', [pg]), staticCluster('web', [web.port])],
    routes: [routeConfig('r', [{ cluster: 'web' }])],
  }), {
    // Stands in for SO_ORIGINAL_DST: the 1st, 3rd... connection "was for" 5432.
    getOriginalDst: () => (accepted++ % 2 === 0 ? { address: '10.0.0.9', port: 5432 } : { address: '10.0.0.9', port: 80 }),
  });
  const port = portOf(p, 'capture');
  let sawPg = false;
  let sawHttp = false;
  for (let i = 0; i < 4; i++) {
    const c = net.connect({ host: '127.0.0.1', port });
    await once(c, 'connect');
    if (i % 2 === 0) {
      let got = '';
      c.setEncoding('utf8').on('data', (d: string) => (got += d));
      await once(c, 'end');
      assert.equal(got, 'pg-banner');
      sawPg = true;
    } else {
      c.write('GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
      let got = '';
      c.setEncoding('utf8').on('data', (d: string) => (got += d));
      await once(c, 'end');
      assert.match(got, /web \/x$/);
      sawHttp = true;
    }
    c.destroy();
  }
  assert.ok(sawPg && sawHttp);
});

test('TLS detected: passed through on a transportProtocol=tls TCP chain; closed on an HTTP-only chain', async (t) => {
  const tlsBackend = await tcpBackend(t, (s) => {
    s.once('data', (d: Buffer) => s.end(`tls-backend got ${d.length} bytes starting ${d[0]}`));
  });
  const web = await httpBackend(t, 'web');
  const p = await runProxy(t, bootstrapDoc({
    listeners: [
      { name: 'mixed', address: sockAddr(0), filterChains: [
        { name: 'tls', filterChainMatch: { transportProtocol: 'tls' }, filters: [tcpFilter('tlsb')] },
        { name: 'http', filters: [hcmFilter] },
      ] },
      { name: 'plain', address: sockAddr(await freePort()), filterChains: [{ name: 'http', filters: [hcmFilter] }] },
    ],
    clusters: [staticCluster('tlsb', [tlsBackend]), staticCluster('web', [web.port])],
    routes: [routeConfig('r', [{ cluster: 'web' }])],
  }));
  const c = net.connect({ host: '127.0.0.1', port: portOf(p, 'mixed') });
  t.after(() => c.destroy());
  let got = '';
  c.setEncoding('utf8').on('data', (d: string) => (got += d));
  c.write(CLIENT_HELLO);
  await once(c, 'end');
  assert.equal(got, `tls-backend got ${CLIENT_HELLO.length} bytes starting 22`);
  assert.equal((await request(portOf(p, 'mixed'), { agent: false })).body, 'web /');

  const d = net.connect({ host: '127.0.0.1', port: portOf(p, 'plain') });
  t.after(() => d.destroy());
  d.on('error', () => {});
  d.resume();
  d.write(CLIENT_HELLO);
  await new Promise((r) => d.once('close', r));
});

test('a listener moved to another address on the same port is rebound', async (t) => {
  const web = await httpBackend(t, 'web');
  const port = await freePort();
  const doc = (address: string) => bootstrapDoc({
    listeners: [{ name: 'l', address: sockAddr(port, address), filterChains: [{ name: 'http', filters: [hcmFilter] }] }],
    clusters: [staticCluster('web', [web.port])],
    routes: [routeConfig('r', [{ cluster: 'web' }])],
  });
  const p = await runProxy(t, doc('127.0.0.1'));
  const r = await p.applyConfig(config(doc('0.0.0.0'), 'v2'));
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(p.config?.listeners[0]?.address, '0.0.0.0');
  assert.equal((await request(port, { agent: false })).body, 'web /');
});

test('HTTP/2 drain on stop: GOAWAY, the in-flight stream completes', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let arrived!: () => void;
  const inFlight = new Promise<void>((r) => (arrived = r));
  const slow = await httpBackend(t, 'slow', (req, res) => {
    req.resume();
    arrived();
    void gate.then(() => res.end('slow h2 done'));
  });
  const p = await runProxy(t, bootstrapDoc({
    listeners: [httpListener('out', { routeConfigName: 'r' })],
    clusters: [staticCluster('s', [slow.port])],
    routes: [routeConfig('r', [{ cluster: 's' }])],
  }));
  const session = http2.connect(`http://127.0.0.1:${portOf(p, 'out')}`);
  t.after(() => session.destroy());
  session.on('error', () => {});
  const goaway = once(session, 'goaway');
  const req = session.request({ ':path': '/slow' });
  let body = '';
  req.setEncoding('utf8').on('data', (d: string) => (body += d));
  const ended = once(req, 'end');
  await inFlight;
  const stopped = p.stop({ drainMs: 5000 });
  await goaway;
  release();
  await ended;
  assert.equal(body, 'slow h2 done');
  await stopped;
});
