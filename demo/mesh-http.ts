// Small helpers the demo's JavaScript services share: a JSON HTTP server and
// an HTTP client that sends calls through the sidecar named by HTTP_PROXY
// (absolute-form request target, routing by Host), as any proxy-aware
// client would. Without HTTP_PROXY it dials the host directly.
import http from 'node:http';

export interface Reply {
  status: number;
  body: unknown;
  headers: http.IncomingHttpHeaders;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export function meshGet(url: string, headers: Record<string, string> = {}, timeoutMs = 3000): Promise<Reply> {
  const target = new URL(url);
  const proxy = process.env.HTTP_PROXY ? new URL(process.env.HTTP_PROXY) : undefined;
  return new Promise((resolve) => {
    const req = http.request(
      {
        agent,
        host: proxy ? proxy.hostname : target.hostname,
        port: proxy ? Number(proxy.port) : Number(target.port || 80),
        path: proxy ? target.href : `${target.pathname}${target.search}`,
        method: 'GET',
        headers: { ...headers, host: target.host },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
        });
        res.on('error', (err) => resolve({ status: 0, body: err.message, headers: {} }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ status: 0, body: err.message, headers: {} }));
    req.end();
  });
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

/** The app port: argv[2], else the first of TRELLIS_PORTS. */
export function appPort(): number {
  const p = Number(process.argv[2] ?? (process.env.TRELLIS_PORTS ?? '').split(',')[0]);
  if (!Number.isInteger(p) || p <= 0) {
    console.error('usage: <service> PORT');
    process.exit(2);
  }
  return p;
}

/** Listen on loopback and stop cleanly on SIGTERM/SIGINT. */
export function serve(server: { listen(port: number, host: string, cb: () => void): unknown; close(cb?: () => void): unknown }, name: string, port: number): void {
  server.listen(port, '127.0.0.1', () => console.log(`${name} listening on 127.0.0.1:${port}`));
  const stop = (): void => {
    server.close(() => process.exit(0));
    (server as { closeAllConnections?: () => void }).closeAllConnections?.();
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

/** Headers a service passes on to the calls it makes (steering, tracing). */
export function propagated(h: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['x-user-group', 'x-request-id', 'traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-sampled']) {
    const v = h[k];
    if (typeof v === 'string') out[k] = v;
  }
  return out;
}
