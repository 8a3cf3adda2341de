// Sidecar-to-sidecar mTLS with real TLS sockets: proxy A (outbound, plaintext
// from the client) originates mTLS to proxy B's inbound listener, which
// terminates it and forwards to the app.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { get, spiffe, startApp, startCaAndIds, startInbound, startOutbound } from './sidecar-fixtures.ts';
import { startIdentity, startTestCa } from './harness.ts';

test('HTTP/1.1 over mTLS through a sidecar pair: the app sees the caller identity, a spoofed one is replaced', async (t) => {
  const { a, b } = await startCaAndIds(t);
  const app = await startApp(t);
  const bPort = await startInbound(t, b, app, { mode: 'STRICT' });
  const aPort = await startOutbound(t, a, bPort, { sans: [spiffe('ratings')] });
  const r = await get(aPort, { 'x-trellis-peer-identity': 'spiffe://mesh.test/ns/shop/sa/admin' });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { peer: spiffe('reviews'), version: '1.1' });
});

test('h2 over mTLS (ALPN h2) through a sidecar pair to an h2c app', async (t) => {
  const { a, b } = await startCaAndIds(t);
  const app = await startApp(t, true);
  const bPort = await startInbound(t, b, app, { mode: 'STRICT', h2App: true });
  const aPort = await startOutbound(t, a, bPort, { sans: [spiffe('ratings')], h2: true });
  const r = await get(aPort);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { peer: spiffe('reviews'), version: '2' });
});

test('STRICT closes plaintext connections; PERMISSIVE serves plaintext (no identity, spoof stripped) and mTLS', async (t) => {
  const { a, b } = await startCaAndIds(t);
  const app = await startApp(t);
  const strict = await startInbound(t, b, app, { mode: 'STRICT' });
  const s = net.connect(strict, '127.0.0.1');
  s.write('GET / HTTP/1.1\r\nhost: b\r\n\r\n');
  let got = '';
  s.on('data', (d: Buffer) => (got += d.toString()));
  await once(s, 'close');
  assert.equal(got, '', 'plaintext refused without an answer');

  const permissive = await startInbound(t, b, app, { mode: 'PERMISSIVE' });
  const plain = await get(permissive, { 'x-trellis-peer-identity': spiffe('admin') });
  assert.deepEqual([plain.status, plain.body?.peer], [200, null]);
  const aPort = await startOutbound(t, a, permissive, { sans: [spiffe('ratings')] });
  const viaMtls = await get(aPort);
  assert.deepEqual([viaMtls.status, viaMtls.body?.peer], [200, spiffe('reviews')]);
});

test("the caller refuses a server whose SPIFFE ID is not the destination's", async (t) => {
  const { a, b } = await startCaAndIds(t);
  const app = await startApp(t);
  const bPort = await startInbound(t, b, app, { mode: 'STRICT' });
  const aPort = await startOutbound(t, a, bPort, { sans: [spiffe('payments')] });
  const r = await get(aPort);
  assert.ok(r.status === 502 || r.status === 503, `upstream failure status, got ${r.status}`);
  assert.equal(r.body, null, 'the app never answered');
});

test('an untrusted or expired client certificate is refused by the inbound sidecar', async (t) => {
  const { tca, b } = await startCaAndIds(t);
  const app = await startApp(t);
  const bPort = await startInbound(t, b, app, { mode: 'STRICT' });

  const handshake = (opts: tls.ConnectionOptions): Promise<'refused' | 'served'> =>
    new Promise((resolve) => {
      const c = tls.connect({ host: '127.0.0.1', port: bPort, ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined, ...opts }, () => {
        c.write('GET / HTTP/1.1\r\nhost: b\r\n\r\n');
      });
      let data = '';
      c.on('data', (d: Buffer) => {
        data += d.toString();
        if (data.includes('\r\n\r\n')) c.destroy();
      });
      c.on('error', () => {});
      c.on('close', () => resolve(data.startsWith('HTTP/1.1 200') ? 'served' : 'refused'));
      c.setTimeout(5000, () => c.destroy());
    });

  // A valid peer is served (sanity check of the probe itself).
  const good = await startIdentity(t, tca, 'good');
  const gc = good.current()!;
  assert.equal(await handshake({ key: gc.privateKeyPem, cert: gc.certificateChain, ca: gc.trustBundle }), 'served');

  // Another CA: a well-formed SPIFFE certificate that does not chain to the bundle.
  const rogueCa = await startTestCa(t);
  const rogue = await startIdentity(t, rogueCa, 'reviews');
  const rc = rogue.current()!;
  assert.equal(await handshake({ key: rc.privateKeyPem, cert: rc.certificateChain, ca: tca.ca.trustBundle().pem }), 'refused');

  // Expired: issued by the right CA with a clock 2 h in the past and a 1 h TTL.
  const pastCa = await startTestCa(t, { now: () => Date.now() - 2 * 3600_000, workloadTtlMs: 3600_000 });
  const stale = await startIdentity(t, pastCa, 'reviews');
  const sc = stale.current()!;
  assert.ok(sc.expiresAt.getTime() < Date.now());
  // Trust the past CA's root at B so only expiry is wrong.
  b.setTrustBundle(tca.ca.trustBundle().pem + pastCa.ca.trustBundle().pem);
  assert.equal(await handshake({ key: sc.privateKeyPem, cert: sc.certificateChain, ca: tca.ca.trustBundle().pem }), 'refused');
  // No client certificate at all.
  assert.equal(await handshake({ ca: tca.ca.trustBundle().pem }), 'refused');
});
