import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferedBody, mirrorLayer, type MirrorResult } from './mirror.ts';
import { fakeRequest, recorder } from './layers-test-kit.ts';
import type { BodySink, BodySource, Dispatch, ProxyRequest, ResponseHandler } from '../http/exchange.ts';

function readAll(body: BodySource | null): Promise<string> {
  return new Promise((resolve, reject) => {
    if (!body) return resolve('');
    const chunks: Buffer[] = [];
    const sink: BodySink = { onData: (c) => (chunks.push(c), true), onEnd: () => resolve(Buffer.concat(chunks).toString()), onError: reject };
    body.start(sink);
  });
}

function setup(opts: { bodyLimit?: number; maxInFlight?: number; fraction?: number; random?: () => number } = {}) {
  const mirrored: ProxyRequest[] = [];
  const held: ResponseHandler[] = [];
  const results: MirrorResult[] = [];
  const shadow: Dispatch = (req, h) => {
    mirrored.push(req);
    held.push(h);
    h.onStart({ resume() {}, abort: (e) => h.onError(e) });
  };
  const primary: Dispatch = (req, h) => {
    void readAll(req.body).then(() => {
      h.onStart({ resume() {}, abort() {} });
      h.onHeaders({ status: 200, headers: [] });
      h.onEnd(null);
    });
  };
  const d = mirrorLayer(() => [{ cluster: 'shadow', fraction: opts.fraction ?? 1 }], {
    cluster: (n) => (n === 'shadow' ? shadow : undefined),
    random: opts.random ?? (() => 0.5),
    now: () => 0,
    ...(opts.bodyLimit !== undefined ? { bodyLimit: opts.bodyLimit } : {}),
    ...(opts.maxInFlight !== undefined ? { maxInFlight: opts.maxInFlight } : {}),
    onMirror: (_c, r) => results.push(r),
  })(primary);
  return { d, mirrored, held, results };
}

test('mirror: a copy with the whole body goes out once the body has passed; the caller is answered by the primary', async () => {
  const { d, mirrored, held, results } = setup();
  const req = fakeRequest();
  req.head.method = 'POST';
  req.body = new BufferedBody(Buffer.from('hello'));
  const rec = recorder();
  d(req, rec.handler);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(rec.events, ['start', 'headers 200', 'end']);
  assert.equal(mirrored.length, 1);
  assert.equal(mirrored[0]!.head.authority, 'svc-shadow');
  assert.equal(await readAll(mirrored[0]!.body), 'hello');
  assert.notEqual(mirrored[0]!.ctx, req.ctx, 'the mirror has its own context');
  held[0]!.onHeaders({ status: 503, headers: [] });
  held[0]!.onEnd(null);
  assert.deepEqual(results, ['sent', 'failed']);
});

test('mirror: bodies over the bound, the in-flight cap and the fraction drop mirrors', async () => {
  const big = setup({ bodyLimit: 3 });
  const req = fakeRequest();
  req.head.method = 'PUT';
  req.body = new BufferedBody(Buffer.from('too long'));
  big.d(req, recorder().handler);
  await new Promise((r) => setImmediate(r));
  assert.equal(big.mirrored.length, 0);
  assert.deepEqual(big.results, ['dropped']);

  const capped = setup({ maxInFlight: 2 });
  for (let i = 0; i < 3; i++) capped.d(fakeRequest(), recorder().handler);
  assert.equal(capped.mirrored.length, 2);
  assert.deepEqual(capped.results, ['sent', 'sent', 'dropped']);
  capped.held[0]!.onHeaders({ status: 200, headers: [] });
  capped.held[0]!.onEnd(null);
  capped.d(fakeRequest(), recorder().handler);
  assert.equal(capped.mirrored.length, 3, 'room again once one finished');

  const some = setup({ fraction: 0.25, random: () => 0.3 });
  some.d(fakeRequest(), recorder().handler);
  assert.equal(some.mirrored.length, 0);
});
