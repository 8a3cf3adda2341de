// The control plane's own metrics (GET /metrics) against a real control
// plane and raw ADS streams standing for proxies: proxies by sync state,
// pushes/ACKs/NACKs by type, convergence timed from a change to the ACKs of
// the proxies connected before it (and only those), resources, leadership.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.ts';
import { parsePrometheusText, type Sample } from '../../src/control-plane/telemetry/prom-text.ts';
import { PROMETHEUS_CONTENT_TYPE } from '../../src/proxy/stats.ts';
import { TypeUrl } from '../../src/xds/protos.ts';
import { fakeProxy } from './fake-proxy.ts';
import { service } from './fixtures.ts';

async function controlPlane(t: TestContext): Promise<ControlPlane> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-metrics-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort: 0, id: 'cp-m', identity: false, dashboard: false, log: () => {} });
  t.after(() => cp.close());
  return cp;
}

async function scrape(cp: ControlPlane): Promise<{ text: string; value: (name: string, labels?: Record<string, string>) => number | undefined }> {
  const res = await fetch(`${cp.apiUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), PROMETHEUS_CONTENT_TYPE);
  const text = await res.text();
  const parsed = parsePrometheusText(text);
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
  const samples: Sample[] = parsed.samples;
  return {
    text,
    value: (name, labels = {}) => samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value,
  };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

test('GET /metrics: proxies by sync state, pushes, ACKs and NACKs by type, convergence after a change, resources, leadership', { timeout: 30_000 }, async (t) => {
  const cp = await controlPlane(t);
  const good = await fakeProxy(t, cp, 'default/good-1', 'good', 'ack');
  await fakeProxy(t, cp, 'default/bad-1', 'bad', 'nack');

  const before = await until('one synced and one rejected proxy, and the leader', async () => {
    const m = await scrape(cp);
    return m.value('trellis_xds_proxies', { state: 'synced' }) === 1 && m.value('trellis_xds_proxies', { state: 'rejected' }) === 1 && m.value('trellis_cp_leader') === 1 ? m : undefined;
  });
  assert.equal(before.value('trellis_xds_proxies', { state: 'stale' }), 0);
  assert.equal(before.value('trellis_xds_connects_total'), 2);
  assert.equal(before.value('trellis_xds_pushes_total', { type: 'Cluster' }), 2);
  assert.equal(before.value('trellis_xds_pushes_total', { type: 'Listener' }), 2);
  assert.equal(before.value('trellis_xds_acks_total', { type: 'Cluster' }), 2);
  assert.equal(before.value('trellis_xds_acks_total', { type: 'Listener' }), 1);
  assert.equal(before.value('trellis_xds_nacks_total', { type: 'Listener' }), 1);
  assert.equal(before.value('trellis_xds_ack_latency_seconds_count', { type: 'Cluster' }), 2);
  // Connecting is not converging.
  assert.equal(before.value('trellis_xds_convergence_seconds_count', { type: 'Cluster' }), 0);
  assert.equal(before.value('trellis_cp_info', { control_plane: 'cp-m', store: 'sqlite' }), 1);
  assert.ok((before.value('process_resident_memory_bytes') ?? 0) > 10e6);
  assert.ok((before.value('process_cpu_seconds_total') ?? 0) > 0);
  assert.match(before.text, /^# TYPE trellis_xds_convergence_seconds histogram$/m);

  // A change: both proxies get a new CDS; only the good one ACKs it.
  const r = await fetch(`${cp.apiUrl}/api/v1/apply`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(service('reviews', { app: 'reviews' })) });
  assert.ok(r.status < 300, await r.text());
  const cds = await good.stream.next();
  assert.equal(cds.typeUrl, TypeUrl.cluster);
  good.stream.send({ typeUrl: TypeUrl.cluster, versionInfo: cds.versionInfo, responseNonce: cds.nonce });

  const after = await until('the ACK of the change counted', async () => {
    const m = await scrape(cp);
    return m.value('trellis_xds_convergence_seconds_count', { type: 'Cluster' }) === 1 ? m : undefined;
  });
  assert.equal(after.value('trellis_xds_pushes_total', { type: 'Cluster' }), 4);
  assert.equal(after.value('trellis_xds_acks_total', { type: 'Cluster' }), 3);
  assert.equal(after.value('trellis_xds_ack_latency_seconds_count', { type: 'Cluster' }), 3);
  const seconds = after.value('trellis_xds_convergence_seconds_sum', { type: 'Cluster' })!;
  assert.ok(seconds > 0 && seconds < 5, `convergence ${seconds} s`);
  // The unanswered push leaves the bad proxy stale; the good one is synced.
  assert.equal(after.value('trellis_xds_proxies', { state: 'synced' }), 1);
  assert.equal(after.value('trellis_mesh_resources', { kind: 'Service' }), 1);
  assert.ok((after.value('trellis_cp_store_revision') ?? 0) > (before.value('trellis_cp_store_revision') ?? 0));
  assert.equal(after.value('trellis_xds_views_rejected'), 0);
  assert.equal(after.value('trellis_xds_push_waiting_streams'), 0);

  good.stream.close();
  await until('the disconnect counted', async () => ((await scrape(cp)).value('trellis_xds_disconnects_total') === 1 ? true : undefined));
});
