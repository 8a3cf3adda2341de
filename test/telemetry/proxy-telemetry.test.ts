// Proxy telemetry end to end: two sidecars (web -> reviews) and a TCP
// upstream; metric values after known traffic, labels on both sides, the
// access log switched through the admin API, and the live tap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { once } from 'node:events';
import { INBOUND_ADDRESS, app, call, eventually, metricsText, startSidecar } from './mesh-fixture.ts';
import { bootstrapDoc, freePort, httpBackend, httpListener, parse, portOf, request, routeConfig, runProxy, staticCluster, tcpBackend } from '../proxy/helpers.ts';
import { bootstrapFromJson } from '../../src/proxy/config/bootstrap.ts';
import { captureIO } from '../../src/cli/command-io.ts';
import * as tapCommand from '../../src/cli/commands/tap.ts';
import * as topCommand from '../../src/cli/commands/top.ts';

const HOST = 'reviews.shop:9080';

function series(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const body = line.slice(name.length + 1, close);
    const ok = Object.entries(labels).every(([k, v]) => body.includes(`${k}="${v}"`));
    if (ok) return Number(line.slice(close + 1).trim());
  }
  return undefined;
}

async function mesh(t: import('node:test').TestContext, reviewsTelemetry?: Parameters<typeof startSidecar>[1]['telemetry']) {
  const seenPeerHeaders: (string | undefined)[] = [];
  const appPort = await app(t, (req, res) => {
    seenPeerHeaders.push(req.headers['x-trellis-peer'] as string | undefined);
    req.resume();
    const url = req.url ?? '/';
    if (url.startsWith('/fail')) {
      res.writeHead(503).end('down');
      return;
    }
    if (url.startsWith('/slow')) {
      setTimeout(() => res.writeHead(202).end('slow'), 60);
      return;
    }
    res.setHeader('set-cookie', 'session=abc');
    res.end('review!');
  });
  const reviews = await startSidecar(t, { workload: 'reviews-v1', namespace: 'shop', appPort, ...(reviewsTelemetry ? { telemetry: reviewsTelemetry } : {}) });
  const web = await startSidecar(t, {
    workload: 'web',
    namespace: 'shop',
    upstreams: [{ service: 'reviews', namespace: 'shop', port: 9080, inboundPort: reviews.inboundPort!, workload: 'reviews-v1' }],
  });
  return { reviews, web, seenPeerHeaders };
}

