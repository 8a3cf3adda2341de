// Raw HTTP/1.1 over a socket: for requests Node's client would not send as
// written (odd paths, repeated or missing headers, malformed bytes).
import net from 'node:net';

export interface RawAnswer {
  status: number;
  head: string;
  body: string;
}

/** Send `bytes` and read one response (the server is asked to close). */
export function rawRequest(port: number, bytes: string | Buffer, timeoutMs = 5000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => s.destroy(new Error('raw request timed out')), timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const head = end < 0 ? text : text.slice(0, end);
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0), head, body: end < 0 ? '' : text.slice(end + 4) });
    });
    s.write(bytes);
  });
}

export const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nhost: app.shop\r\nconnection: close\r\n${extra}\r\n`;
