// `trellis run` names its control plane as every command does (--server,
// $TRELLIS_SERVER, --context) and asks the API where xDS is: a control
// plane on non-default API and xDS ports needs no xDS flag, a flag wins over
// the environment with no fallback, and an unreachable API is an error
// naming the address and where it came from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { freePort } from '../../src/runner/ports.ts';
import { controlPlane, events, tempDir, trellisRunWith } from './harness.ts';

const EXIT_OK = [process.execPath, '-e', 'process.exit(0)'];

test('trellis run --server: xDS discovered from the API on non-default ports; the flag wins over TRELLIS_SERVER', async (t) => {
  const cp = await controlPlane(t);
  const apiPort = Number(new URL(cp.apiUrl).port);
  const xdsPort = Number(cp.xdsAddress.split(':').pop());
  assert.notEqual(apiPort, 15080);
  assert.notEqual(xdsPort, 15010);
  const closed = await freePort();
  const wrong = `http://127.0.0.1:${closed}`;
  // No context file either: only what the test names.
  const base = { TRELLIS_CONFIG: path.join(tempDir(t), 'config'), TRELLIS_XDS: undefined, TRELLIS_CONTROL_PLANE: undefined, TRELLIS_CONTEXT: undefined, TRELLIS_TOKEN: undefined };

  const [plain, flagWins, deprecated] = [
    trellisRunWith(t, ['--server', `http://127.0.0.1:${apiPort}`, '--service', 'a', '--', ...EXIT_OK], { ...base, TRELLIS_SERVER: undefined }),
    trellisRunWith(t, ['--server', cp.apiUrl, '--service', 'b', '--', ...EXIT_OK], { ...base, TRELLIS_SERVER: wrong }),
    trellisRunWith(t, ['--control-plane', cp.apiUrl, '--service', 'c', '--', ...EXIT_OK], { ...base, TRELLIS_SERVER: undefined }),
  ];
  for (const r of [plain, flagWins, deprecated]) {
    assert.equal((await r.exit).code, 0, r.stderr());
    const chosen = events(r.stderr()).find((e) => e.event === 'control_plane');
    assert.deepEqual({ api: chosen?.api, xds: chosen?.xds, xdsTls: chosen?.xdsTls }, { api: cp.apiUrl, xds: `127.0.0.1:${xdsPort}`, xdsTls: false }, r.stderr());
    assert.ok(events(r.stderr()).some((e) => e.event === 'sidecar_ready'), r.stderr());
    assert.ok(!r.stderr().includes(String(closed)), `the wrong TRELLIS_SERVER is never tried:\n${r.stderr()}`);
  }
  assert.match(deprecated.stderr(), /^trellis run: --control-plane is deprecated; use --server/m);
  assert.doesNotMatch(plain.stderr(), /deprecated/);

  // A wrong flag with a right TRELLIS_SERVER: the flag, and no fallback.
  const noFallback = trellisRunWith(t, ['--server', wrong, '--service', 'd', '--', ...EXIT_OK], { ...base, TRELLIS_SERVER: cp.apiUrl });
  assert.equal((await noFallback.exit).code, 1, noFallback.stderr());
  assert.match(noFallback.stderr(), new RegExp(`cannot reach the control plane API at http://127\\.0\\.0\\.1:${closed} \\(from --server\\): ECONNREFUSED`));
  assert.ok(!events(noFallback.stderr()).some((e) => e.event === 'registered' || e.event === 'sidecar_started'), noFallback.stderr());
  // Only the environment: the message says so.
  const fromEnv = trellisRunWith(t, ['--service', 'e', '--', ...EXIT_OK], { ...base, TRELLIS_SERVER: wrong });
  assert.equal((await fromEnv.exit).code, 1, fromEnv.stderr());
  assert.match(fromEnv.stderr(), /\(from \$TRELLIS_SERVER\)/);
});
