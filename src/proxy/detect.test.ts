import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { classify, detectProtocol, H2_PREFACE, type DetectResult } from './detect.ts';

test('classify: TLS, HTTP/2 preface (full and partial), HTTP/1 request lines, opaque', () => {
  assert.equal(classify(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])), 'tls');
  assert.equal(classify(Buffer.from([0x16])), 'need_more');
  assert.equal(classify(Buffer.from([0x16, 0x01])), 'opaque');
  assert.equal(classify(H2_PREFACE), 'http2');
  assert.equal(classify(Buffer.concat([H2_PREFACE, Buffer.from([0, 0, 0, 4])])), 'http2');
  for (let i = 1; i < H2_PREFACE.length; i++) assert.equal(classify(H2_PREFACE.subarray(0, i)), 'need_more', `prefix ${i}`);
  // Diverges from the preface after "PRI ": an HTTP/1 method token + SP.
  assert.equal(classify(Buffer.from('PRI /x HTTP/1.1\r\n')), 'http1');
  assert.equal(classify(Buffer.from('GET / HTTP/1.1\r\n')), 'http1');
  assert.equal(classify(Buffer.from('M-SEARCH ')), 'http1');
  assert.equal(classify(Buffer.from('GE')), 'need_more');
  assert.equal(classify(Buffer.from('')), 'need_more');
  assert.equal(classify(Buffer.from(' GET')), 'opaque');
  assert.equal(classify(Buffer.from('\x00\x00\x01')), 'opaque');
  assert.equal(classify(Buffer.from('HELLO\r\n')), 'opaque');
  assert.equal(classify(Buffer.from('A'.repeat(40))), 'opaque');
});

async function withPair(t: import('node:test').TestContext): Promise<{ client: net.Socket; server: net.Socket }> {
  const srv = net.createServer({ allowHalfOpen: true });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const accepted = once(srv, 'connection');
  const client = net.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  const [server] = (await accepted) as [net.Socket];
  t.after(() => {
    client.destroy();
    server.destroy();
    srv.close();
  });
  return { client, server };
}

test('detectProtocol: bytes split across writes are joined and returned whole', async (t) => {
  const { client, server } = await withPair(t);
  const p = detectProtocol(server, { timeoutMs: 2000 });
  client.write(H2_PREFACE.subarray(0, 5));
  await new Promise((r) => setTimeout(r, 20));
  client.write(Buffer.concat([H2_PREFACE.subarray(5), Buffer.from('rest')]));
  const r = await p;
  assert.ok(r.ok);
  assert.equal(r.protocol, 'http2');
  assert.equal(r.reason, 'sniffed');
  assert.deepEqual(r.initial, Buffer.concat([H2_PREFACE, Buffer.from('rest')]));
  // The socket is handed over intact: a data listener receives later bytes.
  const got = once(server, 'data');
  client.write('more');
  assert.equal(String((await got)[0]), 'more');
});

test('detectProtocol: a silent client falls back to opaque after the timeout (server-first)', async (t) => {
  const { server } = await withPair(t);
  const start = performance.now();
  const r: DetectResult = await detectProtocol(server, { timeoutMs: 80 });
  assert.ok(r.ok);
  assert.equal(r.protocol, 'opaque');
  assert.equal(r.reason, 'timeout');
  assert.equal(r.initial.length, 0);
  assert.ok(performance.now() - start >= 70);
});

test('detectProtocol: a partial method token at the timeout counts as HTTP/1', async (t) => {
  const { client, server } = await withPair(t);
  const p = detectProtocol(server, { timeoutMs: 80 });
  client.write('GE');
  const r = await p;
  assert.ok(r.ok);
  assert.equal(r.protocol, 'http1');
  assert.equal(r.reason, 'timeout');
  assert.equal(String(r.initial), 'GE');
});

test('detectProtocol: FIN before a decision settles on what arrived; close reports not ok', async (t) => {
  const { client, server } = await withPair(t);
  const p = detectProtocol(server, { timeoutMs: 2000 });
  client.end('PRI');
  const r = await p;
  assert.ok(r.ok);
  assert.equal(r.protocol, 'http1');
  assert.equal(r.reason, 'eof');
  assert.equal(String(r.initial), 'PRI');

  const pair2 = await withPair(t);
  const p2 = detectProtocol(pair2.server, { timeoutMs: 2000 });
  pair2.client.resetAndDestroy();
  const r2 = await p2;
  assert.equal(r2.ok, false);
});

test('detectProtocol: the size bound stops reading', async (t) => {
  const { client, server } = await withPair(t);
  const p = detectProtocol(server, { timeoutMs: 2000, maxBytes: 4 });
  client.write('PRI * H');
  const r = await p;
  assert.ok(r.ok);
  assert.equal(r.reason, 'max_bytes');
  assert.equal(r.protocol, 'http1');
});

test('bytes that arrive while the event loop is stalled past the timeout are still classified', async (t) => {
  const { client, server } = await withPair(t);
  const p = detectProtocol(server, { timeoutMs: 30 });
  client.write('GET / HTTP/1.1\r\n');
  const end = Date.now() + 120;
  while (Date.now() < end) {
    // a stalled event loop (GC, a sync handshake, a busy neighbour)
  }
  const r = await p;
  assert.ok(r.ok);
  assert.deepEqual([r.protocol, r.reason], ['http1', 'sniffed']);
});