test('standard metrics: exact counts and the right labels on the outbound and inbound side', async (t) => {
  const { reviews, web, seenPeerHeaders } = await mesh(t);
  for (let i = 0; i < 8; i++) assert.equal((await call(web.outboundPort!, HOST, `/r/${i}?q=${i}`)).status, 200);
  for (let i = 0; i < 2; i++) assert.equal((await call(web.outboundPort!, HOST, '/fail')).status, 503);
  for (let i = 0; i < 3; i++) assert.equal((await call(web.outboundPort!, HOST, '/slow')).status, 202);
  assert.deepEqual(new Set(seenPeerHeaders), new Set([undefined]), 'the inbound proxy strips x-trellis-peer');

  const out = await metricsText(web.adminPort);
  const common = { direction: 'outbound', source_workload: 'web', source_namespace: 'shop', destination_workload: 'reviews-v1', destination_namespace: 'shop', destination_service: 'reviews.shop.svc.cluster.local', route: 'shop/reviews/rule-0/match-0', grpc_status: '', protocol: 'http1', mtls: 'false', response_flags: '-' };
  assert.equal(series(out, 'trellis_requests_total', { ...common, response_code: '200' }), 8);
  assert.equal(series(out, 'trellis_requests_total', { ...common, response_code: '503' }), 2);
  assert.equal(series(out, 'trellis_requests_total', { ...common, response_code: '202' }), 3);
  assert.equal(series(out, 'trellis_response_bytes_total', { ...common, response_code: '200' }), 8 * 'review!'.length);
  // The slow responses took >= 60 ms: none in the 50 ms bucket, all by +Inf.
  assert.equal(series(out, 'trellis_request_duration_seconds_bucket', { ...common, response_code: '202', le: '0.05' }), 0);
  assert.equal(series(out, 'trellis_request_duration_seconds_bucket', { ...common, response_code: '202', le: '+Inf' }), 3);
  assert.ok(series(out, 'trellis_request_duration_seconds_sum', { ...common, response_code: '202' })! >= 0.18);
  assert.doesNotMatch(out, /route="\/r\//, 'paths never become labels');
  assert.doesNotMatch(out, /trellis_requests_total\{direction="inbound"/);

  const inb = await metricsText(reviews.adminPort);
  const inCommon = { direction: 'inbound', source_workload: 'web', source_namespace: 'shop', destination_workload: 'reviews-v1', destination_namespace: 'shop', destination_service: 'reviews.shop.svc.cluster.local', route: 'inbound', mtls: 'false' };
  assert.equal(series(inb, 'trellis_requests_total', { ...inCommon, response_code: '200' }), 8);
  assert.equal(series(inb, 'trellis_requests_total', { ...inCommon, response_code: '503' }), 2);
  assert.equal(series(inb, 'trellis_request_duration_seconds_count', { ...inCommon, response_code: '202' }), 3);

  // A direct call to the inbound port (no calling sidecar): source unknown.
  await call({ address: INBOUND_ADDRESS, port: reviews.inboundPort! }, HOST, '/direct');
  const inb2 = await metricsText(reviews.adminPort);
  assert.equal(series(inb2, 'trellis_requests_total', { direction: 'inbound', source_workload: 'unknown', source_namespace: 'unknown', response_code: '200' }), 1);
});

test('TCP metrics: a proxied connection is counted with its bytes once it closes', async (t) => {
  const echoPort = await tcpBackend(t, (s) => s.pipe(s));
  const web = await startSidecar(t, { workload: 'web', namespace: 'shop', upstreams: [{ service: 'db', namespace: 'shop', port: 5432, inboundPort: echoPort, inboundAddress: '127.0.0.1', workload: 'db-0', tcp: true }] });
  const db = web.tcpPorts.get('db')!;
  const sock = net.connect(db.port, db.address);
  await once(sock, 'connect');
  sock.write('hello tcp');
  let got = '';
  for await (const c of sock) {
    got += String(c);
    if (got.length >= 9) break;
  }
  sock.end();
  sock.destroy();
  const labels = { direction: 'outbound', source_workload: 'web', destination_service: 'db.shop.svc.cluster.local', destination_namespace: 'shop' };
  const text = await eventually(async () => {
    const m = await metricsText(web.adminPort);
    return series(m, 'trellis_tcp_connections_closed_total', labels) === 1 ? m : undefined;
  }, 'the TCP connection to be counted');
  assert.equal(series(text, 'trellis_tcp_connections_opened_total', labels), 1);
  assert.equal(series(text, 'trellis_tcp_received_bytes_total', labels), 9);
  assert.equal(series(text, 'trellis_tcp_sent_bytes_total', labels), 9);
});

test('access log: off by default, switched on and off through the admin API, every field', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-access-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'access.log');
  const { reviews, web } = await mesh(t, { accessLog: { sink: { path: file } } });
  const admin = `http://127.0.0.1:${reviews.adminPort}`;
  await call(web.outboundPort!, HOST, '/before');
  assert.deepEqual(await (await fetch(`${admin}/logging`)).json(), { access: false, written: 0, dropped: 0 });
  // Changing state needs the admin token (proxy/admin.ts); reading does not.
  const auth = { authorization: `Bearer ${reviews.proxy.adminToken}` };
  const anonymous = await fetch(`${admin}/logging?access=on`, { method: 'POST' });
  assert.equal(anonymous.status, 401);
  assert.equal((await fetch(`${admin}/logging?access=on`, { method: 'POST', headers: { authorization: 'Bearer not-the-token-at-all' } })).status, 401);
  const on = await fetch(`${admin}/logging?access=on`, { method: 'POST', headers: auth });
  assert.equal(on.status, 200);
  await call(web.outboundPort!, HOST, '/logged?x=1', { 'x-request-id': 'req-42', 'user-agent': 'test-agent', traceparent: `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01` });
  await fetch(`${admin}/logging?access=off`, { method: 'POST', headers: auth });
  await call(web.outboundPort!, HOST, '/after');
  const bad = await fetch(`${admin}/logging?access=maybe`, { method: 'POST', headers: auth });
  assert.equal(bad.status, 400);
  assert.deepEqual(await bad.json(), { error: 'access: must be "on" or "off"' });
  const lines = await eventually(() => {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    return text.endsWith('\n') ? text.trim().split('\n') : undefined;
  }, 'the access log line');
  assert.equal(lines.length, 1);
  const e = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(e.method, 'GET');
  assert.equal(e.authority, HOST);
  assert.equal(e.path, '/logged?x=1');
  assert.equal(e.response_code, 200);
  assert.equal(e.direction, 'inbound');
  assert.equal(e.source_workload, 'web');
  assert.equal(e.destination_workload, 'reviews-v1');
  assert.equal(e.destination_service, 'reviews.shop.svc.cluster.local');
  assert.equal(e.request_id, 'req-42');
  assert.equal(e.user_agent, 'test-agent');
  assert.equal(e.bytes_sent, 'review!'.length);
  assert.equal(e.response_flags, '-');
  assert.equal(e.route, 'inbound');
  assert.match(String(e.upstream_host), /^127\.0\.0\.1:\d+$/);
  assert.ok(typeof e.duration_ms === 'number' && e.duration_ms >= 0);
  assert.ok(typeof e.response_ms === 'number' && (e.response_ms as number) <= (e.duration_ms as number));
  assert.ok(!Number.isNaN(Date.parse(String(e.start_time))));
});

