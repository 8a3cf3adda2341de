// Held-open plaintext connections for the MeshTLS mode-change tests: an
// HTTP/1.1 keep-alive connection written by hand (so nothing reconnects
// behind the test's back) and one GET on an h2c session, both bounded.
import http2 from 'node:http2';
import net from 'node:net';

/** A held-open HTTP/1.1 connection: `request()` writes one GET and resolves
 * with the status line of its answer, or with 'closed' when the proxy closed
 * the connection instead (bounded). */
export function heldConnection(port: number, host = '127.0.0.1'): Promise<{ request(path: string): Promise<string>; closed: Promise<void>; destroy(): void }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, host);
    let buf = '';
    let waiter: ((v: string) => void) | undefined;
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      // One response: a head with Content-Length and its body.
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number(/content-length: *(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
      if (buf.length < end + 4 + len) return;
      const status = buf.slice(0, buf.indexOf('\r\n'));
      buf = buf.slice(end + 4 + len);
      waiter?.(status);
      waiter = undefined;
    });
    sock.on('error', () => {});
    void closed.then(() => waiter?.('closed'));
    sock.once('connect', () => resolve({
      request(path) {
        return new Promise((r) => {
          if (sock.destroyed) return r('closed');
          const timer = setTimeout(() => r('timeout'), 5000);
          waiter = (v) => {
            clearTimeout(timer);
            r(v);
          };
          sock.write(`GET ${path} HTTP/1.1\r\nhost: b.shop\r\n\r\n`);
        });
      },
      closed,
      destroy: () => sock.destroy(),
    }));
    sock.once('error', reject);
  });
}

/** One GET on an h2c session: the status, or the error that ended the stream (bounded). */
export function h2Get(session: http2.ClientHttp2Session, path: string): Promise<string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), 5000);
    const done = (v: string): void => {
      clearTimeout(timer);
      resolve(v);
    };
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request({ ':path': path, ':authority': 'b.shop' });
    } catch (err) {
      done(`error: ${(err as Error).message}`);
      return;
    }
    req.on('response', (h) => {
      req.resume();
      req.on('end', () => done(String(h[':status'])));
    });
    req.on('error', (err) => done(`error: ${err.message}`));
    req.on('close', () => done(`closed (rst ${req.rstCode})`));
    req.end();
  });
}
