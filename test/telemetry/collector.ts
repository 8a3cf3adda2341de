// A fake OpenTelemetry collector: OTLP/HTTP protobuf trace exports on
// /v1/traces, decoded (otlp-decode.ts) into `spans`.
import type { TestContext } from 'node:test';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { decodeTraceExport, type DecodedSpan } from './otlp-decode.ts';

export async function collector(t: TestContext): Promise<{ url: string; spans: DecodedSpan[]; contentTypes: Set<string> }> {
  const spans: DecodedSpan[] = [];
  const contentTypes = new Set<string>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      contentTypes.add(String(req.headers['content-type']));
      if (req.url === '/v1/traces') spans.push(...decodeTraceExport(Buffer.concat(chunks)));
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, spans, contentTypes };
}
