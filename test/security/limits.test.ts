// Limits (issue 13): header count (HTTP/1 and HTTP/2), Expect other than
// 100-continue, a YAML alias bomb to the API, and per-kind quotas in the
// control plane. Real proxy, real app, real API server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startApp, startInboundProxy } from '../authz/kit.ts';
import { get, rawRequest } from './raw.ts';
import { parseRequestHead } from '../../src/proxy/http1/head-parser.ts';
import { openMemoryStore } from '../../src/control-plane/store/memory.ts';
import { startApi } from '../../src/control-plane/api/server.ts';

const headers = (n: number): string => Array.from({ length: n }, (_, i) => `x-h${i}: ${i}\r\n`).join('');

/** An app that counts the requests it sees. */
async function countingApp(t: Parameters<typeof startApp>[0]): Promise<{ port: number; seen: () => number }> {
  let seen = 0;
  const s = http.createServer((req, res) => {
    seen++;
    req.resume();
    res.end(JSON.stringify({ headers: Object.keys(req.headers).length }));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => {
    s.closeAllConnections();
    s.close();
  });
  return { port: (s.address() as AddressInfo).port, seen: () => seen };
}

test('HTTP/1: more than 100 header fields is 431 and nothing reaches the app; 100 pass', async (t) => {
  const app = await countingApp(t);
  const { port } = await startInboundProxy(t, app.port, []);
  // 5,000 short fields fit in the 64 KiB head limit: the count is what stops them.
  const many = await rawRequest(port, get('/', Array.from({ length: 5000 }, (_, i) => `h${i}:1\r\n`).join('')));
  assert.equal(many.status, 431, many.head);
  assert.match(many.body, /more than 100 header fields/);
  assert.equal(app.seen(), 0);
  // host and connection count too: 98 more make 100.
  const ok = await rawRequest(port, get('/', headers(98)));
  assert.equal(ok.status, 200, ok.head);
  assert.equal((await rawRequest(port, get('/', headers(99)))).status, 431);
  assert.equal(app.seen(), 1);
});

test('the limit follows commonHttpProtocolOptions.maxHeadersCount, for HTTP/1 and HTTP/2', async (t) => {
  const app = await countingApp(t);
  const { port } = await startInboundProxy(t, app.port, [], { hcm: { commonHttpProtocolOptions: { maxHeadersCount: 10 } } });
  assert.equal((await rawRequest(port, get('/', headers(8)))).status, 200);
  assert.equal((await rawRequest(port, get('/', headers(9)))).status, 431);
  const client = http2.connect(`http://127.0.0.1:${port}`);
  t.after(() => client.close());
  const ask = (n: number) => new Promise<number>((resolve, reject) => {
    const h: Record<string, string> = { ':path': '/', ':authority': 'app.shop' };
    for (let i = 0; i < n; i++) h[`x-h${i}`] = String(i);
    const s = client.request(h);
    s.on('response', (r) => resolve(Number(r[':status'])));
    s.on('error', reject);
    s.resume();
    s.end();
  });
  assert.equal(await ask(10), 200);
  assert.equal(await ask(11), 431);
});

test('HTTP/2: the default limit is 100 header fields', async (t) => {
  const app = await countingApp(t);
  const { port } = await startInboundProxy(t, app.port, []);
  const client = http2.connect(`http://127.0.0.1:${port}`);
  t.after(() => client.close());
  const ask = (n: number) => new Promise<number>((resolve, reject) => {
    const h: Record<string, string> = { ':path': '/', ':authority': 'app.shop' };
    for (let i = 0; i < n; i++) h[`x-h${i}`] = String(i);
    const s = client.request(h);
    s.on('response', (r) => resolve(Number(r[':status'])));
    s.on('error', reject);
    s.resume();
    s.end();
  });
  assert.equal(await ask(100), 200);
  assert.equal(await ask(101), 431);
});

test('Expect other than 100-continue is 417 (HTTP/1 and HTTP/2); 100-continue still works', async (t) => {
  const app = await countingApp(t);
  const { port } = await startInboundProxy(t, app.port, []);
  const r = await rawRequest(port, get('/', 'expect: something-else\r\n'));
  assert.equal(r.status, 417, r.head);
  assert.equal(app.seen(), 0);
  const cont = await rawRequest(port, 'POST / HTTP/1.1\r\nhost: a\r\nconnection: close\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\nhi');
  assert.equal(cont.status, 100, cont.head); // the interim answer first
  assert.match(cont.body, /HTTP\/1\.1 200/);
  const client = http2.connect(`http://127.0.0.1:${port}`);
  t.after(() => client.close());
  const status = await new Promise<number>((resolve, reject) => {
    const s = client.request({ ':path': '/', ':authority': 'a', expect: 'x-custom' });
    s.on('response', (h) => resolve(Number(h[':status'])));
    s.on('error', reject);
    s.resume();
    s.end();
  });
  assert.equal(status, 417);
});

test('head parser: header count and Expect', () => {
  const p = (s: string) => parseRequestHead(Buffer.from(s, 'latin1'), 0, 65536, 3);
  assert.equal(p('GET / HTTP/1.1\r\nhost: a\r\nb: 1\r\nc: 2\r\n\r\n').kind, 'request');
  assert.deepEqual(p('GET / HTTP/1.1\r\nhost: a\r\nb: 1\r\nc: 2\r\nd: 3\r\n\r\n'), { kind: 'error', code: 'HEADERS_TOO_LARGE', reason: 'more than 3 header fields' });
  assert.equal((p('GET / HTTP/1.1\r\nhost: a\r\nexpect: 200-ok\r\n\r\n') as { code: string }).code, 'EXPECTATION_FAILED');
  assert.equal((p('GET / HTTP/1.1\r\nhost: a\r\nExpect: 100-Continue\r\n\r\n') as { expectContinue: boolean }).expectContinue, true);
});

async function api(t: Parameters<typeof startApp>[0], quota?: { maxObjects: number; maxBytes: number }) {
  const store = openMemoryStore();
  const started = await startApi({ store, port: 0, ...(quota ? { quota } : {}) });
  t.after(async () => {
    await started.close();
    await store.close();
  });
  return async (body: string | object, type = 'application/json') => {
    const res = await fetch(`${started.url}/api/v1/apply`, { method: 'POST', headers: { 'content-type': type }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
  };
}

test('a YAML alias bomb is a 400 naming the problem, not a 500', async (t) => {
  const apply = await api(t);
  const lines = ['a: &a [x,x,x,x,x,x,x,x,x,x]'];
  for (let i = 1; i < 9; i++) lines.push(`${'abcdefghij'[i]}: &${'abcdefghij'[i]} [${Array(10).fill(`*${'abcdefghij'[i - 1]}`).join(',')}]`);
  const t0 = performance.now();
  const r = await apply(lines.join('\n') + '\n', 'application/yaml');
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.equal(r.body.error?.code, 'bad_request');
  assert.match(r.body.error!.message, /invalid YAML: .*alias/i);
  assert.ok(performance.now() - t0 < 2000);
});

test('per-kind quotas: objects and bytes, a 403 naming the kind and the limit; updates within the limit pass', async (t) => {
  const svc = (name: string, extra: Record<string, string> = {}) => ({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Service', metadata: { name, annotations: extra }, spec: { selector: { app: name }, ports: [{ port: 80 }] } });
  const apply = await api(t, { maxObjects: 2, maxBytes: 4096 });
  assert.equal((await apply(svc('a'))).status, 200);
  assert.equal((await apply(svc('b'))).status, 200);
  const third = await apply(svc('c'));
  assert.equal(third.status, 403, JSON.stringify(third.body));
  assert.equal(third.body.error?.code, 'quota_exceeded');
  assert.match(third.body.error!.message, /Service default\/c: quota exceeded for kind Service: at most 2 objects/);
  // Another kind has its own quota; updating an existing object is fine.
  assert.equal((await apply({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Telemetry', metadata: { name: 't', namespace: 'trellis-system' }, spec: {} })).status, 200);
  assert.equal((await apply(svc('a', { note: 'x' }))).status, 200);
  const big = await apply(svc('a', { note: 'x'.repeat(5000) }));
  assert.equal(big.status, 403);
  assert.match(big.body.error!.message, /at most 4096 bytes of Service objects/);
});
