// The JWKS cache: parsing, file sources, unknown-kid refetch throttle, and
// exponential backoff after failed fetches (a fake clock, a loopback server).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { JwksStore, parseJwks } from './jwks.ts';

const jwk = (kid: string) => ({ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }), kid });
const doc = (...kids: string[]) => JSON.stringify({ keys: kids.map(jwk) });

test('parseJwks keeps RSA and P-256 signing keys and reports a set with none', () => {
  const rsa = { ...generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' }), kid: 'r' };
  const r = parseJwks(JSON.stringify({ keys: [rsa, jwk('e'), { kty: 'oct', k: 'abc' }, { ...jwk('enc'), use: 'enc' }, { kty: 'EC', crv: 'P-256', x: 'bad' }] }));
  assert.ok(r.ok);
  assert.deepEqual(r.keys.map((k) => k.kid), ['r', 'e']);
  assert.deepEqual(parseJwks('{"keys": []}'), { ok: false, error: 'no usable RSA or P-256 signing keys' });
  assert.deepEqual(parseJwks('nope'), { ok: false, error: 'not JSON' });
});

test('a file source is read on first use and re-read when an unknown kid shows up', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'jwks-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'jwks.json');
  writeFileSync(file, doc('a'));
  const store = new JwksStore({ minRefreshIntervalMs: 0 });
  t.after(() => store.close());
  const src = store.source({ kind: 'file', path: file });
  assert.ok((await src.find('a')).ok);
  writeFileSync(file, doc('a', 'b'));
  assert.ok((await src.find('b')).ok);
  const miss = await src.find('zzz');
  assert.deepEqual(miss.ok ? 'found' : miss.code, 'JWT_UNKNOWN_KID');
  assert.equal(store.source({ kind: 'file', path: file }), src, 'one source per origin');
});

test('remote: unknown kids refetch at most once per interval; failures back off exponentially', async (t) => {
  let status = 500;
  let body = doc('a');
  let hits = 0;
  const server = http.createServer((_req, res) => {
    hits++;
    res.writeHead(status);
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  let now = 1_000_000;
  const store = new JwksStore({ now: () => now, minRefreshIntervalMs: 10_000, backoffBaseMs: 1000, backoffMaxMs: 4000 });
  t.after(() => store.close());
  const src = store.source({ kind: 'remote', uri, timeoutMs: 2000, cacheMs: 3_600_000 });
  // The prefetch fails (500); within the backoff nothing is fetched again.
  const first = await src.find('a');
  assert.equal(first.ok ? 'ok' : first.code, 'JWKS_UNAVAILABLE');
  assert.equal(hits, 1);
  now += 500;
  await src.find('a');
  assert.equal(hits, 1, 'still backing off (1 s)');
  now += 600;
  await src.find('a');
  assert.equal(hits, 2, 'retried after 1 s, failed again');
  now += 1500;
  await src.find('a');
  assert.equal(hits, 2, 'backing off 2 s now');
  status = 200;
  now += 600;
  assert.ok((await src.find('a')).ok);
  assert.equal(hits, 3);
  // Unknown kid: fetched again only once the throttle interval has passed.
  body = doc('a', 'b');
  const early = await src.find('b');
  assert.equal(early.ok ? 'ok' : early.code, 'JWT_UNKNOWN_KID');
  assert.equal(hits, 3);
  now += 10_000;
  assert.ok((await src.find('b')).ok);
  assert.equal(hits, 4);
  // Dropped by retain(): the store forgets it.
  store.retain(new Set());
  assert.notEqual(store.source({ kind: 'remote', uri, timeoutMs: 2000, cacheMs: 3_600_000 }), src);
});
