// `trellis proxy-status` against real control planes: raw ADS streams stand
// for proxies that ACK everything, NACK the listeners, or have not answered
// yet; the table shows SYNCED / NACKED / STALE / NOT SENT per type, the
// replica, and the NACK message in full below it; several --server URLs are
// merged and an unreachable one is reported without hiding the others.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.ts';
import { exec, typeState } from '../../src/cli/commands/proxy-status.ts';
import { captureIO } from '../../src/cli/command-io.ts';
import { fakeProxy } from './fake-proxy.ts';
import { TypeUrl } from '../../src/xds/protos.ts';
import { freePort } from '../proxy/helpers.ts';

async function controlPlane(t: TestContext, id: string): Promise<ControlPlane> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-ps-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort: 0, id, identity: false, dashboard: false, log: () => {} });
  t.after(() => cp.close());
  return cp;
}

async function statusOf(cp: ControlPlane, want: Record<string, string>): Promise<{ label: string }> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const body = (await (await fetch(`${cp.apiUrl}/api/v1/proxies`)).json()) as { proxies: { nodeId: string; status: string; snapshotLabel: string }[] };
    const got = Object.fromEntries(body.proxies.map((p) => [p.nodeId, p.status]));
    if (JSON.stringify(got) === JSON.stringify(want)) return { label: body.proxies[0]!.snapshotLabel };
    if (Date.now() > deadline) throw new Error(`proxies never reached ${JSON.stringify(want)}: ${JSON.stringify(got)}`);
    await sleep(25);
  }
}

/** Table lines with runs of spaces collapsed and ages (e.g. "3s") replaced. */
const normalize = (text: string): string[] => text.split('\n').map((l) => l.replace(/\s+/g, ' ').replace(/ \d+s$/, ' <age>'));

test('proxy-status: SYNCED / NACKED / STALE / NOT SENT per type, NACK reasons in full, replicas merged', { timeout: 30_000 }, async (t) => {
  const a = await controlPlane(t, 'cp-a');
  const b = await controlPlane(t, 'cp-b');
  await fakeProxy(t, a, 'default/good-1', 'good', 'ack');
  const bad = await fakeProxy(t, a, 'default/bad-1', 'bad', 'nack');
  await fakeProxy(t, a, 'default/slow-1', 'slow', 'none');
  await fakeProxy(t, b, 'default/other-1', 'other', 'ack');
  const { label: la } = await statusOf(a, { 'default/bad-1': 'rejected', 'default/good-1': 'synced', 'default/slow-1': 'stale' });
  const { label: lb } = await statusOf(b, { 'default/other-1': 'synced' });

  const io = captureIO();
  const dead = `http://127.0.0.1:${await freePort()}`;
  assert.equal(await exec(['--server', `${a.apiUrl},${b.apiUrl}`, '--server', dead], io), 0, io.stderr.join('\n'));
  assert.deepEqual(normalize(io.stdout.join('\n')), [
    'NAME CLUSTER CDS LDS EDS RDS VERSION CONTROL PLANE CONNECTED SINCE',
    `default/bad-1 bad SYNCED NACKED NOT SENT NOT SENT ${la} cp-a <age>`,
    `default/good-1 good SYNCED SYNCED NOT SENT NOT SENT ${la} cp-a <age>`,
    `default/other-1 other SYNCED SYNCED NOT SENT NOT SENT ${lb} cp-b <age>`,
    `default/slow-1 slow SYNCED STALE NOT SENT NOT SENT ${la} cp-a <age>`,
    '',
    'NACKED:',
    ` default/bad-1 LDS (cp-a) version ${bad.ldsVersion}: listener "outbound": filterChains[0]: unsupported filter "envoy.filters.network.mongo_proxy"`,
    '',
    // Each standalone control plane leads its own (sqlite) store.
    'CONTROL PLANES: cp-a (leader) 3 proxies, cp-b (leader) 1 proxy',
  ]);
  assert.match(io.stderr.join('\n'), new RegExp(`cannot reach the control plane at ${dead} \\(ECONNREFUSED\\)`));

  // JSON: the same rows, machine-readable.
  const json = captureIO();
  assert.equal(await exec(['--server', a.apiUrl, '-o', 'json'], json), 0);
  const report = JSON.parse(json.stdout.join('\n')) as { replicas: unknown[]; proxies: { name: string; controlPlane: string; types: Record<string, { state: string; nack: string | null }> }[]; unreachable: unknown[] };
  assert.deepEqual(report.proxies.map((p) => [p.name, p.controlPlane, p.types['CDS']!.state, p.types['LDS']!.state]), [
    ['default/bad-1', 'cp-a', 'SYNCED', 'NACKED'],
    ['default/good-1', 'cp-a', 'SYNCED', 'SYNCED'],
    ['default/slow-1', 'cp-a', 'SYNCED', 'STALE'],
  ]);
  assert.match(report.proxies[0]!.types['LDS']!.nack!, /unsupported filter "envoy\.filters\.network\.mongo_proxy"$/);
  assert.deepEqual(report.unreachable, []);
  assert.deepEqual(report.replicas, [{ server: a.apiUrl, controlPlane: 'cp-a', isLeader: true, proxies: 3 }]);
});

test('proxy-status: bad flags and no reachable control plane', async () => {
  const io = captureIO();
  assert.equal(await exec(['-o', 'yaml'], io), 2);
  assert.match(io.stderr.join(''), /-o: must be table or json \(got "yaml"\)/);
  const io2 = captureIO();
  assert.equal(await exec(['--server', 'localhost:15080'], io2), 2);
  assert.match(io2.stderr.join(''), /--server: must be an http\(s\) URL/);
  const io3 = captureIO();
  assert.equal(await exec(['--server', `http://127.0.0.1:${await freePort()}`], io3), 1);
  assert.match(io3.stderr.join(''), /cannot reach the control plane/);
  assert.equal(typeState(undefined), 'NOT SENT');
  assert.equal(typeState({ typeUrl: TypeUrl.route, subscribed: ['r'], sentVersion: '2', ackedVersion: '2', latestVersion: '3', nacked: null }), 'STALE');
});