test('tap: admin stream with a filter, credentials redacted, no subscriber left behind; trellis tap prints it', async (t) => {
  const { reviews, web } = await mesh(t);
  const url = `http://127.0.0.1:${reviews.adminPort}/tap?path=/tapped&method=GET&code=200`;
  // Live requests need the admin token.
  const denied = await fetch(url);
  assert.equal(denied.status, 401);
  assert.equal(reviews.proxy.telemetry.tap.active, false);
  const ac = new AbortController();
  const res = await fetch(url, { signal: ac.signal, headers: { authorization: `Bearer ${reviews.proxy.adminToken}` } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  const nextLine = async (): Promise<Record<string, unknown>> => {
    for (let i = 0; i < 100; i++) {
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        return JSON.parse(line) as Record<string, unknown>;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error('tap stream ended');
      buf += decoder.decode(value, { stream: true });
    }
    throw new Error('no line');
  };
  assert.equal((await nextLine()).type, 'start');
  assert.equal(reviews.proxy.telemetry.tap.active, true);
  await call(web.outboundPort!, HOST, '/other');
  await call(web.outboundPort!, HOST, '/fail/tapped');
  await call(web.outboundPort!, HOST, '/tapped/1', { authorization: 'Bearer top-secret', cookie: 'sid=xyz', 'x-api-key': 'k-123', accept: 'text/plain' });
  const ev = await nextLine();
  assert.equal(ev.type, 'exchange');
  assert.equal(ev.path, '/tapped/1');
  assert.equal(ev.status, 200);
  assert.equal(ev.source_workload, 'web');
  const rq = ev.request_headers as Record<string, string>;
  assert.equal(rq.authorization, '[REDACTED]');
  assert.equal(rq.cookie, '[REDACTED]');
  assert.equal(rq['x-api-key'], '[REDACTED]');
  assert.equal(rq.accept, 'text/plain');
  assert.equal((ev.response_headers as Record<string, string>)['set-cookie'], '[REDACTED]');
  assert.doesNotMatch(JSON.stringify(ev), /top-secret|sid=xyz|k-123|review!/);
  ac.abort();
  await eventually(() => (reviews.proxy.telemetry.tap.active ? undefined : true), 'the subscriber to go away');

  // The CLI against the same admin endpoint.
  const io = captureIO();
  const done = tapCommand.exec(['reviews', '--path', '/cli', '--admin', `127.0.0.1:${reviews.adminPort}`, '--admin-token', reviews.proxy.adminToken, '--max', '2', '--duration', '10s'], io);
  await eventually(() => (reviews.proxy.telemetry.tap.active ? true : undefined), 'the CLI to subscribe');
  await call(web.outboundPort!, HOST, '/cli/a');
  await call(web.outboundPort!, HOST, '/cli/b');
  assert.equal(await done, 0);
  assert.equal(io.stdout.length, 2);
  // Only the callee's proxy is tapped: its side alone (after the join wait).
  assert.match(io.stdout[0]!, /^in {5}GET reviews\.shop:9080\/cli\/a 200 [\d.]+ms 7B src=shop\/web dst=shop\/reviews-v1 flags=-$/);

  // trellis top, piped: counts per path over a fixed duration, printed once.
  const topIo = captureIO();
  const topDone = topCommand.exec(['--admin', `127.0.0.1:${reviews.adminPort}`, '--admin-token', reviews.proxy.adminToken, '--duration', '1500ms'], topIo);
  await eventually(() => (reviews.proxy.telemetry.tap.active ? true : undefined), 'top to subscribe');
  for (let i = 0; i < 3; i++) await call(web.outboundPort!, HOST, '/busy?i=' + i);
  await call(web.outboundPort!, HOST, '/fail/once');
  assert.equal(await topDone, 0);
  const rows = topIo.stdout.join('\n').split('\n');
  assert.match(rows[0]!, /^SOURCE\s+DESTINATION\s+METHOD\s+PATH\s+COUNT\s+SUCCESS/);
  assert.match(rows[1]!, /^shop\/web\s+shop\/reviews-v1\s+GET\s+reviews\.shop:9080\/busy\s+3\s+100\.00%/);
  assert.match(rows[2]!, /reviews\.shop:9080\/fail\/once\s+1\s+0\.00%/);
  // Piped without --duration: a snapshot (said so), not an error; a proxy
  // that cannot be tapped is named and the exit code says nothing was seen.
  const notty = captureIO();
  const closed = await freePort();
  assert.equal(await topCommand.exec(['--admin', `127.0.0.1:${closed}`], notty), 1);
  assert.match(notty.stderr.join('\n'), /output is not a terminal: printing one table after 5s of traffic \(--duration sets how long\)/);
  assert.match(notty.stderr.join('\n'), new RegExp(`127\\.0\\.0\\.1:${closed}: cannot tap the proxy's admin listener \\(ECONNREFUSED\\)`));
});

test('access log from the listener config (HCM accessLog, the stdout logger): every request logged whatever the runtime switch; other loggers ignored with a warning', async (t) => {
  const lines: string[] = [];
  const be = await httpBackend(t, 'be');
  const stdout = [{ name: 'envoy.access_loggers.stdout', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog' } }];
  const doc = (accessLog?: object[]) => bootstrapDoc({
    listeners: [httpListener('edge', { routeConfigName: 'r', ...(accessLog ? { accessLog } : {}) })],
    clusters: [staticCluster('be', [be.port])],
    routes: [routeConfig('r', [{ cluster: 'be' }])],
  });
  const proxy = await runProxy(t, doc(stdout), { telemetry: { accessLog: { sink: (line) => lines.push(line) } } });
  const port = portOf(proxy, 'edge');
  assert.equal((await request(port, { agent: false, path: '/one' })).status, 200);
  await eventually(() => (lines.length === 1 ? true : undefined), 'the access log line');
  assert.equal((JSON.parse(lines[0]!) as { path: string }).path, '/one');
  assert.equal(proxy.telemetry.accessLog.enabled, false, 'the runtime switch is still off');

  // The next config without it: back to the switch (off).
  assert.ok((await proxy.applyConfig(parse(doc(), 'v2').config)).ok);
  await request(port, { agent: false, path: '/two' });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(lines.length, 1);

  // Another logger (written for Envoy): the config loads, with a warning, and logs nothing.
  const r = bootstrapFromJson(doc([{ name: 'envoy.access_loggers.file', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog', path: '/tmp/x' } }]), 'v3');
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.ok(r.warnings.some((w) => w.includes('access logger envoy.extensions.access_loggers.file.v3.FileAccessLog is ignored')), JSON.stringify(r.warnings));
  assert.ok((await proxy.applyConfig(r.bootstrap.config)).ok);
  await request(port, { agent: false, path: '/three' });
  await new Promise((res) => setTimeout(res, 100));
  assert.equal(lines.length, 1);
});
