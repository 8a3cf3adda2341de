// The app never sees a control-plane credential: `trellis run` hands its
// sidecar the join token (the sidecar inherits the runner's environment) and
// starts the app without it, nor any other TRELLIS_* secret, in explicit and
// transparent mode. The app here writes its whole environment out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../../src/runner/ports.ts';
import { netnsName, transparentUnsupported } from '../../src/runner/transparent.ts';
import { APPS, apply, controlPlane, joinToken, service, tempDir, trellisRun, workloads } from './harness.ts';
import type { TestContext } from 'node:test';

const why = await transparentUnsupported();

async function appEnv(t: TestContext, transparent: boolean): Promise<Record<string, string>> {
  const cp = await controlPlane(t);
  assert.ok(cp.identity, 'the control plane runs its CA');
  const dir = tempDir(t);
  await apply(cp, service('reviews', 9080, 'http'));
  const workload = transparent ? 'reviews-env-t' : 'reviews-env';
  if (transparent) {
    t.after(() => {
      if (existsSync(`/run/netns/${netnsName(workload)}`)) execFileSync('ip', ['netns', 'del', netnsName(workload)]);
    });
  }
  const token = await joinToken(cp, 'reviews', workload);
  const tokenFile = path.join(dir, 'token');
  writeFileSync(tokenFile, token, { mode: 0o600 });
  const out = path.join(dir, 'env.json');
  const port = transparent ? 9080 : await freePort();
  const r = trellisRun(t, cp, [...(transparent ? ['--transparent'] : []), '--service', 'reviews', '--workload', workload, '--port', `${port}:http`, '--', process.execPath, path.join(APPS, 'env-dump.ts')], {
    OUT: out, TRELLIS_JOIN_TOKEN: token, TRELLIS_JOIN_TOKEN_FILE: tokenFile, TRELLIS_API_TOKEN: 'api-secret', TRELLIS_CLIENT_KEY: 'key-secret', KEEP_ME: 'yes',
  });
  const exit = await r.exit;
  // Exit 0: the sidecar did read the token (it starts only once it holds a certificate), then the app ran.
  assert.equal(exit.code, 0, r.stderr());
  assert.ok(!(await workloads(cp)).some((w) => w.name === workload), 'deregistered');
  return JSON.parse(readFileSync(out, 'utf8')) as Record<string, string>;
}

function assertNoCredentials(env: Record<string, string>): void {
  for (const k of ['TRELLIS_JOIN_TOKEN', 'TRELLIS_JOIN_TOKEN_FILE', 'TRELLIS_API_TOKEN', 'TRELLIS_CLIENT_KEY']) assert.equal(env[k], undefined, `${k} reached the app`);
  assert.equal(env.KEEP_ME, 'yes', 'the rest of the environment passes through');
  assert.equal(env.TRELLIS_SERVICE, 'reviews');
  assert.equal(env.TRELLIS_WORKLOAD !== undefined, true);
}

test('trellis run (explicit): the app gets no join token or other TRELLIS_* credential', { timeout: 60_000 }, async (t) => {
  const env = await appEnv(t, false);
  assertNoCredentials(env);
  assert.match(env.HTTP_PROXY ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
});

test('trellis run --transparent: the app in its pod gets no join token or other TRELLIS_* credential', { skip: why, timeout: 90_000 }, async (t) => {
  assertNoCredentials(await appEnv(t, true));
});
