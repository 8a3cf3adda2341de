// Shared pieces of the gateway tests: a test certificate and an "external"
// HTTPS server, a call made as an app whose HTTP_PROXY is a sidecar's
// outbound port, and bounded polling for what reaches a proxy through the
// control plane (config pushes, registration).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import path from 'node:path';

/** A self-signed P-256 certificate for `host` (a test fixture made by openssl in `dir`/pki). */
export function testCertificate(dir: string, host: string): { keyFile: string; certFile: string } {
  mkdirSync(path.join(dir, 'pki'), { recursive: true });
  const keyFile = path.join(dir, 'pki', `${host}.key`);
  const certFile = path.join(dir, 'pki', `${host}.crt`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-keyout', keyFile, '-out', certFile, '-subj', `/CN=${host}`, '-addext', `subjectAltName=DNS:${host}`,
  ], { stdio: 'ignore' });
  return { keyFile, certFile };
}

/** The HTTPS server standing for an external API on 127.0.0.1 (a free
 * port), with `testCertificate`'s files: it records the SNI of each request
 * in `seenSni` and answers with the Host and path it saw as JSON. */
export async function startExternalApi(cert: { keyFile: string; certFile: string }, seenSni: string[]): Promise<https.Server> {
  const server = https.createServer({ key: readFileSync(cert.keyFile), cert: readFileSync(cert.certFile) }, (req, res) => {
    seenSni.push(String((req.socket as TLSSocket).servername));
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ external: 'api', host: req.headers.host, path: req.url }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

export interface ProxiedAnswer {
  status: number;
  body: string;
  /** `x-trellis-proxy-error`, when the proxy answered itself. */
  error?: string;
}

/** GET `url` through the proxy listening on 127.0.0.1:`port` (absolute-form, as an HTTP_PROXY client sends). */
export function viaProxy(port: number, url: string): Promise<ProxiedAnswer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: u.href, headers: { host: u.host }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const e = res.headers['x-trellis-proxy-error'];
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), ...(typeof e === 'string' ? { error: e } : {}) });
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Retries `fn` until `ok` (15 s, every 100 ms); the error names `what` and the last answer. */
export async function eventually<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 15_000;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (ok(v)) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not reached in time (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}
