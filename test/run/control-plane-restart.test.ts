// A control plane that restarts (same ports, same data directory) is found
// again by the sidecars within seconds, and config applied right after the
// restart reaches them. The xDS client used to back off exponentially to
// 30 s (±20 %): after a 15 s outage its next attempt came ~10 s after the
// control plane was back (18-43 s in longer outages). Now the first
// attempts are capped at a few seconds with full jitter (src/lib/backoff.ts).
// The outage is 15 s so that the old schedule (0.1, 0.3, 0.7 ... 12.7,
// 25.5 s) is caught between attempts; the bound (8 s from restart to the
// new cluster in the sidecar's config) leaves room for a loaded machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.ts';
import { freePort } from '../../src/runner/ports.ts';
import { apply, events, service, trellisRun, waitFor } from './harness.ts';

const OUTAGE_MS = 15_000;
const BOUND_MS = 8_000;

async function clusters(adminPort: number): Promise<string[]> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/config_dump`).catch(() => undefined);
  if (!res?.ok) return [];
  const dump = (await res.json()) as { config?: { clusters?: Record<string, unknown> } };
  return Object.keys(dump.config?.clusters ?? {});
}

test('control plane restart: config applied right after it reaches the sidecar within seconds', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-restart-cp-'));
  const ports = { apiPort: await freePort(), xdsPort: await freePort() };
  const start = (): Promise<ControlPlane> => startControlPlane({ dataDir, ...ports, host: '127.0.0.1', log: () => {} });
  let cp = await start();
  t.after(async () => {
    await cp.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  await apply(cp, service('reviews', 9080, 'http'));
  const run = trellisRun(t, cp, ['--service', 'reviews', '--workload', 'reviews-restart', '--', process.execPath, '-e', 'setInterval(() => {}, 1000)']);
  const ready = await waitFor('sidecar ready', () => events(run.stderr()).find((e) => e.event === 'sidecar_ready'));
  const admin = ready.admin as number;
  await waitFor('reviews cluster in the sidecar', async () => ((await clusters(admin)).some((c) => c.includes('reviews')) ? true : undefined));

  await cp.close();
  await sleep(OUTAGE_MS);
  cp = await start();
  const restarted = Date.now();
  await apply(cp, service('ratings', 9080, 'http'));
  await waitFor('ratings cluster in the sidecar', async () => ((await clusters(admin)).some((c) => c.includes('ratings')) ? true : undefined), 30_000);
  const took = Date.now() - restarted;
  t.diagnostic(`config applied after the restart reached the sidecar in ${took} ms`);
  assert.ok(took < BOUND_MS, `the sidecar took ${took} ms to pick up config after the control plane came back`);
  assert.equal(run.child.exitCode, null, 'the workload kept running through the outage');
});
