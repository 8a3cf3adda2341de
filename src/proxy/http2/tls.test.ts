// h2 over TLS on both sides: a TLSSocket (ALPN h2) handed to serveHttp2, and
// the pool's `tls` option towards a TLS upstream. The fixture certificate is
// a self-signed P-256 certificate for localhost / 127.0.0.1 (test use only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { ConnectionContext } from '../connection.ts';
import type { RequestContext } from '../http/exchange.ts';
import { DEFAULT_POOL_OPTIONS } from '../upstream/types.ts';
import { createHttp2Pool } from './pool.ts';
import { serveHttp2 } from './server.ts';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const key = readFileSync(path.join(dir, 'localhost-key.pem'));
const cert = readFileSync(path.join(dir, 'localhost-cert.pem'));

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

async function tlsBothWays(t: { after(fn: () => unknown): void }, readFirst: boolean): Promise<void> {
  let upstreamHeaders: http2.IncomingHttpHeaders = {};
  const upstream = http2.createSecureServer({ key, cert });
  upstream.on('stream', (stream, headers) => {
    upstreamHeaders = headers;
    stream.respond({ ':status': 200, 'x-alpn': String((stream.session?.socket as tls.TLSSocket).alpnProtocol) });
    stream.end('secure');
  });
  const upSessions = new Set<http2.ServerHttp2Session>();
  upstream.on('session', (s) => upSessions.add(s));
  const upPort = await listen(upstream);
  t.after(() => {
    for (const s of upSessions) s.destroy();
    upstream.close();
  });

  const pool = createHttp2Pool({ ...DEFAULT_POOL_OPTIONS, host: '127.0.0.1', port: upPort, tls: { ca: cert } });
  t.after(() => pool.destroy());
  let ctxSeen: RequestContext | null = null;
  const front = tls.createServer({ key, cert, ALPNProtocols: ['h2'] }, (socket) => {
    const conn: ConnectionContext = {
      listener: 'tls-test',
      direction: 'inbound',
      downstream: { remoteAddress: '127.0.0.1', remotePort: 0, localAddress: '127.0.0.1', localPort: 0, tls: true },
      dispatch: (req, h) => {
        ctxSeen = req.ctx;
        pool.dispatch(req, h);
      },
      track: () => () => {},
    };
    if (!readFirst) {
      serveHttp2(socket, Buffer.alloc(0), conn);
      return;
    }
    // As a detector that sniffed the decrypted preface would.
    socket.once('readable', () => serveHttp2(socket, (socket.read() as Buffer | null) ?? Buffer.alloc(0), conn));
  });
  const sockets = new Set<net.Socket>();
  front.on('secureConnection', (s) => sockets.add(s));
  const frontPort = await listen(front);
  t.after(() => {
    for (const s of sockets) s.destroy();
    front.close();
  });

  const client = http2.connect(`https://localhost:${frontPort}`, { ca: cert });
  client.on('error', () => {});
  t.after(() => client.destroy());
  const req = client.request({ ':path': '/s' });
  req.end();
  const [headers] = await new Promise<[http2.IncomingHttpHeaders]>((r) => req.once('response', (h) => r([h])));
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c: string) => (body += c));
  await new Promise((r) => req.once('end', r));
  assert.equal(headers[':status'], 200);
  assert.equal(headers['x-alpn'], 'h2');
  assert.equal(body, 'secure');
  assert.equal(upstreamHeaders[':scheme'], 'https');
  assert.equal(upstreamHeaders[':authority'], `localhost:${frontPort}`);
  assert.equal((ctxSeen as RequestContext | null)?.downstream.tls, true);
}

test('h2 over TLS: TLS downstream socket -> serveHttp2 -> TLS pool -> h2 upstream', (t) => tlsBothWays(t, false));

test('h2 over TLS with the decrypted preface already read by detection', (t) => tlsBothWays(t, true));

test('a TLS upstream that does not negotiate h2 is a connect failure', async (t) => {
  const upstream = tls.createServer({ key, cert, ALPNProtocols: ['http/1.1'] }, (s) => s.on('error', () => {}));
  upstream.on('tlsClientError', () => {});
  const upPort = await listen(upstream);
  t.after(() => upstream.close());
  const pool = createHttp2Pool({ ...DEFAULT_POOL_OPTIONS, host: '127.0.0.1', port: upPort, connectTimeoutMs: 2000, tls: { ca: cert } });
  t.after(() => pool.destroy());
  const err = await new Promise<string>((resolve) => {
    pool.dispatch({
      head: { method: 'GET', scheme: 'https', authority: 'x', path: '/', headers: [], httpVersion: '2' },
      body: null,
      ctx: {
        listener: 't', direction: 'outbound', downstream: { remoteAddress: '', remotePort: 0, localAddress: '', localPort: 0 },
        startTime: 0, deadline: null, responseFlags: [], grpc: false, attempts: 0, attrs: new Map(),
      },
    }, {
      onStart() {},
      onHeaders: () => true,
      onData: () => true,
      onEnd: () => resolve('ended'),
      onError: (e) => resolve(e.code),
    });
  });
  assert.equal(err, 'UPSTREAM_CONNECT_FAILED');
});
