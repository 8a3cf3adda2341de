// Explicit mode with a kept-alive connection: the app's HTTP_PROXY is the
// port guard, which relays to the sidecar. Without TCP_NODELAY on the
// guard's sockets, Nagle's algorithm holds the second small write of each
// answer until the client's delayed ACK (~40 ms on Linux), so every request
// after the first on a connection took ~44 ms. The bound below (p50 < 20 ms)
// is far above the ~2 ms a request takes and far below the stall: it checks
// that the stall is gone, not a speed goal (that is `npm run bench`'s row
// "explicit keep-alive").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../../src/runner/ports.ts';
import { APPS, apply, controlPlane, events, service, tempDir, trellisRun, waitFor, workloads } from './harness.ts';

test('explicit mode: 20 keep-alive GETs through HTTP_PROXY (port guard -> sidecar) have no Nagle/delayed-ACK stall', async (t) => {
  const cp = await controlPlane(t);
  const dir = tempDir(t);
  await apply(cp, service('reviews', 9080, 'http'));
  await apply(cp, service('productpage', 9080, 'http'));
  const reviewsPort = await freePort();
  const reviews = trellisRun(t, cp, ['--service', 'reviews', '--workload', 'reviews-ka', '--port', `${reviewsPort}:http`, '--', process.execPath, path.join(APPS, 'http-server.ts'), String(reviewsPort), 'reviews-v1']);
  await waitFor('reviews registered', async () => (await workloads(cp)).find((w) => w.name === 'reviews-ka' && w.ports[0]?.proxyPort !== undefined));
  await waitFor('reviews app started', () => (events(reviews.stderr()).some((e) => e.event === 'app_started') ? true : undefined));

  const out = path.join(dir, 'samples.json');
  const client = trellisRun(t, cp, ['--service', 'productpage', '--workload', 'productpage-ka', '--port', `${await freePort()}:http`, '--', process.execPath, path.join(APPS, 'http-sampler.ts'), 'http://reviews:9080/ka?chunked'], { OUT: out, COUNT: '21' });
  assert.equal((await client.exit).code, 0, client.stderr());
  const answers = JSON.parse(readFileSync(out, 'utf8')) as { status: number; ms: number; app?: string }[];
  assert.deepEqual(answers.map((a) => a.status), answers.map(() => 200), JSON.stringify(answers));
  // The first request opens the connection (and warms the route); the 20 after it reuse it.
  const ms = answers.slice(1).map((a) => a.ms).sort((a, b) => a - b);
  const p50 = ms[Math.floor(ms.length / 2)]!;
  t.diagnostic(`keep-alive through the port guard: p50 ${p50.toFixed(1)} ms, max ${ms.at(-1)!.toFixed(1)} ms`);
  assert.ok(p50 < 20, `p50 ${p50.toFixed(1)} ms over a kept-alive connection (the ~40 ms Nagle/delayed-ACK stall): ${ms.map((m) => m.toFixed(1)).join(' ')}`);
});
