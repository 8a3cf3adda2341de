// Tracing configured mesh-wide with a Telemetry resource, end to end: the
// control plane writes it into a running `trellis proxy` process's
// listeners over xDS, the proxy starts spans and exports them to an OTLP
// collector; a namespace Telemetry that disables tracing wins over the mesh
// one, and the proxy's retired tracer sends what it held.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlPlane } from '../../src/control-plane/control-plane.ts';
import { call, get, service, xdsSidecar } from '../control-plane/fixtures.ts';
import { collector } from './collector.ts';

const telemetry = (name: string, namespace: string, tracing: object) => ({ apiVersion: 'trellis.dev/v1alpha1', kind: 'Telemetry', metadata: { name, namespace }, spec: { tracing } });

test('a Telemetry resource switches tracing on for running proxies; a namespace one that disables it wins', { timeout: 60_000 }, async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-tel-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort: 0, identity: false, dashboard: false, log: () => {} });
  t.after(() => cp.close());
  const apply = async (doc: object): Promise<void> => {
    const r = await call(cp.apiUrl, 'POST', '/api/v1/apply', doc);
    assert.ok(r.status < 300, JSON.stringify(r.json));
  };
  const c = await collector(t);

  // The upstream records the trace context it is given.
  const seen: Array<string | undefined> = [];
  const app = http.createServer((req, res) => {
    seen.push(req.headers.traceparent as string | undefined);
    req.resume();
    res.end('reviews');
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  t.after(() => {
    app.closeAllConnections();
    app.close();
  });
  await apply(service('reviews', { app: 'reviews' }));
  const reg = await call(cp.apiUrl, 'POST', '/api/v1/registry/workloads', {
    name: 'reviews-1', namespace: 'default', address: '127.0.0.1', ports: [{ name: 'http', port: (app.address() as AddressInfo).port, protocol: 'http' }], labels: { app: 'reviews' }, ttlSeconds: 60,
  });
  assert.equal(reg.status, 201, JSON.stringify(reg.json));

  const { outbound, stderr } = await xdsSidecar(t, cp.xdsAddress);

  /** Requests until the upstream sees a trace context matching `want`. */
  const untilSeen = async (what: string, want: (tp: string | undefined) => boolean): Promise<string | undefined> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      seen.length = 0;
      try {
        const r = await get(outbound, 'reviews:9080');
        if (r.status === 200 && seen.length === 1 && want(seen[0])) return seen[0];
      } catch {
        // not serving yet
      }
      if (Date.now() > deadline) throw new Error(`never saw ${what}; last: ${JSON.stringify(seen)}; stderr: ${stderr()}`);
      await sleep(50);
    }
  };

  // Without a Telemetry: no trace context added.
  await untilSeen('an untraced request', (tp) => tp === undefined);

  // Mesh-wide, every new trace sampled.
  await apply(telemetry('mesh', 'trellis-system', { collector: c.url, samplingPercentage: 100 }));
  const traced = await untilSeen('a sampled trace context', (tp) => /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/.test(tp ?? ''));

  // The namespace says no: tracing stops, and the retired tracer exports what it held.
  await apply(telemetry('off', 'default', { disabled: true }));
  await untilSeen('tracing switched off', (tp) => tp === undefined);
  const deadline = Date.now() + 10_000;
  while (c.spans.length === 0 && Date.now() < deadline) await sleep(50);
  assert.ok(c.spans.length >= 1, 'spans exported');
  assert.ok(c.spans.every((s) => s.service === 'productpage-1'), JSON.stringify(c.spans.map((s) => s.service)));
  const span = c.spans.find((s) => traced === `00-${s.traceId}-${s.spanId}-01`);
  assert.ok(span, `the span whose context reached the upstream: ${traced}`);
  assert.equal(span.attributes['http.response.status_code'], 200);
});
