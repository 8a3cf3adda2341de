// Frame-level tests: a message that is all there when it is sent ends on its
// last DATA frame (END_STREAM), with no empty DATA frame written after it.
// That extra frame used to follow every response and every request body
// (node:http2's `waitForTrailers` with no trailers): one more TLS record and
// syscall per message on each side, and on a socket without TCP_NODELAY a
// small trailing segment held back until the peer's delayed ACK (~40 ms).
// The peers here are raw sockets reading frames, so what is on the wire is
// what is asserted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { startProxy } from './fixtures/proxy-harness.ts';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const DATA = 0;
const HEADERS = 1;
const SETTINGS = 4;
const END_STREAM = 1;
const END_HEADERS = 4;
const ACK = 1;

interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** Calls `onFrame` for every frame read from `socket` (after `skip` bytes of preface). */
function readFrames(socket: net.Socket, onFrame: (f: Frame) => void, skip = 0): void {
  let buf = Buffer.alloc(0);
  let toSkip = skip;
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    if (toSkip > 0) {
      const n = Math.min(toSkip, buf.length);
      buf = buf.subarray(n);
      toSkip -= n;
    }
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      onFrame({ type: buf[3]!, flags: buf[4]!, stream: buf.readUInt32BE(5), payload: buf.subarray(9, 9 + len) });
      buf = buf.subarray(9 + len);
    }
  });
}

/** Frames of one stream up to and including the one carrying END_STREAM. */
function describe(frames: Frame[]): string[] {
  return frames.map((f) => `${f.type === DATA ? 'DATA' : f.type === HEADERS ? 'HEADERS' : `type${f.type}`}(${f.type === DATA ? JSON.stringify(f.payload.toString()) : ''})${f.flags & END_STREAM ? ' END_STREAM' : ''}`);
}

test('a small response without trailers ends on its DATA frame: no empty DATA frame follows', async (t) => {
  const upstream = http2.createServer();
  upstream.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200, 'content-type': 'text/plain' });
    stream.end('hello');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.after(() => upstream.close());
  const proxy = await startProxy({ host: '127.0.0.1', port: (upstream.address() as net.AddressInfo).port });
  t.after(() => proxy.close());

  const client = net.connect({ host: '127.0.0.1', port: proxy.port });
  t.after(() => client.destroy());
  const frames: Frame[] = [];
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no END_STREAM within 5 s; frames: ${describe(frames).join(', ')}`)), 5000);
    readFrames(client, (f) => {
      if (f.type === SETTINGS && (f.flags & ACK) === 0) client.write(frame(SETTINGS, ACK, 0));
      if (f.stream !== 1) return;
      frames.push(f);
      if (f.flags & END_STREAM) {
        clearTimeout(timer);
        // Anything written right after the end would show up within a few ms.
        setTimeout(resolve, 50);
      }
    });
  });
  // HPACK: :method GET (2), :scheme http (6), :path / (4), :authority literal.
  const block = Buffer.concat([Buffer.from([0x82, 0x86, 0x84, 0x41, 9]), Buffer.from('localhost')]);
  client.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0), frame(HEADERS, END_STREAM | END_HEADERS, 1, block)]));
  await done;
  assert.deepEqual(describe(frames), ['HEADERS()', 'DATA("hello") END_STREAM']);
});

test('a request body that is all there goes upstream with END_STREAM on its DATA frame', async (t) => {
  const frames: Frame[] = [];
  let gotEnd: () => void = () => {};
  const ended = new Promise<void>((r) => (gotEnd = r));
  const sockets = new Set<net.Socket>();
  const upstream = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.write(frame(SETTINGS, 0, 0));
    readFrames(s, (f) => {
      if (f.type === SETTINGS && (f.flags & ACK) === 0) s.write(frame(SETTINGS, ACK, 0));
      if (f.stream === 0) return;
      frames.push(f);
      if (f.flags & END_STREAM) {
        // :status 200 (static index 8), headers-only answer.
        s.write(frame(HEADERS, END_STREAM | END_HEADERS, f.stream, Buffer.from([0x88])));
        setTimeout(gotEnd, 50);
      }
    }, PREFACE.length);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    upstream.close();
  });
  const proxy = await startProxy({ host: '127.0.0.1', port: (upstream.address() as net.AddressInfo).port });
  t.after(() => proxy.close());
  const client = http2.connect(`http://127.0.0.1:${proxy.port}`);
  client.on('error', () => {});
  t.after(() => client.destroy());

  const req = client.request({ ':method': 'POST', ':path': '/echo.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
  req.end(Buffer.from([0, 0, 0, 0, 3, 0x61, 0x62, 0x63]));
  const status = await new Promise<number>((resolve, reject) => {
    req.on('response', (h) => resolve(Number(h[':status'])));
    req.on('error', reject);
  });
  assert.equal(status, 200);
  await ended;
  assert.deepEqual(describe(frames), ['HEADERS()', `DATA(${JSON.stringify('\u0000\u0000\u0000\u0000\u0003abc')}) END_STREAM`]);
});
