// Mirroring: the shadow cluster gets a copy (host suffixed "-shadow", body
// included) while the caller's latency stays that of the primary, even
// though the mirror takes 1 s per request (long enough that a leak of the
// mirror's latency cannot hide in a loaded machine's noise).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { backend, call, cluster, load, percentile, proxyWith } from './kit.ts';

test('the mirror receives traffic while the primary latency is unchanged', async (t) => {
  const primary = await backend(t, (req, res) => {
    req.resume();
    req.on('end', () => res.end('primary'));
  });
  const seen: { host: string; body: string }[] = [];
  const mirrored = new (await import('node:events')).EventEmitter();
  const shadow = await backend(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ host: String(req.headers.host), body: Buffer.concat(chunks).toString() });
      mirrored.emit('hit');
      const timer = setTimeout(() => res.end('shadow'), 1000);
      res.on('close', () => clearTimeout(timer));
    });
  });
  const { port, proxy } = await proxyWith(t, {
    clusters: [cluster('primary', [primary.port]), cluster('shadow', [shadow.port])],
    routes: [{ match: { prefix: '/' }, route: { cluster: 'primary', requestMirrorPolicies: [{ cluster: 'shadow', runtimeFraction: { defaultValue: { numerator: 100 } } }] } }],
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  t.after(() => agent.destroy());
  const total = 60;
  const replies = await load(total, 4, (i) => call(port, { method: 'POST', path: `/m${i}`, body: `body-${i}`, headers: { host: 'api.local:8080' } }, agent));
  assert.ok(replies.every((r) => r.status === 200 && r.body === 'primary'));
  const p50 = percentile(replies.map((r) => r.ms), 50);
  const p99 = percentile(replies.map((r) => r.ms), 99);
  assert.ok(p50 < 200 && p99 < 1000, `caller p50 ${p50.toFixed(1)} / p99 ${p99.toFixed(1)} ms stay below the mirror's 1000 ms`);
  const until = performance.now() + 5000;
  while (seen.length < total && performance.now() < until) await Promise.race([once(mirrored, 'hit'), new Promise((r) => setTimeout(r, 200))]);
  assert.equal(seen.length, total, 'every request was mirrored');
  assert.ok(seen.every((s) => s.host === 'api.local-shadow:8080'), `shadow host: ${seen[0]?.host}`);
  assert.ok(seen.some((s) => s.body === 'body-7'), 'bodies are mirrored');
  assert.equal(proxy.resilience.stats.mirrors.labels('shadow', 'sent').get(), total);
});
