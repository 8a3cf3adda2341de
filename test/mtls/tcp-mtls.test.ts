// Opaque TCP over mTLS between sidecars: a server-first app (it speaks
// before the client) and an echo, both through a plaintext local port on A
// that originates mTLS to B's STRICT inbound TCP listener.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startCaAndIds, spiffe } from './sidecar-fixtures.ts';
import { startTcpInbound, startTcpOutbound } from './harness.ts';

async function tcpApp(t: import('node:test').TestContext): Promise<number> {
  const s = net.createServer((c) => {
    c.write('hello\n'); // server-first
    c.on('data', (d: Buffer) => c.write(`echo:${d.toString()}`));
    c.on('error', () => {});
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => s.close());
  return (s.address() as AddressInfo).port;
}

function readUntil(c: net.Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => reject(new Error(`timeout; got ${JSON.stringify(got)}`)), 5000);
    c.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes(text)) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

test('TCP over mTLS: server-first greeting and echo flow; the wrong SAN and plaintext are refused', async (t) => {
  const { a, b } = await startCaAndIds(t);
  const app = await tcpApp(t);
  const bPort = await startTcpInbound(t, b, app);
  const good = await startTcpOutbound(t, a, bPort, [spiffe('ratings')]);
  const c = net.connect(good, '127.0.0.1');
  t.after(() => c.destroy());
  const hello = readUntil(c, 'hello\n');
  await hello;
  const echoed = readUntil(c, 'echo:ping');
  c.write('ping');
  await echoed;

  const wrong = await startTcpOutbound(t, a, bPort, [spiffe('payments')]);
  const w = net.connect(wrong, '127.0.0.1');
  let wrongData = '';
  w.on('data', (d: Buffer) => (wrongData += d.toString()));
  w.on('error', () => {});
  await once(w, 'close');
  assert.equal(wrongData, '', 'no byte from the app when the SAN does not match');

  const plain = net.connect(bPort, '127.0.0.1');
  let plainData = '';
  plain.on('data', (d: Buffer) => (plainData += d.toString()));
  plain.on('error', () => {});
  plain.write('ping');
  await once(plain, 'close');
  assert.equal(plainData, '', 'STRICT: plaintext closed');
});
