// A `trellis proxy` on xDS reports its control-plane connection on the
// admin's /stats/prometheus (src/proxy/telemetry/xds-stats.ts, wired in
// src/cli/commands/proxy.ts): connected while the ADS stream is up, and a
// disconnect counted when the control plane goes away.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlPlane } from '../../src/control-plane/control-plane.ts';
import { freePort } from '../proxy/helpers.ts';
import { xdsSidecar } from './fixtures.ts';

async function metric(adminPort: number, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/stats/prometheus`, { signal: AbortSignal.timeout(5000) })).text();
  const m = new RegExp(`^${name}(?:\\{\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`${what}: not reached in ${timeoutMs} ms`);
}

test('trellis proxy on xDS exports trellis_xds_connected and trellis_xds_disconnects_total', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-xds-stats-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort: await freePort(), log: () => {} });
  let closed = false;
  t.after(() => (closed ? undefined : cp.close()));
  const sidecar = await xdsSidecar(t, `127.0.0.1:${cp.xdsPort}`);
  const admin = await sidecar.adminPort;
  await until('connected', async () => (await metric(admin, 'trellis_xds_connected')) === 1);
  assert.equal(await metric(admin, 'trellis_xds_disconnects_total'), 0);
  assert.equal(await metric(admin, 'trellis_xds_warming_resources'), 0);
  await cp.close();
  closed = true;
  await until('disconnected', async () => (await metric(admin, 'trellis_xds_connected')) === 0);
  assert.ok((await metric(admin, 'trellis_xds_disconnects_total'))! >= 1);
});
